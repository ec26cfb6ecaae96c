package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-goferfs/csi-goferfs/datapath"
)

const sw = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER

func stageReq(id, path string, vctx map[string]string) *csi.NodeStageVolumeRequest {
	return &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: path, VolumeCapability: mountCap(sw), VolumeContext: vctx}
}

func publishReq(id, staging, target string, readonly bool) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: mountCap(sw), Readonly: readonly,
	}
}

// Every node RPC validates its fields first and names the bad one.
func TestNodeRequestValidation(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	staging, target := filepath.Join(e.dir, "staging"), filepath.Join(e.dir, "target")
	e.mkvol(t, "vol-1")
	block := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: sw},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
	for _, tc := range []struct {
		name     string
		call     func() error
		wantCode codes.Code
		mention  string
	}{
		{"stage: no volume_id", func() error { _, err := e.ns.NodeStageVolume(ctx, stageReq("", staging, nil)); return err },
			codes.InvalidArgument, "volume_id"},
		{"stage: hostile volume_id", func() error { _, err := e.ns.NodeStageVolume(ctx, stageReq("../etc", staging, nil)); return err },
			codes.InvalidArgument, "volume_id"},
		{"stage: no staging_target_path", func() error { _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", "", nil)); return err },
			codes.InvalidArgument, "staging_target_path"},
		{"stage: relative staging_target_path", func() error {
			_, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", "staging", nil))
			return err
		}, codes.InvalidArgument, "staging_target_path"},
		{"stage: no volume_capability", func() error {
			r := stageReq("vol-1", staging, nil)
			r.VolumeCapability = nil
			_, err := e.ns.NodeStageVolume(ctx, r)
			return err
		}, codes.InvalidArgument, "volume_capability"},
		{"stage: block", func() error {
			r := stageReq("vol-1", staging, nil)
			r.VolumeCapability = block
			_, err := e.ns.NodeStageVolume(ctx, r)
			return err
		}, codes.InvalidArgument, "block"},
		{"stage: unknown parameter", func() error {
			_, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, map[string]string{"colour": "blue"}))
			return err
		}, codes.InvalidArgument, "volume_context"},
		{"stage: multi-node writer without shared", func() error {
			r := stageReq("vol-1", staging, nil)
			r.VolumeCapability = mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
			_, err := e.ns.NodeStageVolume(ctx, r)
			return err
		}, codes.InvalidArgument, "needs interopMode: shared"},
		{"stage: unknown volume", func() error { _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-2", staging, nil)); return err },
			codes.NotFound, "vol-2"},
		{"unstage: no volume_id", func() error {
			_, err := e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{StagingTargetPath: staging})
			return err
		}, codes.InvalidArgument, "volume_id"},
		{"unstage: no staging_target_path", func() error {
			_, err := e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1"})
			return err
		}, codes.InvalidArgument, "staging_target_path"},
		{"publish: no volume_id", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("", staging, target, false))
			return err
		},
			codes.InvalidArgument, "volume_id"},
		{"publish: a/b", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("a/b", staging, target, false))
			return err
		},
			codes.InvalidArgument, "volume_id"},
		{"publish: no target_path", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("vol-1", staging, "", false))
			return err
		},
			codes.InvalidArgument, "target_path"},
		{"publish: no volume_capability", func() error {
			r := publishReq("vol-1", staging, target, false)
			r.VolumeCapability = nil
			_, err := e.ns.NodePublishVolume(ctx, r)
			return err
		}, codes.InvalidArgument, "volume_capability"},
		{"publish: no staging_target_path", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("vol-1", "", target, false))
			return err
		}, codes.FailedPrecondition, "staging_target_path"},
		{"publish: not staged", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("vol-1", staging, target, false))
			return err
		},
			codes.FailedPrecondition, "not staged"},
		{"publish: unknown volume", func() error {
			_, err := e.ns.NodePublishVolume(ctx, publishReq("vol-2", staging, target, false))
			return err
		},
			codes.NotFound, "vol-2"},
		{"unpublish: no volume_id", func() error {
			_, err := e.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{TargetPath: target})
			return err
		}, codes.InvalidArgument, "volume_id"},
		{"unpublish: no target_path", func() error {
			_, err := e.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1"})
			return err
		}, codes.InvalidArgument, "target_path"},
		{"stats: no volume_id", func() error {
			_, err := e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumePath: target})
			return err
		}, codes.InvalidArgument, "volume_id"},
		{"stats: no volume_path", func() error {
			_, err := e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-1"})
			return err
		}, codes.InvalidArgument, "volume_path"},
		{"stats: not staged", func() error {
			_, err := e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-1", VolumePath: target})
			return err
		}, codes.NotFound, "vol-1"},
		{"health: no volume_id", func() error {
			_, err := e.ns.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
			return err
		}, codes.InvalidArgument, "volume_id"},
		{"health: unknown volume", func() error {
			_, err := e.ns.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-2"})
			return err
		}, codes.NotFound, "vol-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, tc.call(), tc.wantCode, tc.mention)
		})
	}
	if n := e.fuse.mountCalls(); n != 0 {
		t.Errorf("invalid requests made %d mounts", n)
	}
}

