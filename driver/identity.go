package driver

import (
	"context"
	"fmt"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/klog/v2"
)

// fuseDevice is opened by Probe to learn whether FUSE mounts can work.
var fuseDevice = "/dev/fuse"

// identityServer is the CSI identity service.
type identityServer struct {
	csi.UnimplementedIdentityServer
	d *Driver
}

var _ csi.IdentityServer = (*identityServer)(nil)

func (s *identityServer) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: s.d.name, VendorVersion: s.d.version}, nil
}

func (s *identityServer) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	// Volumes live in one node's Root, so every volume is constrained
	// to that node's topology.
	caps := []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}
	if s.d.services.Controller {
		caps = append(caps, csi.PluginCapability_Service_CONTROLLER_SERVICE)
	}
	resp := &csi.GetPluginCapabilitiesResponse{}
	for _, c := range caps {
		resp.Capabilities = append(resp.Capabilities, &csi.PluginCapability{
			Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: c}},
		})
	}
	return resp, nil
}

// Probe reports ready once Root is a usable directory and, for the node
// service, the FUSE device can be opened. Not-ready is an answer, not an
// error: the CO keeps probing.
func (s *identityServer) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	err := s.d.usable()
	if err != nil {
		klog.V(2).InfoS("Not ready", "reason", err)
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(err == nil)}, nil
}

// usable reports what keeps the driver from serving volumes, or nil.
func (d *Driver) usable() error {
	if err := d.rootUsable(); err != nil {
		return err
	}
	if d.services.Node {
		f, err := os.OpenFile(fuseDevice, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("FUSE device unusable: %w", err)
		}
		f.Close()
	}
	return nil
}

// rootUsable reports whether Root exists and is a directory.
func (d *Driver) rootUsable() error {
	fi, err := os.Stat(d.root)
	if err != nil {
		return fmt.Errorf("root directory unusable: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("root %s is not a directory", d.root)
	}
	return nil
}
