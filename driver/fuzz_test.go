package driver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/mount-utils"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// The fuzz targets feed hostile request fields to the real controller and
// node services (over fake FUSE and bind mounts) and check what must hold
// for any input: no panic, every error a status with a code the driver
// means to return, and nothing changed outside the driver's directories.
// Each run's base directory holds root/ (Root: vol-1 made by CreateVolume
// with a symlink to outside/ in it, foreign/ without metadata, and a
// tampered link -> ../outside with metadata), state/ (StateDir), scratch/
// (the CO's staging and target paths) and outside/ (a sentinel tree).

// fuzzCodes are the codes one caller at a time may see. Aborted is left out
// on purpose: a sequential caller must never find a volume lock held.
// Unavailable is what a 9P volume ID gets: the fuzz driver reaches no 9P
// server (newFuzzEnv).
var fuzzCodes = map[codes.Code]bool{
	codes.OK: true, codes.InvalidArgument: true, codes.NotFound: true, codes.AlreadyExists: true,
	codes.FailedPrecondition: true, codes.ResourceExhausted: true, codes.Internal: true, codes.Unavailable: true,
}

// recordingMounter remembers every FUSE mount asked for, including those
// unmounted again before the checks run.
type recordingMounter struct {
	*fakeMounter
	mu    sync.Mutex
	calls [][2]string // dir, target; guarded by mu
}

func (m *recordingMounter) Mount(dir, target string, opts datapath.Options) (MountedVolume, error) {
	m.mu.Lock()
	m.calls = append(m.calls, [2]string{dir, target})
	m.mu.Unlock()
	return m.fakeMounter.Mount(dir, target, opts)
}

// fuzzEnv is one run's driver and directories (see the top of the file).
type fuzzEnv struct {
	*testEnv
	rec                          *recordingMounter
	base, root, scratch, outside string
}