// One FUSE session per volume; publish binds it; everything is idempotent
// and a conflicting repeat is AlreadyExists.
func TestStagePublishLifecycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	staging := filepath.Join(e.dir, "staging")
	t1, t2 := filepath.Join(e.dir, "pod1"), filepath.Join(e.dir, "pod2")
	e.mkvol(t, "vol-1")
	vctx := map[string]string{ParamInteropMode: "shared", ParamForcePageCache: "true"}

	for range 2 {
		if _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, vctx)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fuse.mountCalls(); n != 1 {
		t.Fatalf("staging twice made %d FUSE mounts, want 1", n)
	}
	v := e.fuse.volume(staging)
	want := datapath.Options{Mode: datapath.Shared, ForcePageCache: true, FsName: "goferfs:vol-1"}
	if v == nil || v.opts.Observer == nil {
		t.Fatalf("FUSE mount at staging path: %+v, want one with a metrics observer", v)
	}
	got := v.opts
	got.Observer = nil
	if got != want || v.dir != e.d.volumeDir("vol-1") {
		t.Fatalf("FUSE mount at staging path: %+v, want opts %+v of %s", v, want, e.d.volumeDir("vol-1"))
	}
	_, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, nil))
	wantStatus(t, err, codes.AlreadyExists, "interopMode: shared")
	_, err = e.ns.NodeStageVolume(ctx, stageReq("vol-1", filepath.Join(e.dir, "elsewhere"), vctx))
	wantStatus(t, err, codes.AlreadyExists, staging)

	for range 2 {
		r := publishReq("vol-1", staging, t1, false)
		r.VolumeContext = vctx
		if _, err := e.ns.NodePublishVolume(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	r := publishReq("vol-1", staging, t1, true)
	r.VolumeContext = vctx
	_, err = e.ns.NodePublishVolume(ctx, r)
	wantStatus(t, err, codes.AlreadyExists, "readonly=false")

	r = publishReq("vol-1", staging, t2, true)
	r.VolumeContext = vctx
	if _, err := e.ns.NodePublishVolume(ctx, r); err != nil {
		t.Fatal(err)
	}
	binds := 0
	for _, a := range e.table.GetLog() {
		if a.Action == "mount" && (a.Target == t1 || a.Target == t2) {
			binds++
			if a.Source != "goferfs:vol-1" {
				t.Errorf("bind mount at %s is of %q, want the staged FUSE mount", a.Target, a.Source)
			}
		}
	}
	if binds != 2 {
		t.Errorf("%d bind mounts, want 2 (one per target)", binds)
	}
	mps, _ := e.table.List()
	for _, mp := range mps {
		if mp.Path == t2 && !slices.Contains(mp.Opts, "ro") {
			t.Errorf("readonly publish mounted %s with %v", t2, mp.Opts)
		}
	}

	stats, err := e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-1", VolumePath: t1})
	if err != nil || len(stats.GetUsage()) != 2 || stats.GetUsage()[0].GetTotal() <= 0 {
		t.Errorf("stats: %v, %v", stats, err)
	}
	_, err = e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-1", VolumePath: e.dir})
	wantStatus(t, err, codes.NotFound, "not mounted at")

	_, err = e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging})
	wantStatus(t, err, codes.FailedPrecondition, "still published")

	for _, target := range []string{t1, t2, t1} {
		if _, err := e.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target %s still exists after unpublish: %v", target, err)
		}
	}
	for range 2 {
		if _, err := e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	if v.unmountCount() != 1 || e.fuse.volume(staging) != nil || e.d.lookup("vol-1") != nil {
		t.Errorf("after unstage: %d unmounts, staged=%v", v.unmountCount(), e.d.lookup("vol-1") != nil)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging path still exists after unstage: %v", err)
	}
}

