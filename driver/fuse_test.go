package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// realEnv is a node with real FUSE and bind mounts over a temporary Root.
type realEnv struct {
	dir, root, state, staging, target string
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	e := &realEnv{
		dir:     dir,
		root:    filepath.Join(dir, "root"),
		state:   filepath.Join(dir, "state"),
		staging: filepath.Join(dir, "staging"),
		target:  filepath.Join(dir, "pod"),
	}
	if err := os.MkdirAll(filepath.Join(e.root, "vol-1"), 0o777); err != nil {
		t.Fatal(err)
	}
	// Whatever a failed test leaves mounted must not break TempDir's removal.
	t.Cleanup(func() { detachAllUnder(dir) })
	return e
}

func (e *realEnv) driver(t *testing.T) *nodeServer {
	t.Helper()
	d, err := New(Config{NodeID: "node-1", Root: e.root, StateDir: e.state, Services: Services{Node: true}})
	if err != nil {
		t.Fatal(err)
	}
	return &nodeServer{d: d}
}

func (e *realEnv) stageAndPublish(t *testing.T, ns *nodeServer) {
	t.Helper()
	ctx := context.Background()
	if _, err := ns.NodeStageVolume(ctx, stageReq("vol-1", e.staging, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodePublishVolume(ctx, publishReq("vol-1", e.staging, e.target, false)); err != nil {
		t.Fatal(err)
	}
}

// abort kills the FUSE session of the staged volume as a crash of the
// serving process would, and waits until the session has ended.
func abort(t *testing.T, ns *nodeServer, staging string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(staging, &st); err != nil {
		t.Fatal(err)
	}
	ctl := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(st.Dev))
	if err := os.WriteFile(ctl, []byte("1"), 0); err != nil {
		t.Skipf("requires the kernel FUSE control file system (fusectl) to end a session; mounting it failed: %v", err)
	}
	ns.d.lookup("vol-1").vol.(*datapath.Volume).Wait()
}

// mountsUnder lists the mount points below dir, deepest last.
func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	return mps
}

func detachAllUnder(dir string) {
	mps := mountsUnder(dir)
	slices.Reverse(mps)
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}

// Data written through a pod's bind mount reaches the volume directory.
// When the FUSE session dies, health says so, and unpublish and unstage
// still clean up the dead (ENOTCONN) mount points.
func TestRealMountDeadSessionCleanup(t *testing.T) {
	e := newRealEnv(t)
	ns := e.driver(t)
	ctx := context.Background()
	e.stageAndPublish(t, ns)

	f, err := os.Create(filepath.Join(e.target, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := os.ReadFile(filepath.Join(e.root, "vol-1", "hello")); string(got) != "hello" {
		t.Fatalf("backing file after fsync: %q, %v", got, err)
	}

	abort(t, ns, e.staging)
	var sfs unix.Statfs_t
	if err := unix.Statfs(e.target, &sfs); err != unix.ENOTCONN {
		t.Fatalf("statfs of the target after abort: %v, want ENOTCONN", err)
	}
	h, err := ns.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-1"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 1 ||
		h.GetVolumeHealth().GetHealthStatuses()[0].GetReason() != reasonSessionEnded {
		t.Errorf("health of a dead session: %v, %v", h, err)
	}
	if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: e.target}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: e.staging}); err != nil {
		t.Fatal(err)
	}
	if mps := mountsUnder(e.dir); len(mps) != 0 {
		t.Errorf("still mounted: %v", mps)
	}
	for _, p := range []string{e.staging, e.target} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
}

// A restarted node plugin finds the dead mounts of its predecessor and
// mounts the volume again at the same staging and target paths.
func TestRealMountRestoredAfterRestart(t *testing.T) {
	e := newRealEnv(t)
	old := e.driver(t)
	e.stageAndPublish(t, old)
	if err := os.WriteFile(filepath.Join(e.root, "vol-1", "data"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	abort(t, old, e.staging)

	ns := e.driver(t)
	ns.d.restore()
	if got, err := os.ReadFile(filepath.Join(e.target, "data")); string(got) != "kept" {
		t.Fatalf("reading through the restored target: %q, %v", got, err)
	}
	ctx := context.Background()
	if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: e.target}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: e.staging}); err != nil {
		t.Fatal(err)
	}
	if mps := mountsUnder(e.dir); len(mps) != 0 {
		t.Errorf("still mounted: %v", mps)
	}
}