func newFuzzEnv(t *testing.T) *fuzzEnv {
	base := t.TempDir()
	e := &fuzzEnv{base: base, root: filepath.Join(base, "root"),
		scratch: filepath.Join(base, "scratch"), outside: filepath.Join(base, "outside")}
	for _, dir := range []string{e.scratch, filepath.Join(e.outside, "sub"), filepath.Join(e.root, "foreign")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	table := mount.NewFakeMounter(nil)
	e.rec = &recordingMounter{fakeMounter: newFakeMounter(table)}
	d, err := New(Config{NodeID: "node-1", Root: e.root, StateDir: filepath.Join(base, "state"),
		Services: Services{Controller: true, Node: true}, Mounter: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	d.mount = table
	// A fuzzed 9P volume ID names any server: connect to none.
	d.ninepDial = func(context.Context, ninep.Config) (*ninep.FS, error) { return nil, syscall.ECONNREFUSED }
	e.testEnv = &testEnv{d: d, cs: &controllerServer{d: d}, ns: &nodeServer{d: d}, fuse: e.rec.fakeMounter, table: table, dir: e.scratch}
	if _, err := e.cs.CreateVolume(context.Background(), createReq("vol-1", nil)); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string]string{"outside/secret": "s", "outside/sub/data": "d", "root/foreign/file": "f", "root/vol-1/file": "v"} {
		if err := os.WriteFile(filepath.Join(base, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{"root/link": "../outside", "root/vol-1/escape": "../../outside"} {
		if err := os.Symlink(to, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.writeMeta("link", &volumeMeta{Name: "link"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// snapshot describes every entry of the trees rels under base, and the
// names directly in base, so that any creation, removal or change shows.
func (e *fuzzEnv) snapshot(t *testing.T, rels ...string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	names, _ := os.ReadDir(e.base)
	for _, n := range names {
		// scratch/ is the CO's, which the driver may remove; state/ is
		// the driver's own, made on first use.
		if n.Name() != "scratch" && n.Name() != "state" {
			snap["."] += n.Name() + " "
		}
	}
	for _, rel := range rels {
		err := filepath.WalkDir(filepath.Join(e.base, rel), func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v size=%d owner=%d:%d mtime=%v ctime=%v", fi.Mode(), fi.Size(), st.Uid, st.Gid, st.Mtim, st.Ctim)
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				to, err := os.Readlink(path)
				desc += fmt.Sprint(" -> ", to, err)
			case fi.Mode().IsRegular():
				data, err := os.ReadFile(path)
				desc += fmt.Sprintf(" sha256=%x %v", sha256.Sum256(data), err)
			}
			snap[path] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

func (e *fuzzEnv) unchanged(t *testing.T, before map[string]string, rels ...string) {
	t.Helper()
	after := e.snapshot(t, rels...)
	for k, b := range before {
		if a := after[k]; a != b {
			t.Errorf("%s changed:\n before: %q\n after:  %q", k, b, a)
		}
	}
	for k, a := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared: %q", k, a)
		}
	}
}

func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkMounts fails t if any FUSE mount served something other than a
// volume directory in Root, or any mount touched a path outside scratch/.
func (e *fuzzEnv) checkMounts(t *testing.T) {
	t.Helper()
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	for _, c := range e.rec.calls {
		if filepath.Dir(c[0]) != e.root || checkVolumeID(filepath.Base(c[0])) != nil || !within(e.scratch, c[1]) {
			t.Errorf("FUSE mount of %s at %s; want a volume of %s mounted under %s", c[0], c[1], e.root, e.scratch)
		}
	}
	for _, a := range e.table.GetLog() {
		if !within(e.scratch, a.Target) || a.Source != "" && !strings.HasPrefix(a.Source, "goferfs:") && !within(e.scratch, a.Source) {
			t.Errorf("%s of %q at %s outside %s", a.Action, a.Source, a.Target, e.scratch)
		}
	}
}

// checkCode fails t unless err is nil or a status with a fuzzCodes code.
func checkCode(t *testing.T, rpc string, err error) {
	t.Helper()
	if st, ok := status.FromError(err); !ok || !fuzzCodes[st.Code()] {
		t.Errorf("%s: error %v (%T) is not a status with an expected code", rpc, err, err)
	}
}

// fuzzCap builds a capability from fuzzed bytes: any access mode number,
// a missing access mode or access type, block, or mount with the fuzzed
// string as flag, fs_type or mount group.
func fuzzCap(mode, typ byte, s string) *csi.VolumeCapability {
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_Mode(int8(mode))}}
	if typ&0x20 != 0 {
		c.AccessMode = nil
	}
	switch typ % 5 {
	case 0:
		return nil
	case 2:
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	case 3:
		c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	case 4:
		m := &csi.VolumeCapability_MountVolume{MountFlags: []string{s}}
		if typ&0x08 != 0 {
			m.FsType = s
		}
		if typ&0x10 != 0 {
			m.VolumeMountGroup = s
		}
		c.AccessType = &csi.VolumeCapability_Mount{Mount: m}
	}
	return c
}

// FuzzControllerRequests creates, validates, sizes and deletes volumes with
// fuzzed names, IDs, parameters, capabilities and capacities.
func FuzzControllerRequests(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, id, key, val string, caps []byte, required, limit int64, flags byte) {
		e := newFuzzEnv(t)
		ctx := context.Background()
		protected := []string{"outside", "root/foreign"}
		before := e.snapshot(t, protected...)
		kv := map[string]string{key: val}
		var vcaps []*csi.VolumeCapability
		for i := 0; i+1 < len(caps) && i < 8; i += 2 {
			vcaps = append(vcaps, fuzzCap(caps[i], caps[i+1], val))
		}
		req := &csi.CreateVolumeRequest{Name: name, Parameters: kv, VolumeCapabilities: vcaps,
			CapacityRange: &csi.CapacityRange{RequiredBytes: required, LimitBytes: limit}}
		if flags&1 != 0 {
			req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{{Segments: kv}}}
		}
		if flags&2 != 0 {
			req.MutableParameters = kv
		}
		resp, err := e.cs.CreateVolume(ctx, req)
		checkCode(t, "CreateVolume", err)
		ids := []string{id}
		if err == nil {
			got := resp.GetVolume().GetVolumeId()
			if fi, err := os.Lstat(filepath.Join(e.root, got)); checkVolumeID(got) != nil || err != nil || !fi.IsDir() {
				t.Fatalf("CreateVolume(%q) returned the ID %q, which is unsafe or names no directory in Root (%v)", name, got, err)
			}
			ids = append(ids, got)
		}
		_, err = e.cs.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: vcaps, Parameters: kv})
		checkCode(t, "GetCapacity", err)
		for _, vid := range ids {
			_, err = e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
				VolumeId: vid, VolumeCapabilities: vcaps, VolumeContext: kv, Parameters: kv})
			checkCode(t, "ValidateVolumeCapabilities", err)
			_, err = e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vid})
			checkCode(t, "DeleteVolume", err)
		}
		if len(ids) == 2 && err != nil {
			t.Errorf("DeleteVolume of the volume just created (%s): %v", ids[1], err)
		}
		e.unchanged(t, before, protected...)
		e.checkMounts(t)
	})
}

// nodeRPCs are the calls FuzzNodeRequests makes; uses tells which of its two
// paths each must validate (NodeGetVolumeStats ignores staging_target_path).
var nodeRPCs = [...]struct {
	name string
	uses [2]bool
}{
	{"NodeStageVolume", [2]bool{true, false}}, {"NodePublishVolume", [2]bool{true, true}},
	{"NodeUnpublishVolume", [2]bool{false, true}}, {"NodeUnstageVolume", [2]bool{true, false}},
	{"NodeGetVolumeStats", [2]bool{true, false}}, {"NodeGetVolumeHealth", [2]bool{true, true}},
}

