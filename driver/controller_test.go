package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

func createReq(name string, params map[string]string, modes ...csi.VolumeCapability_AccessMode_Mode) *csi.CreateVolumeRequest {
	if len(modes) == 0 {
		modes = []csi.VolumeCapability_AccessMode_Mode{sw}
	}
	r := &csi.CreateVolumeRequest{Name: name, Parameters: params, CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30}}
	for _, m := range modes {
		r.VolumeCapabilities = append(r.VolumeCapabilities, mountCap(m))
	}
	return r
}

// Every controller RPC validates its fields first and names the bad one.
func TestControllerRequestValidation(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	const mnmw = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	create := func(mod func(*csi.CreateVolumeRequest)) func() error {
		return func() error {
			r := createReq("vol-1", nil)
			mod(r)
			_, err := e.cs.CreateVolume(ctx, r)
			return err
		}
	}
	deleteID := func(id string) func() error {
		return func() error { _, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); return err }
	}
	validate := func(id string, caps ...*csi.VolumeCapability) func() error {
		return func() error {
			_, err := e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: caps})
			return err
		}
	}
	for _, tc := range []struct {
		name     string
		call     func() error
		wantCode codes.Code
		mention  string
	}{
		{"create: no name", create(func(r *csi.CreateVolumeRequest) { r.Name = "" }), codes.InvalidArgument, "name"},
		{"create: no capabilities", create(func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = nil }),
			codes.InvalidArgument, "volume_capabilities"},
		{"create: capability without access mode", create(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities[0].AccessMode = nil
		}), codes.InvalidArgument, "volume_capabilities[0].access_mode"},
		{"create: unknown parameter", create(func(r *csi.CreateVolumeRequest) { r.Parameters = map[string]string{"replicas": "3"} }),
			codes.InvalidArgument, `unknown parameter "replicas"`},
		{"create: bad interopMode", create(func(r *csi.CreateVolumeRequest) { r.Parameters = map[string]string{"interopMode": "async"} }),
			codes.InvalidArgument, "allowed values: exclusive, writethrough, shared"},
		{"create: bad forcePageCache", create(func(r *csi.CreateVolumeRequest) { r.Parameters = map[string]string{"forcePageCache": "TRUE"} }),
			codes.InvalidArgument, "allowed values: true, false"},
		{"create: multi-node writer without shared", create(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = append(r.VolumeCapabilities, mountCap(mnmw))
		}), codes.InvalidArgument, "volume_capabilities[1]: access mode MULTI_NODE_MULTI_WRITER needs interopMode: shared"},
		{"create: negative capacity", create(func(r *csi.CreateVolumeRequest) { r.CapacityRange.RequiredBytes = -1 }),
			codes.InvalidArgument, "capacity_range"},
		{"create: required above limit", create(func(r *csi.CreateVolumeRequest) { r.CapacityRange.LimitBytes = 1 }),
			codes.InvalidArgument, "capacity_range"},
		{"create: content source", create(func(r *csi.CreateVolumeRequest) { r.VolumeContentSource = &csi.VolumeContentSource{} }),
			codes.InvalidArgument, "volume_content_source"},
		{"create: another node's topology", create(func(r *csi.CreateVolumeRequest) {
			r.AccessibilityRequirements = &csi.TopologyRequirement{
				Requisite: []*csi.Topology{{Segments: map[string]string{TopologyKey: "node-2"}}},
			}
		}), codes.ResourceExhausted, "node-1"},
		{"delete: no volume_id", deleteID(""), codes.InvalidArgument, "volume_id"},
		{"delete: ..", deleteID(".."), codes.InvalidArgument, "volume_id"},
		{"delete: ../etc", deleteID("../etc"), codes.InvalidArgument, "volume_id"},
		{"delete: a/b", deleteID("a/b"), codes.InvalidArgument, "volume_id"},
		{"delete: NUL", deleteID("a\x00b"), codes.InvalidArgument, "volume_id"},
		{"delete: 300 bytes", deleteID(strings.Repeat("a", 300)), codes.InvalidArgument, "volume_id"},
		{"delete: .", deleteID("."), codes.InvalidArgument, "volume_id"},
		{"delete: unknown", deleteID("vol-unknown"), codes.OK, ""},
		{"validate: no volume_id", validate("", mountCap(sw)), codes.InvalidArgument, "volume_id"},
		{"validate: ../etc", validate("../etc", mountCap(sw)), codes.InvalidArgument, "volume_id"},
		{"validate: no capabilities", validate("vol-unknown"), codes.InvalidArgument, "volume_capabilities"},
		{"validate: unknown volume", validate("vol-unknown", mountCap(sw)), codes.NotFound, "vol-unknown"},
		{"capacity: unknown parameter", func() error {
			_, err := e.cs.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"x": "y"}})
			return err
		}, codes.InvalidArgument, `"x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, tc.call(), tc.wantCode, tc.mention)
		})
	}
	if entries, _ := os.ReadDir(e.d.root); len(entries) != 0 {
		t.Errorf("invalid requests left %d entries in root", len(entries))
	}
}

// CreateVolume with the same name returns the same volume; a different
// capacity or parameters for that name is AlreadyExists.
func TestCreateVolumeIsIdempotent(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	params := map[string]string{ParamInteropMode: "shared", "csi.storage.k8s.io/pvc/name": "data"}
	req := createReq("pvc-1", params, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{
		{Segments: map[string]string{TopologyKey: "node-2"}},
		{Segments: map[string]string{TopologyKey: "node-1"}},
	}}
	first, err := e.cs.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	v := first.GetVolume()
	if v.GetVolumeId() != "pvc-1" || v.GetCapacityBytes() != 1<<30 ||
		v.GetVolumeContext()[ParamInteropMode] != "shared" || v.GetVolumeContext()[ParamForcePageCache] != "false" ||
		v.GetAccessibleTopology()[0].GetSegments()[TopologyKey] != "node-1" {
		t.Fatalf("created %v", v)
	}
	fi, err := os.Stat(e.d.volumeDir("pvc-1"))
	if err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("volume directory: %v, %v", fi, err)
	}
	again, err := e.cs.CreateVolume(ctx, req)
	if err != nil || again.GetVolume().GetVolumeId() != "pvc-1" {
		t.Fatalf("retry: %v, %v", again, err)
	}

	bigger := createReq("pvc-1", params, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	bigger.CapacityRange.RequiredBytes = 2 << 30
	_, err = e.cs.CreateVolume(ctx, bigger)
	wantStatus(t, err, codes.AlreadyExists, "capacity")
	_, err = e.cs.CreateVolume(ctx, createReq("pvc-1", nil))
	wantStatus(t, err, codes.AlreadyExists, "interopMode: shared")

	// The metadata lives outside the volume, where users cannot see it.
	if entries, _ := os.ReadDir(e.d.volumeDir("pvc-1")); len(entries) != 0 {
		t.Errorf("volume is not empty: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(e.d.root, metaDirName, "pvc-1.json")); err != nil {
		t.Errorf("metadata: %v", err)
	}
}

// Names that are not safe path components are hashed into IDs that stay
// inside Root.
func TestCreateVolumeHashesUnsafeNames(t *testing.T) {
	e := newTestEnv(t)
	for _, name := range []string{"../../etc", "a/b", strings.Repeat("n", 300), ".hidden"} {
		resp, err := e.cs.CreateVolume(context.Background(), createReq(name, nil))
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetVolume().GetVolumeId()
		if !strings.HasPrefix(id, "sha256-") || filepath.Dir(e.d.volumeDir(id)) != e.d.root {
			t.Errorf("name %q got ID %q", name, id)
		}
	}
}

// A crash between writing the metadata and making the directory is
// finished by the retry; a directory the driver did not make is neither
// adopted by CreateVolume nor deleted by DeleteVolume.
func TestCreateVolumeCrashRecoveryAndForeignDirectories(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if err := e.d.writeMeta("pvc-1", &volumeMeta{Name: "pvc-1", CapacityBytes: 1 << 30, Params: volumeParams{Mode: "exclusive"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CreateVolume(ctx, createReq("pvc-1", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.d.volumeDir("pvc-1")); err != nil {
		t.Errorf("retry did not make the directory: %v", err)
	}

	e.mkvol(t, "static")
	if err := os.WriteFile(filepath.Join(e.d.volumeDir("static"), "data"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.cs.CreateVolume(ctx, createReq("static", nil))
	wantStatus(t, err, codes.AlreadyExists, "not created by this driver")
	if _, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "static"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.d.volumeDir("static"), "data")); err != nil {
		t.Errorf("DeleteVolume removed a directory it did not create: %v", err)
	}
}

// DeleteVolume removes the whole tree and the metadata, is idempotent, and
// refuses a volume this process has staged.
func TestDeleteVolume(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if _, err := e.cs.CreateVolume(ctx, createReq("pvc-1", nil)); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(e.dir, "staging")
	if _, err := e.ns.NodeStageVolume(ctx, stageReq("pvc-1", staging, nil)); err != nil {
		t.Fatal(err)
	}
	del := &csi.DeleteVolumeRequest{VolumeId: "pvc-1"}
	_, err := e.cs.DeleteVolume(ctx, del)
	wantStatus(t, err, codes.FailedPrecondition, staging)
	if _, err := e.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "pvc-1", StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}

	nested := filepath.Join(e.d.volumeDir("pvc-1"), "a", "b")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(nested, "etc")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.cs.DeleteVolume(ctx, del); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{e.d.volumeDir("pvc-1"), e.d.metaPath("pvc-1")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived DeleteVolume: %v", p, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("deleting a symlink to /etc reached /etc: %v", err)
	}
	_, err = e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
		VolumeId: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{mountCap(sw)},
	})
	wantStatus(t, err, codes.NotFound)
}

// ValidateVolumeCapabilities confirms what the volume's mode can serve and
// explains what it cannot.
func TestValidateVolumeCapabilities(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if _, err := e.cs.CreateVolume(ctx, createReq("pvc-1", nil)); err != nil {
		t.Fatal(err)
	}
	validate := func(mode csi.VolumeCapability_AccessMode_Mode) *csi.ValidateVolumeCapabilitiesResponse {
		t.Helper()
		resp, err := e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
			VolumeId: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{mountCap(mode)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := validate(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY); r.GetConfirmed() == nil {
		t.Errorf("reader-only not confirmed: %s", r.GetMessage())
	}
	r := validate(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	if r.GetConfirmed() != nil || !strings.Contains(r.GetMessage(), "needs interopMode: shared") {
		t.Errorf("multi-node writer on an exclusive volume: %v", r)
	}
}

// GetCapacity reports Root's free space, and none where this node cannot
// serve the request.
func TestGetCapacity(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	resp, err := e.cs.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil || resp.GetAvailableCapacity() <= 0 {
		t.Fatalf("capacity %v, %v", resp, err)
	}
	for name, req := range map[string]*csi.GetCapacityRequest{
		"other node": {AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: "node-2"}}},
		"multi-node writer, exclusive": {VolumeCapabilities: []*csi.VolumeCapability{
			mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER),
		}},
	} {
		resp, err := e.cs.GetCapacity(ctx, req)
		if err != nil || resp.GetAvailableCapacity() != 0 {
			t.Errorf("%s: %v, %v; want 0", name, resp, err)
		}
	}
}
