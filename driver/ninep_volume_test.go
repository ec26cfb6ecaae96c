package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
)

// A 9P volume ID names its server, export and directory, reads as what it
// names, and is a safe path component like every other ID.
func TestNinepVolumeIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		server, export, dir string
		want                string // "" skips the check of the spelling
	}{
		{"gofer.storage.svc:5640", "/", "pvc-0b6f1f9e-6b8a-4f7e-9a44-2f4a3c1d2e10",
			"9p__gofer.storage.svc_3A5640__.__pvc-0b6f1f9e-6b8a-4f7e-9a44-2f4a3c1d2e10"},
		{"10.0.0.5:5640", "/srv/volumes", "pvc-1", "9p__10.0.0.5_3A5640__.srv.volumes__pvc-1"},
		{"[fd00::1]:5640", "/srv/my_vols.d", "a__b", "9p___5Bfd00_3A_3A1_5D_3A5640__.srv.my_5Fvols_2Ed__a__b"},
		{"/run/gofer/9p.sock", "/exp", "_x", "9p___2Frun_2Fgofer_2F9p.sock__.exp___x"},
		{"h:1", "/a b/%/é", "sha256-" + strings.Repeat("0", 64), ""},
	} {
		id := ninepVolumeID(tc.server, tc.export, tc.dir)
		if tc.want != "" && id != tc.want {
			t.Errorf("ID of %q %q %q is %q, want %q", tc.server, tc.export, tc.dir, id, tc.want)
		}
		if err := checkVolumeID(id); err != nil {
			t.Errorf("ID %q is not a safe volume ID: %v", id, err)
		}
		r, ok, err := parseNinepVolumeID(id)
		if !ok || err != nil || r != (ninepRef{Server: tc.server, Export: tc.export, Dir: tc.dir}) {
			t.Errorf("parse %q = %+v, %v, %v", id, r, ok, err)
		}
		if got := ninepDir(id); got != tc.dir {
			t.Errorf("directory of %q is %q, want %q", id, got, tc.dir)
		}
	}
	// IDs of local volumes, of the earlier 9P scheme and of static volumes
	// are not 9P IDs; a name shaped like one is hashed into a local ID.
	for _, id := range []string{"pvc-1", "vol-1", "sha256-abc", "9p_x", "9p"} {
		if _, ok, err := parseNinepVolumeID(id); ok || err != nil {
			t.Errorf("%q parsed as a 9P volume ID (%v)", id, err)
		}
		if ninepDir(id) != id {
			t.Errorf("directory of %q is %q", id, ninepDir(id))
		}
	}
	if id := volumeIDForName("9p__h_3A1__.__x"); strings.HasPrefix(id, ninepIDPrefix) {
		t.Errorf("the name of a local volume became the 9P-shaped ID %q", id)
	}
}

// hostileNinepIDs have the 9P prefix but are malformed, not canonical, or
// name an export or directory that could lead outside the export.
var hostileNinepIDs = []string{
	"9p__",
	"9p__h_3A1",
	"9p__h_3A1__.",
	"9p__h_3A1__.__",
	"9p__h_3A1__.a._2E_2E__d",     // export /a/..
	"9p__h_3A1__._2E_2E__d",       // export /..
	"9p__h_3A1__a__d",             // relative export
	"9p__h_3A1__.a._00__d",        // NUL in the export
	"9p__h_3A1__.__.goferfs-meta", // the metadata directory
	"9p__h_3A1__.__..",
	"9p__h_3A1__.__.",
	"9p__h__.__d",         // no port
	"9p__h_3A99999__.__d", // bad port
	"9p___68_3A1__.__d",   // 'h' escaped: not canonical
	"9p__h_3a1__.__d",     // lower-case hex: not canonical
	"9p__h_2E1_3A1__.__d", // '.' escaped in the server
	"9p__h_3A1___2Fa__d",  // '/' escaped in the export
	"9p__h_3A1__.a_2__d",  // truncated escape
	"9p__h_ZZ_3A1__.__d",  // not hex
	"9p__h_3A1__.a__",
}

