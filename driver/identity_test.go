package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// Probe is ready only once Root is a directory and, for the node service,
// the FUSE device opens.
func TestProbe(t *testing.T) {
	defer func(dev string) { fuseDevice = dev }(fuseDevice)
	e := newTestEnv(t)
	ids := &identityServer{d: e.d}
	fakeDevice := filepath.Join(e.dir, "fuse")
	if err := os.WriteFile(fakeDevice, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		t.Helper()
		resp, err := ids.Probe(context.Background(), &csi.ProbeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetReady().GetValue()
	}

	fuseDevice = fakeDevice
	if !ready() {
		t.Error("not ready with Root and the FUSE device in place")
	}
	fuseDevice = filepath.Join(e.dir, "no-such-device")
	if ready() {
		t.Error("ready without the FUSE device")
	}
	e.d.services.Node = false
	if !ready() {
		t.Error("a controller-only driver needs no FUSE device")
	}
	e.d.root = filepath.Join(e.dir, "no-such-root")
	if ready() {
		t.Error("ready without Root")
	}
	e.d.root = fakeDevice
	if ready() {
		t.Error("ready with a Root that is a file")
	}
}

// The controller capability is offered only where the controller runs;
// topology always, since every volume lives on one node.
func TestPluginCapabilities(t *testing.T) {
	e := newTestEnv(t)
	for _, svc := range []Services{{Controller: true, Node: true}, {Node: true}} {
		e.d.services = svc
		resp, err := (&identityServer{d: e.d}).GetPluginCapabilities(context.Background(), &csi.GetPluginCapabilitiesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[csi.PluginCapability_Service_Type]bool{}
		for _, c := range resp.GetCapabilities() {
			got[c.GetService().GetType()] = true
		}
		if got[csi.PluginCapability_Service_CONTROLLER_SERVICE] != svc.Controller ||
			!got[csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS] {
			t.Errorf("services %+v: capabilities %v", svc, got)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{NodeID: "n", Root: "/srv/volumes", Services: Services{Node: true}}
	if _, err := New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no node ID":        func(c *Config) { c.NodeID = "" },
		"relative root":     func(c *Config) { c.Root = "volumes" },
		"no service":        func(c *Config) { c.Services = Services{} },
		"relative statedir": func(c *Config) { c.StateDir = "state" },
	} {
		cfg := good
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseServices(t *testing.T) {
	for in, want := range map[string]Services{
		"controller,node": {Controller: true, Node: true},
		"node":            {Node: true},
		" controller ":    {Controller: true},
	} {
		if got, err := ParseServices(in); err != nil || got != want {
			t.Errorf("ParseServices(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "nodes", "node,,controller"} {
		if _, err := ParseServices(in); err == nil {
			t.Errorf("ParseServices(%q) accepted", in)
		}
	}
}