// A failed writeback fails NodeUnstageVolume and keeps the volume staged,
// so no dirty data is dropped; the retry succeeds once writeback does.
func TestUnstageKeepsVolumeWhenWritebackFails(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	staging := filepath.Join(e.dir, "staging")
	e.mkvol(t, "vol-1")
	if _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, nil)); err != nil {
		t.Fatal(err)
	}
	v := e.fuse.volume(staging)
	v.set(errors.New("write back data: remote gone"), nil)
	unstage := &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging}
	_, err := e.ns.NodeUnstageVolume(ctx, unstage)
	wantStatus(t, err, codes.Internal, "remote gone", "stays staged")
	if e.d.lookup("vol-1") == nil || !e.isMounted(t, staging) {
		t.Fatal("volume was dropped after a failed writeback")
	}
	v.set(nil, nil)
	if _, err := e.ns.NodeUnstageVolume(ctx, unstage); err != nil {
		t.Fatal(err)
	}
	if e.isMounted(t, staging) {
		t.Error("still mounted after a successful unstage")
	}
}

// NodeGetVolumeHealth reports a staged volume inaccessible once its FUSE
// session ends or its directory disappears.
func TestVolumeHealth(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	staging := filepath.Join(e.dir, "staging")
	e.mkvol(t, "vol-1")
	req := &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-1"}
	reasons := func() []string {
		t.Helper()
		resp, err := e.ns.NodeGetVolumeHealth(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var rs []string
		for _, h := range resp.GetVolumeHealth().GetHealthStatuses() {
			if h.GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE || h.GetMessage() == "" {
				t.Errorf("health entry %v", h)
			}
			rs = append(rs, h.GetReason())
		}
		return rs
	}
	if r := reasons(); len(r) != 0 {
		t.Errorf("unstaged existing volume: %v, want healthy", r)
	}
	if _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, nil)); err != nil {
		t.Fatal(err)
	}
	if r := reasons(); len(r) != 0 {
		t.Errorf("serving volume: %v, want healthy", r)
	}
	e.fuse.volume(staging).set(nil, datapath.ErrSessionEnded)
	if r := reasons(); !slices.Equal(r, []string{reasonSessionEnded}) {
		t.Errorf("ended session: %v", r)
	}
	if err := os.Remove(e.d.volumeDir("vol-1")); err != nil {
		t.Fatal(err)
	}
	if r := reasons(); !slices.Equal(r, []string{reasonVolumeDirGone, reasonSessionEnded}) {
		t.Errorf("ended session, directory gone: %v", r)
	}
}

// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) allows one target at a time.
func TestSingleWriterAllowsOneTarget(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	staging := filepath.Join(e.dir, "staging")
	e.mkvol(t, "vol-1")
	if _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, nil)); err != nil {
		t.Fatal(err)
	}
	r := publishReq("vol-1", staging, filepath.Join(e.dir, "pod1"), false)
	r.VolumeCapability = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	if _, err := e.ns.NodePublishVolume(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.TargetPath = filepath.Join(e.dir, "pod2")
	_, err := e.ns.NodePublishVolume(ctx, r)
	wantStatus(t, err, codes.FailedPrecondition, "SINGLE_NODE_SINGLE_WRITER")
	if _, err := os.Stat(r.TargetPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused publish left %s behind: %v", r.TargetPath, err)
	}
}

// A mount failure is Internal and leaves nothing staged.
func TestStageMountFailure(t *testing.T) {
	e := newTestEnv(t)
	staging := filepath.Join(e.dir, "staging")
	e.mkvol(t, "vol-1")
	e.fuse.failMounts(errors.New("fuse: device busy"))
	_, err := e.ns.NodeStageVolume(context.Background(), stageReq("vol-1", staging, nil))
	wantStatus(t, err, codes.Internal, "device busy")
	if e.d.lookup("vol-1") != nil {
		t.Error("failed stage recorded the volume")
	}
}

// A symlink in place of a volume directory is never served.
func TestStageRefusesSymlinkedVolume(t *testing.T) {
	e := newTestEnv(t)
	if err := os.Symlink("/etc", e.d.volumeDir("evil")); err != nil {
		t.Fatal(err)
	}
	_, err := e.ns.NodeStageVolume(context.Background(), stageReq("evil", filepath.Join(e.dir, "staging"), nil))
	wantStatus(t, err, codes.NotFound, "not a directory")
	if n := e.fuse.mountCalls(); n != 0 {
		t.Errorf("%d mounts of a symlinked volume", n)
	}
}
