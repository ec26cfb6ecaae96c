package driver

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
)

func TestSocketPath(t *testing.T) {
	for _, tc := range []struct {
		endpoint, want string
		wantErr        bool
	}{
		{"unix:///run/csi/csi.sock", "/run/csi/csi.sock", false},
		{"unix:/run/csi/csi.sock", "/run/csi/csi.sock", false},
		{"/run/csi/csi.sock", "/run/csi/csi.sock", false},
		{"tcp://127.0.0.1:10000", "", true},
		{"unix://relative.sock", "", true},
		{"csi.sock", "", true},
		{"", "", true},
	} {
		got, err := socketPath(tc.endpoint)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("socketPath(%q) = %q, %v", tc.endpoint, got, err)
		}
	}
}

// Run replaces a stale socket but never a file that is not one.
func TestRunSocketFile(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := removeStaleSocket(stale); err != nil {
		t.Errorf("stale socket: %v", err)
	}
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := removeStaleSocket(regular); err == nil {
		t.Error("removed a regular file")
	}
}

// captureLogs sends klog output, at verbosity 4, to the returned buffer
// for the rest of the test.
func captureLogs(t *testing.T) *syncBuffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"v": "4", "logtostderr": "false", "alsologtostderr": "false"} {
		if err := fs.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	var buf syncBuffer
	klog.SetOutput(&buf)
	t.Cleanup(func() {
		klog.Flush()
		fs.Set("v", "0")
		fs.Set("logtostderr", "true")
		klog.SetOutput(os.Stderr)
	})
	return &buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Run serves on the socket, logs every call without its secrets, and on
// stop writes back what it staged and keeps the record of it. With a state
// directory the mounts stay for the next process to restore on top of;
// with UnmountOnExit they are unmounted.
func TestRunLogsCallsAndWritesBackOnStop(t *testing.T) {
	for _, unmountOnExit := range []bool{false, true} {
		t.Run(fmt.Sprintf("unmountOnExit=%t", unmountOnExit), func(t *testing.T) {
			testRunStop(t, unmountOnExit)
		})
	}
}

func testRunStop(t *testing.T, unmountOnExit bool) {
	logs := captureLogs(t)
	state := filepath.Join(t.TempDir(), "state")
	e := newTestEnvWithState(t, state)
	e.d.unmountOnExit = unmountOnExit
	e.mkvol(t, "vol-1")
	sock := filepath.Join(e.dir, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- e.d.Run(ctx, "unix://"+sock) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// WaitForReady rides out the moment before Run listens.
	ready := grpc.WaitForReady(true)
	info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{}, ready)
	if err != nil || info.GetName() != DefaultName || info.GetVendorVersion() != "test" {
		t.Fatalf("GetPluginInfo: %v, %v", info, err)
	}
	staging, target := filepath.Join(e.dir, "staging"), filepath.Join(e.dir, "pod")
	const secret = "s3cr3t-token-value"
	node := csi.NewNodeClient(conn)
	stage := stageReq("vol-1", staging, nil)
	stage.Secrets = map[string]string{"token": secret}
	if _, err := node.NodeStageVolume(ctx, stage); err != nil {
		t.Fatal(err)
	}
	publish := publishReq("vol-1", staging, target, false)
	publish.Secrets = map[string]string{"token": secret}
	if _, err := node.NodePublishVolume(ctx, publish); err != nil {
		t.Fatal(err)
	}
	if _, err := node.NodePublishVolume(ctx, publishReq("../x", staging, target, false)); err == nil {
		t.Fatal("hostile volume ID accepted")
	}
	v := e.fuse.volume(staging)

	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if unmountOnExit {
		if v.unmountCount() != 1 || e.isMounted(t, target) || e.isMounted(t, staging) {
			t.Errorf("after stop: %d unmounts of the FUSE volume, target mounted %v", v.unmountCount(), e.isMounted(t, target))
		}
	} else if v.releaseCount() != 1 || v.unmountCount() != 0 || !e.isMounted(t, target) || !e.isMounted(t, staging) {
		t.Errorf("after stop: %d writebacks and %d unmounts of the FUSE volume, target mounted %v, staging mounted %v; want 1, 0, true, true",
			v.releaseCount(), v.unmountCount(), e.isMounted(t, target), e.isMounted(t, staging))
	}
	if _, err := os.Stat(e.d.stateFile("vol-1")); err != nil {
		t.Errorf("stop dropped the record the next process restores from: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}

	klog.Flush()
	out := logs.String()
	if strings.Contains(out, secret) {
		t.Errorf("a secret reached the log:\n%s", out)
	}
	for _, want := range []string{"/csi.v1.Node/NodeStageVolume", `volumeID="vol-1"`, `code="InvalidArgument"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// A restarted node plugin mounts again what its predecessor had staged and
// published, since the CO will not stage it again.
func TestRestoreAfterRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	e := newTestEnvWithState(t, state)
	ctx := context.Background()
	e.mkvol(t, "vol-1")
	staging, target := filepath.Join(e.dir, "staging"), filepath.Join(e.dir, "pod")
	if _, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, map[string]string{ParamInteropMode: "writethrough"})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: "vol-1", StagingTargetPath: staging, TargetPath: target, Readonly: true,
		VolumeCapability: mountCap(sw), VolumeContext: map[string]string{ParamInteropMode: "writethrough"},
	}); err != nil {
		t.Fatal(err)
	}

	// The process dies: its mounts are gone, its directories and record stay.
	next := newTestEnvWithState(t, state)
	next.d.root = e.d.root
	next.d.restore()

	st := next.d.lookup("vol-1")
	if st == nil || st.path != staging || st.params.Mode != "writethrough" {
		t.Fatalf("restored %+v", st)
	}
	if !next.isMounted(t, staging) || !next.isMounted(t, target) {
		t.Fatal("restore did not mount the staging path and the target")
	}
	if got := st.targets[target]; !got.ReadOnly {
		t.Errorf("target restored as %+v, want read-only", got)
	}
	if _, err := next.ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := next.ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(next.d.stateFile("vol-1")); !os.IsNotExist(err) {
		t.Errorf("record survived unstage: %v", err)
	}
}