// FuzzNodeRequests runs fuzzed node RPCs over a fuzzed volume ID and vol-1,
// fuzzed paths and volume context. Each byte of ops picks the RPC (bits 1-2;
// bit 0 adds the volume context or picks the second RPC of a pair), the ID
// (bit 3), the two paths (bits 4, 5) and the capability (bits 6-7). After
// every call the driver's record must match the mount table; at the end
// every volume it holds must unpublish and unstage cleanly.
func FuzzNodeRequests(f *testing.F) {
	f.Fuzz(func(t *testing.T, id, staging, target, key, val string, ops []byte, mode, typ byte) {
		e := newFuzzEnv(t)
		ctx := context.Background()
		protected := []string{"outside", "root"}
		before := e.snapshot(t, protected...)
		ids := [2]string{id, "vol-1"}
		paths := [2]string{e.coPath(staging), e.coPath(target)}
		caps := [4]*csi.VolumeCapability{mountCap(sw), mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER),
			mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), fuzzCap(mode, typ, val)}
		for i, op := range ops[:min(len(ops), 16)] {
			vid, p1, p2, c := ids[op>>3&1], paths[op>>4&1], paths[op>>5&1], caps[op>>6]
			var vctx map[string]string
			if op&1 != 0 {
				vctx = map[string]string{key: val}
			}
			k := int(op >> 1 & 3)
			if k >= 2 {
				k = 2*k - 2 + int(op&1)
			}
			var err error
			switch k {
			case 0:
				_, err = e.ns.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vid, StagingTargetPath: p1, VolumeCapability: c, VolumeContext: vctx})
			case 1:
				_, err = e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vid, StagingTargetPath: p1, TargetPath: p2,
					VolumeCapability: c, VolumeContext: vctx, Readonly: op&0x80 != 0})
			case 2:
				_, err = e.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vid, TargetPath: p2})
			case 3:
				_, err = e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vid, StagingTargetPath: p1})
			case 4:
				_, err = e.ns.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vid, VolumePath: p1, StagingTargetPath: p2})
			case 5:
				_, err = e.ns.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: vid, StagingTargetPath: p1, VolumePublishPath: p2})
			}
			rpc := fmt.Sprintf("%s(%q, %q, %q)", nodeRPCs[k].name, vid, p1, p2)
			checkCode(t, fmt.Sprintf("op %d %s", i, rpc), err)
			if uses := nodeRPCs[k].uses; err == nil && (uses[0] && relative(p1) || uses[1] && relative(p2)) {
				t.Errorf("op %d %s succeeded with a relative path", i, rpc)
			}
			e.checkRecords(t, fmt.Sprintf("after op %d %s (%v)", i, rpc, err))
		}
		e.teardown(t)
		e.unchanged(t, before, protected...)
		e.checkMounts(t)
	})
}

// coPath turns a fuzzed path into one a CO would send: empty and relative
// paths as they are (the driver must refuse them), absolute ones under
// scratch/. One whose ".." climbs out of scratch/ is clamped, because the
// driver rightly creates and removes what the CO names: the CO owns those
// paths, and the checks are about what the driver reaches on its own.
func (e *fuzzEnv) coPath(s string) string {
	if !strings.HasPrefix(s, "/") {
		return s
	}
	if p := e.scratch + s; within(e.scratch, filepath.Clean(p)) {
		return p
	}
	return filepath.Join(e.scratch, "clamped")
}

func relative(p string) bool { return p != "" && !filepath.IsAbs(p) }

// checkRecords fails t unless the mount table holds exactly the staging
// paths and targets the driver records: a staged volume the driver no
// longer has mounted could never be written back, and a mount it forgot
// would never be unmounted.
func (e *fuzzEnv) checkRecords(t *testing.T, when string) {
	t.Helper()
	var want []string
	e.d.mu.Lock()
	for _, st := range e.d.staged {
		want = append(want, st.path)
		for target := range st.targets {
			want = append(want, target)
		}
	}
	e.d.mu.Unlock()
	mps, _ := e.table.List()
	var have []string
	for _, mp := range mps {
		have = append(have, mp.Path)
	}
	slices.Sort(want)
	if slices.Sort(have); !slices.Equal(have, want) {
		t.Fatalf("%s: mount table has %q, the driver records %q", when, have, want)
	}
}

// teardown unpublishes and unstages everything the driver holds, in ID
// order, as a CO does before it drains a node; each call must succeed and
// leave no mount behind.
func (e *fuzzEnv) teardown(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	e.d.mu.Lock()
	staged := slices.SortedFunc(maps.Values(e.d.staged), func(a, b *stagedVolume) int { return strings.Compare(a.id, b.id) })
	targets := make([][]string, len(staged))
	for i, st := range staged {
		targets[i] = slices.Sorted(maps.Keys(st.targets))
	}
	e.d.mu.Unlock()
	for i, st := range staged {
		for _, target := range targets[i] {
			if _, err := e.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: st.id, TargetPath: target}); err != nil {
				t.Errorf("teardown: NodeUnpublishVolume(%s, %s): %v", st.id, target, err)
			}
		}
		if _, err := e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: st.id, StagingTargetPath: st.path}); err != nil {
			t.Errorf("teardown: NodeUnstageVolume(%s, %s): %v", st.id, st.path, err)
		}
	}
	if mps, _ := e.table.List(); len(mps) != 0 {
		t.Errorf("mounts left after teardown: %v", mps)
	}
}
