package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// testDriver is the part of the external-storage suite's driver definition
// these files use; strict decoding rejects any other key, as e2e.test would
// otherwise ignore a misspelt one.
type testDriver struct {
	StorageClass struct {
		FromExistingClassName string
	}
	DriverInfo struct {
		Name               string
		SupportedSizeRange struct{ Min, Max string }
		SupportedFsType    map[string]struct{}
		TopologyKeys       []string
		Capabilities       map[string]bool
	}
}

// knownCapabilities are the suite's capability names (its Cap* constants).
var knownCapabilities = map[string]bool{
	"persistence": true, "block": true, "fsGroup": true, "volumeMountGroup": true,
	"exec": true, "snapshotDataSource": true, "pvcDataSource": true, "multipods": true,
	"RWX": true, "controllerExpansion": true, "nodeExpansion": true,
	"onlineExpansion": true, "offlineExpansion": true, "volumeLimits": true,
	"singleNodeVolume": true, "topology": true, "capacity": true,
	"readWriteOncePod": true, "multiplePVsSameID": true, "fsResizeFromSourceNotSupported": true,
}

// notImplemented must stay false until the driver implements them.
var notImplemented = []string{
	"block", "snapshotDataSource", "pvcDataSource", "controllerExpansion",
	"nodeExpansion", "onlineExpansion", "offlineExpansion", "volumeLimits",
}

// chartClasses reads the StorageClass names the chart installs by default,
// mode -> name.
func chartClasses(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "charts", "csi-goferfs", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		StorageClasses map[string]struct {
			Enabled bool
			Name    string
		} `json:"storageClasses"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	classes := map[string]string{}
	for mode, sc := range values.StorageClasses {
		if sc.Enabled {
			classes[sc.Name] = mode
		}
	}
	return classes
}

func TestTestDriverClaimsOnlyWhatTheDriverDoes(t *testing.T) {
	files, err := filepath.Glob("testdriver*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdriver*.yaml: %v", err)
	}
	classes := chartClasses(t)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d testDriver
			if err := yaml.UnmarshalStrict(data, &d); err != nil {
				t.Fatal(err)
			}
			if d.DriverInfo.Name != "goferfs.csi.dev" {
				t.Errorf("DriverInfo.Name %q", d.DriverInfo.Name)
			}
			mode, ok := classes[d.StorageClass.FromExistingClassName]
			if !ok {
				t.Fatalf("StorageClass %q is not one the chart installs by default (%v)", d.StorageClass.FromExistingClassName, classes)
			}
			caps := d.DriverInfo.Capabilities
			for c := range caps {
				if !knownCapabilities[c] {
					t.Errorf("unknown capability %q: the suite would ignore it", c)
				}
			}
			for _, c := range notImplemented {
				if caps[c] {
					t.Errorf("capability %s is claimed but not implemented", c)
				}
			}
			// Only shared mode accepts multi-node writers (interop-modes.md).
			if caps["RWX"] != (mode == "shared") {
				t.Errorf("RWX = %v for the %s class; only shared mode accepts ReadWriteMany", caps["RWX"], mode)
			}
			// The local remote pins every volume to one node.
			if !caps["topology"] || !caps["singleNodeVolume"] ||
				strings.Join(d.DriverInfo.TopologyKeys, ",") != "topology.goferfs.csi.dev/node" {
				t.Errorf("topology %v, singleNodeVolume %v, keys %v: volumes are node-local",
					caps["topology"], caps["singleNodeVolume"], d.DriverInfo.TopologyKeys)
			}
		})
	}
}
