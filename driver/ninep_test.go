package driver

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
)

const mnmwCap = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER

func ninepParams(server, export string) map[string]string {
	return map[string]string{ParamBackend: Backend9P, ParamServer: server, ParamExport: export, ParamInteropMode: "shared"}
}

func TestNinepParamValidation(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	with := func(k, v string) map[string]string {
		p := ninepParams("127.0.0.1:5640", "/srv/vols")
		if v == "" {
			delete(p, k)
		} else {
			p[k] = v
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		params  map[string]string
		mention string
	}{
		{"unknown backend", with(ParamBackend, "nfs"), ParamBackend},
		{"no server", with(ParamServer, ""), ParamServer},
		{"server without port", with(ParamServer, "fileserver"), ParamServer},
		{"server with bad port", with(ParamServer, "fileserver:99999"), ParamServer},
		{"no export", with(ParamExport, ""), ParamExport},
		{"relative export", with(ParamExport, "srv/vols"), ParamExport},
		{"export with dot-dot", with(ParamExport, "/srv/../etc"), ParamExport},
		{"msize not a number", with(ParamMsize, "big"), ParamMsize},
		{"msize too small", with(ParamMsize, "100"), ParamMsize},
		{"server without backend", map[string]string{ParamServer: "127.0.0.1:5640"}, ParamServer},
		{"msize without backend", map[string]string{ParamMsize: "65536"}, ParamMsize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.cs.CreateVolume(ctx, createReq("vol-1", tc.params))
			wantStatus(t, err, codes.InvalidArgument, tc.mention)
		})
	}
	// Hostile volume IDs never reach the server: they are refused first.
	for _, id := range []string{"../etc", "a/b", "..", ".hidden", "x\x00y"} {
		_, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		wantStatus(t, err, codes.InvalidArgument, "volume_id")
		_, err = e.ns.NodeStageVolume(ctx, stageReq(id, filepath.Join(e.dir, "staging"), ninepParams("127.0.0.1:1", "/srv")))
		wantStatus(t, err, codes.InvalidArgument, "volume_id")
	}
	// The same checks guard the node: a volume context is parameters too.
	_, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", filepath.Join(e.dir, "staging"), with(ParamExport, "srv")))
	wantStatus(t, err, codes.InvalidArgument, ParamExport)
}

// TestNinepControllerLifecycle creates, checks, measures and deletes a
// volume on each 9P server.
func TestNinepControllerLifecycle(t *testing.T) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			export := t.TempDir()
			srv := ninetest.Start(t, kind, export)
			e := newTestEnv(t)
			ctx := context.Background()
			params := ninepParams(srv.Config.Server, srv.Config.Export)
			resp, err := e.cs.CreateVolume(ctx, createReq("pvc-1", params, mnmwCap))
			if err != nil {
				t.Fatal(err)
			}
			id := resp.GetVolume().GetVolumeId()
			if len(resp.GetVolume().GetAccessibleTopology()) != 0 {
				t.Errorf("a 9P volume has topology %v; it must not be pinned to a node", resp.GetVolume().GetAccessibleTopology())
			}
			fi, err := os.Stat(filepath.Join(export, "pvc-1"))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
				t.Fatalf("volume directory on the export: %v, %v", fi, err)
			}
			vctx := resp.GetVolume().GetVolumeContext()
			if vctx[ParamBackend] != Backend9P || vctx[ParamServer] != srv.Config.Server || vctx[ParamExport] != srv.Config.Export {
				t.Fatalf("volume context %v lacks the server", vctx)
			}
			// A retry finds the same volume.
			if again, err := e.cs.CreateVolume(ctx, createReq("pvc-1", params, mnmwCap)); err != nil || again.GetVolume().GetVolumeId() != id {
				t.Fatalf("retry: %v, %v", again, err)
			}
			if _, err := e.cs.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
				VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{mountCap(mnmwCap)}, VolumeContext: vctx,
			}); err != nil {
				t.Fatal(err)
			}
			capResp, err := e.cs.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: params})
			if err != nil || capResp.GetAvailableCapacity() <= 0 {
				t.Fatalf("GetCapacity: %v, %v", capResp, err)
			}
			// Contents, including a symlink out of the volume: delete
			// removes the link, never its target.
			outside := t.TempDir()
			keep := filepath.Join(outside, "keep")
			if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			vdir := filepath.Join(export, "pvc-1")
			if err := os.MkdirAll(filepath.Join(vdir, "a", "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vdir, "a", "b", "f"), []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(vdir, "a", "out")); err != nil {
				t.Fatal(err)
			}
			for range 2 { // idempotent
				if _, err := e.cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Lstat(vdir); !os.IsNotExist(err) {
				t.Fatalf("volume directory after delete: %v", err)
			}
			if _, err := os.Stat(keep); err != nil {
				t.Fatalf("delete followed a symlink out of the volume: %v", err)
			}
		})
	}
}

