package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// requireFUSE skips a test that makes real FUSE mounts where it cannot.
func requireFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root and /dev/fuse: not running as root")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("needs root and /dev/fuse: %v", err)
	}
	f.Close()
}

// TestSanity runs csi-test's sanity suite against the real driver, serving
// both services on a unix socket, with real FUSE and bind mounts.
//
// Sanity specs skipped by design, each because the capability is not
// offered: ListVolumes, ControllerPublish/Unpublish, snapshots,
// ControllerExpandVolume/NodeExpandVolume, ModifyVolume, ControllerGetVolume
// and the controller volume health RPCs.
func TestSanity(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{
		Version:  "test",
		NodeID:   "sanity-node",
		Root:     root,
		StateDir: filepath.Join(dir, "state"),
		Services: Services{Controller: true, Node: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- d.Run(ctx, "unix://"+sock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
		assertNoMountsUnder(t, dir)
	})

	cfg := sanity.NewTestConfig()
	cfg.Address = sock
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	sanity.Test(t, cfg)
}

// assertNoMountsUnder fails if anything is still mounted below dir.
func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			t.Errorf("still mounted: %s", f[4])
		}
	}
}