// Hostile 9P volume IDs are InvalidArgument in every RPC, before any
// connection to a server.
func TestNinepVolumeIDRejectsHostileIDs(t *testing.T) {
	e := newTestEnv(t)
	e.d.ninepDial = func(_ context.Context, cfg ninep.Config) (*ninep.FS, error) {
		t.Errorf("dialed %s %s", cfg.Server, cfg.Export)
		return nil, os.ErrInvalid
	}
	ctx := context.Background()
	vctx := ninepParams("h:1", "/")
	for _, id := range hostileNinepIDs {
		t.Run(id, func(t *testing.T) {
			if _, ok, err := parseNinepVolumeID(id); !ok || err == nil {
				t.Fatalf("parse %q: %v, %v; want an error", id, ok, err)
			}
			_, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
			wantStatus(t, err, codes.InvalidArgument, "volume_id")
			_, err = e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
				VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{mountCap(mnmwCap)}, VolumeContext: vctx})
			wantStatus(t, err, codes.InvalidArgument, "volume_id")
			_, err = e.ns.NodeStageVolume(ctx, stageReq(id, filepath.Join(e.dir, "staging"), vctx))
			wantStatus(t, err, codes.InvalidArgument, "volume_id")
		})
	}
	// A well-formed ID with another server than its volume context.
	id := ninepVolumeID("h:1", "/", "vol-1")
	_, err := e.ns.NodeStageVolume(ctx, stageReq(id, filepath.Join(e.dir, "staging"), ninepParams("h:2", "/")))
	wantStatus(t, err, codes.InvalidArgument, "volume_context", `"h:2"`)
	if e.fuse.mountCalls() != 0 {
		t.Errorf("%d mounts", e.fuse.mountCalls())
	}
}

// FuzzNinepVolumeID: whatever a CO sends, a 9P volume ID that parses is
// the canonical ID of what it names, whose directory is one plain
// component and whose export is absolute and clean; and any valid server,
// export and directory round-trip.
func FuzzNinepVolumeID(f *testing.F) {
	for _, id := range hostileNinepIDs {
		f.Add(id, "", "", "")
	}
	f.Add("9p__10.0.0.5_3A5640__.srv.volumes__pvc-1", "10.0.0.5:5640", "/srv/volumes", "pvc-1")
	f.Fuzz(func(t *testing.T, id, server, export, dir string) {
		if checkVolumeID(id) == nil {
			if r, ok, err := parseNinepVolumeID(id); ok && err == nil {
				if again := ninepVolumeID(r.Server, r.Export, r.Dir); again != id {
					t.Errorf("%q parsed as %+v, which is %q", id, r, again)
				}
				if checkVolumeID(r.Dir) != nil || filepath.Clean(r.Export) != r.Export || !filepath.IsAbs(r.Export) {
					t.Errorf("%q names %+v", id, r)
				}
			}
		}
		want := ninepRef{Server: server, Export: export, Dir: dir}
		if (ninep.Config{Server: server, Export: export}).Validate() != nil || checkVolumeID(dir) != nil {
			return
		}
		id = ninepVolumeID(server, export, dir)
		if len(id) > maxVolumeIDLen {
			return
		}
		if r, ok, err := parseNinepVolumeID(id); !ok || err != nil || r != want {
			t.Errorf("%+v -> %q -> %+v, %v, %v", want, id, r, ok, err)
		}
	})
}

// controllerOn returns the controller of another node: its own NodeID and
// an empty Root, sharing nothing with the first but the 9P server.
func controllerOn(t *testing.T, node string) *controllerServer {
	t.Helper()
	d, err := New(Config{NodeID: node, Root: t.TempDir(), Services: Services{Controller: true}})
	if err != nil {
		t.Fatal(err)
	}
	return &controllerServer{d: d}
}

