package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// These tests run the real binary: what happens to volumes when the
// process serving them dies or is stopped can only be seen from outside.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "csi-goferfs-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "csi-goferfs")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build csi-goferfs: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE file systems")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
}

// server is one 'csi-goferfs serve' process and a CSI client of it.
type server struct {
	t                    *testing.T
	dir, root, state, ep string
	cmd                  *exec.Cmd
	conn                 *grpc.ClientConn
	ctrl                 csi.ControllerClient
	node                 csi.NodeClient
}

func newServerDirs(t *testing.T) *server {
	dir := t.TempDir()
	s := &server{t: t, dir: dir, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"),
		ep: filepath.Join(dir, "csi.sock")}
	for _, d := range []string{s.root, s.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// start runs the server and waits until it answers Probe.
func (s *server) start() {
	s.startProcess()
	s.waitReady()
}

// startProcess runs the server without waiting for it.
func (s *server) startProcess() {
	t := s.t
	s.cmd = exec.Command(binary, "serve", "--endpoint", "unix://"+s.ep, "--node-id", "test-node",
		"--root", s.root, "--state-dir", s.state)
	logf, err := os.OpenFile(filepath.Join(s.dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stderr = logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "serve.log"))
			t.Logf("csi-goferfs serve log:\n%s", b)
		}
	})
}

// waitReady connects a client and waits until the server answers Probe.
func (s *server) waitReady() {
	t := s.t
	conn, err := grpc.NewClient("unix://"+s.ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.conn, s.ctrl, s.node = conn, csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	id := csi.NewIdentityClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := id.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil && resp.GetReady().GetValue() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the server and waits for it to exit.
func (s *server) stop(sig syscall.Signal) error {
	s.conn.Close()
	s.cmd.Process.Signal(sig)
	return s.cmd.Wait()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var writerCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// volume is a created, staged and published volume.
type volume struct {
	id, remote, staging, target string
	context                     map[string]string
}

func (s *server) publish(name string, params map[string]string) *volume {
	t := s.t
	resp, err := s.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: name, VolumeCapabilities: []*csi.VolumeCapability{writerCap}, Parameters: params})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	v := &volume{id: resp.GetVolume().GetVolumeId(), context: resp.GetVolume().GetVolumeContext(),
		staging: filepath.Join(s.dir, "staging-"+name), target: filepath.Join(s.dir, "target-"+name)}
	v.remote = filepath.Join(s.root, v.id)
	if _, err := s.node.NodeStageVolume(ctx(t), &csi.NodeStageVolumeRequest{VolumeId: v.id,
		StagingTargetPath: v.staging, VolumeCapability: writerCap, VolumeContext: v.context}); err != nil {
		t.Fatalf("NodeStageVolume: %v", err)
	}
	if _, err := s.node.NodePublishVolume(ctx(t), &csi.NodePublishVolumeRequest{VolumeId: v.id,
		StagingTargetPath: v.staging, TargetPath: v.target, VolumeCapability: writerCap,
		VolumeContext: v.context}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	return v
}

func (s *server) unpublish(v *volume) {
	t := s.t
	if _, err := s.node.NodeUnpublishVolume(ctx(t), &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
	if _, err := s.node.NodeUnstageVolume(ctx(t), &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging}); err != nil {
		t.Fatalf("NodeUnstageVolume: %v", err)
	}
}

// shareDir makes s.dir a shared mount, as the kubelet's directory is:
// mounts made beneath it propagate to the copies made of them.
func (s *server) shareDir() {
	t := s.t
	if err := syscall.Mount(s.dir, s.dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: this detaches whatever a failed
	// test left beneath s.dir before t.TempDir removes it.
	t.Cleanup(func() { syscall.Unmount(s.dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", s.dir, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
}

// containerCopy binds target at dir as a container runtime does for a
// volume mount with mountPropagation HostToContainer: a copy that
// receives the mounts later made on top of target, and makes none of its
// own visible outside.
func containerCopy(t *testing.T, target, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(target, dir, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_SLAVE|syscall.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mounted reports whether path is a mount point in /proc/self/mountinfo.
func mounted(t *testing.T, path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range splitLines(string(b)) {
		if f := fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