// TestNinepBadServers: a wrong server or export fails CreateVolume and
// NodeStageVolume fast with a clear code, never a hang.
func TestNinepBadServers(t *testing.T) {
	gofer := ninetest.Start(t, "gofer", t.TempDir())
	garbage := ninetest.ServeTCP(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	})
	dotU := ninetest.ServeTCP(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		v := "9P2000.u"
		b := binary.LittleEndian.AppendUint32(nil, uint32(13+len(v)))
		b = append(b, 101, 0xff, 0xff)
		b = binary.LittleEndian.AppendUint32(b, 8192)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		c.Write(append(b, v...))
	})
	unreachable := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	e := newTestEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		server, export string
		want           codes.Code
		mention        string
	}{
		{"unreachable", unreachable, "/", codes.Unavailable, unreachable},
		{"another protocol", garbage, "/", codes.InvalidArgument, "9P2000.L"},
		{"9P2000.u only", dotU, "/", codes.InvalidArgument, "9P2000.u"},
		{"missing export", gofer.Config.Server, "/no/such/export", codes.InvalidArgument, "/no/such/export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.cs.CreateVolume(ctx, createReq("vol-1", ninepParams(tc.server, tc.export), mnmwCap))
			wantStatus(t, err, tc.want, tc.mention)
			_, err = e.cs.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: ninepParams(tc.server, tc.export)})
			wantStatus(t, err, tc.want, tc.mention)
		})
	}
}

// TestNinepNodeStage stages and publishes a 9P volume with real FUSE
// mounts: a write through the pod's path lands in the export.
func TestNinepNodeStage(t *testing.T) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			re := newRealEnv(t)
			export := t.TempDir()
			srv := ninetest.Start(t, kind, export)
			if err := os.Mkdir(filepath.Join(export, "vol-1"), 0o777); err != nil {
				t.Fatal(err)
			}
			ns := re.driver(t)
			ctx := context.Background()
			vctx := ninepParams(srv.Config.Server, srv.Config.Export)
			vctx[ParamInteropMode] = "writethrough"
			// A volume the server does not have is NotFound.
			_, err := ns.NodeStageVolume(ctx, stageReq("vol-2", re.staging, vctx))
			wantStatus(t, err, codes.NotFound, "vol-2")
			if _, err := ns.NodeStageVolume(ctx, stageReq("vol-1", re.staging, vctx)); err != nil {
				t.Fatal(err)
			}
			pub := publishReq("vol-1", re.staging, re.target, false)
			pub.VolumeContext = vctx
			if _, err := ns.NodePublishVolume(ctx, pub); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(re.target, "hello"), []byte("over 9P"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(export, "vol-1", "hello")); err != nil || string(b) != "over 9P" {
				t.Fatalf("export holds %q, %v", b, err)
			}
			if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: re.target}); err != nil {
				t.Fatal(err)
			}
			if _, err := ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: re.staging}); err != nil {
				t.Fatal(err)
			}

			// A volume made by CreateVolume: its ID names the server, and
			// the node mounts the directory the ID names.
			resp, err := controllerOn(t, "node-2").CreateVolume(ctx, createReq("pvc-1", ninepParams(srv.Config.Server, srv.Config.Export), mnmwCap))
			if err != nil {
				t.Fatal(err)
			}
			id, vctx := resp.GetVolume().GetVolumeId(), resp.GetVolume().GetVolumeContext()
			stage := stageReq(id, re.staging, vctx)
			stage.VolumeCapability = mountCap(mnmwCap)
			if _, err := ns.NodeStageVolume(ctx, stage); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(re.staging, "hello"), []byte("by ID"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(export, "pvc-1", "hello")); err != nil || string(b) != "by ID" {
				t.Fatalf("export holds %q, %v", b, err)
			}
			if _, err := ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: re.staging}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
