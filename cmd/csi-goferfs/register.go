package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// 'csi-goferfs register' does the job of node-driver-registrar for clusters
// where that image cannot be had: it announces the driver's socket to the
// kubelet through the kubelet's plugin registration API. The kubelet watches
// its plugins_registry directory, dials each socket that appears there, asks
// GetInfo for the plugin's name and endpoint, and reports the outcome with
// NotifyRegistrationStatus. It calls the driver's NodeGetInfo in between, so
// the registration socket appears only once the driver answers.

// registerConfig holds the flags of 'csi-goferfs register'.
type registerConfig struct {
	csiAddress       string
	registrationPath string
	driverName       string
	pluginDir        string
	// retryInterval spaces the attempts to reach the driver at start and
	// the checks that the registration socket is still there.
	retryInterval time.Duration
}

func registerFlags() (*flag.FlagSet, *registerConfig) {
	c := &registerConfig{}
	fl := flag.NewFlagSet("register", flag.ContinueOnError)
	fl.StringVar(&c.csiAddress, "csi-address", "/csi/csi.sock", "the driver's CSI socket as this process sees it (a path, or unix:///path)")
	fl.StringVar(&c.registrationPath, "kubelet-registration-path", "", "the driver's CSI socket as the kubelet sees it, on the host (required)")
	fl.StringVar(&c.driverName, "driver-name", "", "the driver's name (empty: ask the driver with GetPluginInfo; when set, the driver must report the same)")
	fl.StringVar(&c.pluginDir, "plugin-dir", "/registration", "the kubelet's plugins_registry directory as this process sees it")
	fl.DurationVar(&c.retryInterval, "retry-interval", time.Second, "pause between attempts to reach the driver, and between checks of the registration socket")
	klog.InitFlags(fl)
	return fl, c
}

// registerMain registers the driver with the kubelet and keeps the
// registration socket until SIGINT or SIGTERM. It exits non-zero when the
// kubelet rejects the driver or the socket disappears, so the container is
// restarted and registers again.
func registerMain(args []string) int {
	fl, c := registerFlags()
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "csi-goferfs register: unexpected arguments %q\n", fl.Args())
		return 2
	}
	if c.registrationPath == "" {
		fmt.Fprintln(os.Stderr, "csi-goferfs register: --kubelet-registration-path is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := runRegistrar(ctx, c)
	klog.Flush()
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs register: %v\n", err)
		return 1
	}
	return 0
}

// errRegistrationRefused is returned when the kubelet reports that it could
// not register the driver.
var errRegistrationRefused = errors.New("the kubelet refused the registration")

// runRegistrar waits for the driver to answer, serves the registration API
// on <plugin-dir>/<driver>-reg.sock until ctx ends or registration fails,
// and removes the socket before it returns.
func runRegistrar(ctx context.Context, c *registerConfig) error {
	name, err := waitForDriver(ctx, c)
	if err != nil {
		return err
	}
	sock := filepath.Join(c.pluginDir, name+"-reg.sock")
	// A socket left by a killed predecessor would make Listen fail; nothing
	// else creates files with this name.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale registration socket: %w", err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	defer os.Remove(sock)

	failed := make(chan error, 1)
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &registrar{
		name:     name,
		endpoint: c.registrationPath,
		failed:   failed,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	klog.InfoS("Waiting for the kubelet to register the driver", "driver", name, "socket", sock, "endpoint", c.registrationPath)

	tick := time.NewTicker(c.retryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopServer(srv)
			return nil
		case err := <-failed:
			// Graceful, so the kubelet gets the reply to its notification.
			stopServer(srv)
			return err
		case err := <-served:
			return fmt.Errorf("registration server: %w", err)
		case <-tick.C:
			// The kubelet forgets a plugin whose socket is gone (its
			// directory wiped, say): only a new socket registers it again.
			if _, err := os.Stat(sock); err != nil {
				srv.Stop()
				return fmt.Errorf("registration socket %s disappeared: %w", sock, err)
			}
		}
	}
}

// stopServer lets in-flight RPCs finish, but does not wait for a client
// that keeps its connection open.
func stopServer(srv *grpc.Server) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
}

// waitForDriver returns the driver's name once its CSI socket answers
// GetPluginInfo; the driver container may start after this one.
func waitForDriver(ctx context.Context, c *registerConfig) (string, error) {
	target := c.csiAddress
	if filepath.IsAbs(target) {
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", fmt.Errorf("--csi-address %q: %w", c.csiAddress, err)
	}
	defer conn.Close()
	identity := csi.NewIdentityClient(conn)
	for {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := identity.GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{})
		cancel()
		switch {
		case err == nil && c.driverName != "" && info.GetName() != c.driverName:
			return "", fmt.Errorf("the driver at %s is %q, not --driver-name %q", c.csiAddress, info.GetName(), c.driverName)
		case err == nil && info.GetName() == "":
			return "", fmt.Errorf("the driver at %s reports an empty name", c.csiAddress)
		case err == nil:
			return info.GetName(), nil
		}
		klog.InfoS("Waiting for the driver", "address", c.csiAddress, "err", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the driver at %s did not answer: %w", c.csiAddress, ctx.Err())
		case <-time.After(c.retryInterval):
		}
	}
}

// registrar is the kubelet-facing registration service.
type registrar struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
	// failed receives the refusal, if the kubelet reports one.
	failed chan<- error
}

var _ registerapi.RegistrationServer = (*registrar)(nil)

// GetInfo tells the kubelet which CSI driver this is and where it listens.
func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

// NotifyRegistrationStatus receives the kubelet's verdict. A refusal ends
// the registrar: the kubelet does not retry on its own, a new socket does.
func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.GetPluginRegistered() {
		klog.ErrorS(nil, "The kubelet refused the driver", "driver", r.name, "error", s.GetError())
		select {
		case r.failed <- fmt.Errorf("%w: %s", errRegistrationRefused, s.GetError()):
		default:
		}
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	klog.InfoS("Registered with the kubelet", "driver", r.name, "endpoint", r.endpoint)
	return &registerapi.RegistrationStatusResponse{}, nil
}