// A 9P volume has no topology, and any node's controller can find,
// validate, re-create and delete it: its ID and the metadata on the server
// are all they need. Every node's provisioner deletes a PV without node
// affinity, so concurrent deletes must all succeed.
func TestNinepVolumeManagedFromAnyNode(t *testing.T) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			export := t.TempDir()
			srv := ninetest.Start(t, kind, export)
			a := newTestEnv(t)
			b := controllerOn(t, "node-2")
			ctx := context.Background()
			params := ninepParams(srv.Config.Server, srv.Config.Export)
			req := createReq("pvc-1", params, mnmwCap)
			// Topology of another node only: no refusal.
			req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{
				{Segments: map[string]string{TopologyKey: "node-2"}}}}
			resp, err := a.cs.CreateVolume(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			v := resp.GetVolume()
			id := v.GetVolumeId()
			if want := ninepVolumeID(srv.Config.Server, srv.Config.Export, "pvc-1"); id != want || len(v.GetAccessibleTopology()) != 0 {
				t.Fatalf("created %v; want ID %s and no topology", v, want)
			}
			if _, err := os.Stat(filepath.Join(export, metaDirName, "pvc-1.json")); err != nil {
				t.Errorf("metadata on the server: %v", err)
			}
			if _, err := os.Stat(filepath.Join(a.d.root, metaDirName)); !os.IsNotExist(err) {
				t.Errorf("the provisioning node kept metadata in its Root: %v", err)
			}

			again, err := b.CreateVolume(ctx, createReq("pvc-1", params, mnmwCap))
			if err != nil || again.GetVolume().GetVolumeId() != id || again.GetVolume().GetCapacityBytes() != v.GetCapacityBytes() {
				t.Fatalf("retry on node-2: %v, %v", again, err)
			}
			other := ninepParams(srv.Config.Server, srv.Config.Export)
			other[ParamInteropMode] = "writethrough"
			_, err = b.CreateVolume(ctx, createReq("pvc-1", other))
			wantStatus(t, err, codes.AlreadyExists, "other parameters")
			// node-2 knows the volume's mode from the server: no volume
			// context needed.
			val, err := b.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
				VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{mountCap(mnmwCap)}})
			if err != nil || val.GetConfirmed() == nil {
				t.Fatalf("validate on node-2: %v, %v", val, err)
			}
			capResp, err := b.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: params,
				AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: "node-1"}}})
			if err != nil || capResp.GetAvailableCapacity() <= 0 {
				t.Fatalf("GetCapacity on node-2 for node-1: %v, %v", capResp, err)
			}

			vdir := filepath.Join(export, "pvc-1")
			for i := range 20 {
				sub := filepath.Join(vdir, "d", string(rune('a'+i)))
				if err := os.MkdirAll(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(sub, "f"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			outside := t.TempDir()
			if err := os.Symlink(outside, filepath.Join(vdir, "d", "out")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o644); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i, cs := range []*controllerServer{a.cs, b, controllerOn(t, "node-3")} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("concurrent DeleteVolume %d: %v", i, err)
				}
			}
			if _, err := b.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Errorf("DeleteVolume again: %v", err)
			}
			for _, p := range []string{vdir, filepath.Join(export, metaDirName, "pvc-1.json")} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s survived DeleteVolume: %v", p, err)
				}
			}
			if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
				t.Errorf("delete followed a symlink out of the volume: %v", err)
			}
			_, err = b.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
				VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{mountCap(mnmwCap)}})
			wantStatus(t, err, codes.NotFound)
		})
	}
}

// The metadata is written before the directory and removed after it: a
// crash in between is finished by the retry, and a directory without
// metadata, or whose metadata names another volume, is never adopted nor
// deleted, whichever server and export a (well-formed) ID names.
func TestNinepVolumeCrashSafetyAndForeignDirectories(t *testing.T) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			export := t.TempDir()
			srv := ninetest.Start(t, kind, export)
			e := newTestEnv(t)
			ctx := context.Background()
			params := ninepParams(srv.Config.Server, srv.Config.Export)
			p, err := parseParams("parameters", params)
			if err != nil {
				t.Fatal(err)
			}
			idOf := func(dir string) string { return ninepVolumeID(srv.Config.Server, srv.Config.Export, dir) }
			deleteOK := func(id string) {
				t.Helper()
				if _, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
					t.Fatalf("DeleteVolume %s: %v", id, err)
				}
			}
			fsys, err := ninep.Dial(ctx, e.d.ninepConfig(p, ""))
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()

			// A foreign directory.
			mkfile(t, filepath.Join(export, "foreign", "data"))
			_, err = e.cs.CreateVolume(ctx, createReq("foreign", params))
			wantStatus(t, err, codes.AlreadyExists, "not created by this driver")
			deleteOK(idOf("foreign"))
			if _, err := os.Stat(filepath.Join(export, "foreign", "data")); err != nil {
				t.Errorf("DeleteVolume removed a directory it did not create: %v", err)
			}

			// Metadata written, directory not made yet.
			if err := writeNinepMeta(fsys, "pvc-2", &volumeMeta{Name: "pvc-2", CapacityBytes: 1 << 30, Params: p}); err != nil {
				t.Fatal(err)
			}
			if resp, err := e.cs.CreateVolume(ctx, createReq("pvc-2", params)); err != nil || resp.GetVolume().GetVolumeId() != idOf("pvc-2") {
				t.Fatalf("retry after a crash: %v, %v", resp, err)
			}
			if fi, err := os.Stat(filepath.Join(export, "pvc-2")); err != nil || !fi.IsDir() {
				t.Errorf("retry did not make the directory: %v", err)
			}

			// Directory deleted, metadata not removed yet.
			if err := os.Remove(filepath.Join(export, "pvc-2")); err != nil {
				t.Fatal(err)
			}
			deleteOK(idOf("pvc-2"))
			if _, err := os.Stat(filepath.Join(export, metaDirName, "pvc-2.json")); !os.IsNotExist(err) {
				t.Errorf("metadata survived: %v", err)
			}

			// Metadata of another volume in a directory's place.
			mkfile(t, filepath.Join(export, "pvc-3", "data"))
			if err := writeNinepMeta(fsys, "pvc-3", &volumeMeta{Name: "pvc-other", Params: p}); err != nil {
				t.Fatal(err)
			}
			_, err = e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: idOf("pvc-3")})
			wantStatus(t, err, codes.FailedPrecondition, "pvc-other")
			_, err = e.cs.CreateVolume(ctx, createReq("pvc-3", params))
			wantStatus(t, err, codes.AlreadyExists, "pvc-other")
			if _, err := os.Stat(filepath.Join(export, "pvc-3", "data")); err != nil {
				t.Errorf("a volume with mismatched metadata was deleted: %v", err)
			}

			// An ID that names another directory of the server as its
			// export: nothing there has metadata.
			mkfile(t, filepath.Join(export, "sub", "data", "file"))
			deleteOK(ninepVolumeID(srv.Config.Server, filepath.Join(srv.Config.Export, "sub"), "data"))
			if _, err := os.Stat(filepath.Join(export, "sub", "data", "file")); err != nil {
				t.Errorf("DeleteVolume removed a directory it did not create: %v", err)
			}
			deleteOK(ninepVolumeID(srv.Config.Server, filepath.Join(srv.Config.Export, "no-such-export"), "data"))
		})
	}
}

