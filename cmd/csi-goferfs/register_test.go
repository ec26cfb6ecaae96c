package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// fakeIdentity is the driver side of the registrar: only GetPluginInfo.
type fakeIdentity struct {
	csi.UnimplementedIdentityServer
	name string
}

func (f *fakeIdentity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: f.name, VendorVersion: "test"}, nil
}

// registrarEnv is a directory with the driver's socket and a plugins
// registry, short enough for unix socket paths (t.TempDir may not be).
type registrarEnv struct {
	t         *testing.T
	csiSock   string
	pluginDir string
	errc      chan error
	cancel    context.CancelFunc
}

func newRegistrarEnv(t *testing.T) *registrarEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "reg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &registrarEnv{t: t, csiSock: filepath.Join(dir, "csi.sock"), pluginDir: filepath.Join(dir, "registry")}
	if err := os.Mkdir(e.pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// serveDriver starts a fake driver named name on the CSI socket.
func (e *registrarEnv) serveDriver(name string) {
	lis, err := net.Listen("unix", e.csiSock)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, &fakeIdentity{name: name})
	go srv.Serve(lis)
	e.t.Cleanup(srv.Stop)
}

// start runs the registrar in the background; its result arrives on e.errc.
func (e *registrarEnv) start(driverName string) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.errc = make(chan error, 1)
	cfg := &registerConfig{
		csiAddress:       e.csiSock,
		registrationPath: "/var/lib/kubelet/plugins/goferfs.csi.dev/csi.sock",
		driverName:       driverName,
		pluginDir:        e.pluginDir,
		retryInterval:    20 * time.Millisecond,
	}
	go func() { e.errc <- runRegistrar(ctx, cfg) }()
	e.t.Cleanup(cancel)
}

// result waits for the registrar to return.
func (e *registrarEnv) result() error {
	e.t.Helper()
	select {
	case err := <-e.errc:
		return err
	case <-time.After(30 * time.Second):
		e.t.Fatal("the registrar did not return")
		return nil
	}
}

// kubelet dials the registration socket the way the kubelet's plugin
// watcher does, once it appears.
func (e *registrarEnv) kubelet(sock string) registerapi.RegistrationClient {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("registration socket %s never appeared", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return registerapi.NewRegistrationClient(conn)
}

func TestRegisterGetInfoAndStop(t *testing.T) {
	e := newRegistrarEnv(t)
	// The registrar starts before the driver, as it may in a pod.
	e.start("")
	time.Sleep(50 * time.Millisecond)
	e.serveDriver("goferfs.csi.dev")

	sock := filepath.Join(e.pluginDir, "goferfs.csi.dev-reg.sock")
	k := e.kubelet(sock)
	info, err := k.GetInfo(t.Context(), &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != "goferfs.csi.dev" ||
		info.Endpoint != "/var/lib/kubelet/plugins/goferfs.csi.dev/csi.sock" ||
		len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
		t.Errorf("GetInfo = %+v", info)
	}
	if _, err := k.NotifyRegistrationStatus(t.Context(), &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}

	e.cancel()
	if err := e.result(); err != nil {
		t.Errorf("registrar stopped with %v, want nil", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registration socket left behind: %v", err)
	}
}

func TestRegisterRefused(t *testing.T) {
	e := newRegistrarEnv(t)
	e.serveDriver("goferfs.csi.dev")
	e.start("goferfs.csi.dev")
	k := e.kubelet(filepath.Join(e.pluginDir, "goferfs.csi.dev-reg.sock"))
	if _, err := k.NotifyRegistrationStatus(t.Context(), &registerapi.RegistrationStatus{
		PluginRegistered: false, Error: "NodeGetInfo failed",
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.result(); !errors.Is(err, errRegistrationRefused) {
		t.Errorf("registrar returned %v, want %v", err, errRegistrationRefused)
	}
}

func TestRegisterSocketRemoved(t *testing.T) {
	e := newRegistrarEnv(t)
	e.serveDriver("goferfs.csi.dev")
	e.start("")
	sock := filepath.Join(e.pluginDir, "goferfs.csi.dev-reg.sock")
	e.kubelet(sock)
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := e.result(); err == nil {
		t.Error("registrar kept running without its registration socket")
	}
}

func TestRegisterWrongDriverName(t *testing.T) {
	e := newRegistrarEnv(t)
	e.serveDriver("other.csi.dev")
	e.start("goferfs.csi.dev")
	if err := e.result(); err == nil {
		t.Error("registrar accepted a driver with another name")
	}
	entries, err := os.ReadDir(e.pluginDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("plugins registry holds %v, want nothing", entries)
	}
}