func mkfile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// 9P volumes of the earlier scheme (ID = directory, metadata in the
// provisioning node's Root) are still validated and deleted by that node
// (their PVs are pinned to it); other nodes leave them alone. A retried
// CreateVolume of such a volume adopts it under the new scheme.
func TestNinepVolumeOfTheEarlierScheme(t *testing.T) {
	export := t.TempDir()
	srv := ninetest.Start(t, "gofer", export)
	a := newTestEnv(t)
	b := controllerOn(t, "node-2")
	ctx := context.Background()
	params := ninepParams(srv.Config.Server, srv.Config.Export)
	p, err := parseParams("parameters", params)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"pvc-old", "pvc-retried"} {
		if err := a.d.writeMeta(dir, &volumeMeta{Name: dir, CapacityBytes: 1 << 30, Params: p}); err != nil {
			t.Fatal(err)
		}
		mkfile(t, filepath.Join(export, dir, "data"))
	}

	if _, err := b.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(export, "pvc-old", "data")); err != nil {
		t.Fatalf("another node deleted a volume it has no metadata of: %v", err)
	}
	val, err := a.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
		VolumeId: "pvc-old", VolumeCapabilities: []*csi.VolumeCapability{mountCap(mnmwCap)}})
	if err != nil || val.GetConfirmed() == nil {
		t.Fatalf("validate: %v, %v", val, err)
	}
	for range 2 {
		if _, err := a.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-old"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{filepath.Join(export, "pvc-old"), a.d.metaPath("pvc-old")} {
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%s survived DeleteVolume: %v", path, err)
		}
	}

	resp, err := a.cs.CreateVolume(ctx, createReq("pvc-retried", params, mnmwCap))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	if id != ninepVolumeID(srv.Config.Server, srv.Config.Export, "pvc-retried") {
		t.Fatalf("adopted as %q", id)
	}
	if _, err := os.Stat(filepath.Join(export, "pvc-retried", "data")); err != nil {
		t.Fatalf("adoption lost the data: %v", err)
	}
	if _, err := b.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(export, "pvc-retried")); !os.IsNotExist(err) {
		t.Errorf("the adopted volume survived DeleteVolume on another node: %v", err)
	}
}

// A server and export too long for a 128-byte ID fail CreateVolume with a
// message that says what to shorten.
func TestNinepVolumeIDTooLong(t *testing.T) {
	e := newTestEnv(t)
	e.d.ninepDial = func(context.Context, ninep.Config) (*ninep.FS, error) {
		t.Error("dialed a server for an ID that cannot be returned")
		return nil, os.ErrInvalid
	}
	params := ninepParams(strings.Repeat("s", 60)+".example:5640", "/"+strings.Repeat("e", 40))
	_, err := e.cs.CreateVolume(context.Background(), createReq("pvc-0b6f1f9e-6b8a-4f7e-9a44-2f4a3c1d2e10", params))
	wantStatus(t, err, codes.InvalidArgument, "128", ParamServer, ParamExport)
}
