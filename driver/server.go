package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// gracefulStopTimeout bounds how long Run waits for in-flight RPCs once
// ctx is cancelled; after that they are cut off so the volumes can be
// written back before the process is killed.
const gracefulStopTimeout = 10 * time.Second

// Run serves the selected CSI services on the unix socket endpoint
// ("unix:///path", "unix:/path" or a plain path), and metrics on
// MetricsAddress, until ctx is cancelled. It then stops accepting RPCs and
// writes back every volume this process staged (stopVolumes); the returned
// error lists the volumes that could not be written back. Metrics are served
// until the end, so the writeback can be watched.
func (d *Driver) Run(ctx context.Context, endpoint string) error {
	path, err := socketPath(endpoint)
	if err != nil {
		return err
	}
	if err := removeStaleSocket(path); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	// Metrics first: the restore may take a while, and is worth watching.
	stopMetrics := d.serveMetrics()
	defer stopMetrics()
	if d.services.Node {
		d.restore()
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	defer os.Remove(path)

	srv := grpc.NewServer(grpc.UnaryInterceptor(logCall))
	csi.RegisterIdentityServer(srv, &identityServer{d: d})
	if d.services.Controller {
		csi.RegisterControllerServer(srv, &controllerServer{d: d})
	}
	if d.services.Node {
		csi.RegisterNodeServer(srv, &nodeServer{d: d})
	}
	klog.InfoS("Serving CSI", "endpoint", path, "driver", d.name, "version", d.version,
		"node", d.nodeID, "controller", d.services.Controller, "nodeService", d.services.Node)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err = <-served:
		err = fmt.Errorf("serve %s: %w", path, err)
	case <-ctx.Done():
		stopGracefully(srv)
		<-served
	}
	d.waitForOps()
	if uerr := d.stopVolumes(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	return err
}

func stopGracefully(srv *grpc.Server) {
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(gracefulStopTimeout):
		klog.InfoS("In-flight RPCs did not finish; stopping anyway", "timeout", gracefulStopTimeout)
		srv.Stop()
		<-stopped
	}
}

// waitForOps waits for operations that outlived their RPC (see runLocked),
// but not forever: a mount hung in the kernel must not keep the other
// volumes from being written back.
func (d *Driver) waitForOps() {
	done := make(chan struct{})
	go func() {
		d.ops.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(gracefulStopTimeout):
		klog.InfoS("Volume operations still running; unmounting anyway", "timeout", gracefulStopTimeout)
	}
}

// socketPath returns the file system path of a unix socket endpoint.
func socketPath(endpoint string) (string, error) {
	path := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "unix" {
			return "", fmt.Errorf("endpoint %q: only unix sockets are supported", endpoint)
		}
		path = rest
	} else if rest, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		path = rest
	}
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("endpoint %q: want unix:///absolute/path or an absolute path", endpoint)
	}
	return path, nil
}

// removeStaleSocket removes a socket left by a previous process. Anything
// that is not a socket is left alone: the endpoint is probably wrong.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check endpoint %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("endpoint %s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// logCall logs every RPC and its failure. It logs only the method and the
// IDs and paths of the request, never the request itself: stage, publish
// and controller requests carry secrets.
func logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	kv := append([]any{"method", info.FullMethod}, requestKeys(req)...)
	klog.V(2).InfoS("CSI call", kv...)
	resp, err := handler(ctx, req)
	if err != nil {
		st := status.Convert(err)
		klog.ErrorS(nil, "CSI call failed", append(kv, "code", st.Code(), "message", st.Message())...)
		return nil, err
	}
	klog.V(4).InfoS("CSI call done", kv...)
	return resp, nil
}

// requestKeys picks the fields of req worth logging; none of them can hold
// a secret.
func requestKeys(req any) []any {
	var kv []any
	if r, ok := req.(interface{ GetName() string }); ok && r.GetName() != "" {
		kv = append(kv, "name", r.GetName())
	}
	if r, ok := req.(interface{ GetVolumeId() string }); ok && r.GetVolumeId() != "" {
		kv = append(kv, "volumeID", r.GetVolumeId())
	}
	if r, ok := req.(interface{ GetStagingTargetPath() string }); ok && r.GetStagingTargetPath() != "" {
		kv = append(kv, "stagingPath", r.GetStagingTargetPath())
	}
	if r, ok := req.(interface{ GetTargetPath() string }); ok && r.GetTargetPath() != "" {
		kv = append(kv, "targetPath", r.GetTargetPath())
	}
	if r, ok := req.(interface{ GetVolumePath() string }); ok && r.GetVolumePath() != "" {
		kv = append(kv, "volumePath", r.GetVolumePath())
	}
	return kv
}

// stopVolumes ends this process's hold on every staged volume. With a
// StateDir the next process restores them, so they are written back and
// left mounted: their mounts stay in place (dead once this process exits)
// for the restore to stack new ones on, which is what lets running
// containers see the restored volume (restoreTarget). Without a StateDir,
// or with UnmountOnExit, they are written back and unmounted. The state
// records are kept either way, so the next process restores what the CO
// still believes is mounted.
func (d *Driver) stopVolumes() error {
	if d.stateDir != "" && !d.unmountOnExit {
		return d.forEachVolume(d.releaseVolume)
	}
	return d.forEachVolume(d.shutdownVolume)
}

// forEachVolume calls fn for every staged volume, in parallel: each may
// wait for its session or its remote.
func (d *Driver) forEachVolume(fn func(*stagedVolume) error) error {
	d.mu.Lock()
	vols := slices.Collect(maps.Values(d.staged))
	d.mu.Unlock()
	errs := make(chan error, len(vols))
	for _, st := range vols {
		go func() { errs <- fn(st) }()
	}
	var all []error
	for range vols {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// releaseVolume writes back st and leaves it mounted for the next process.
func (d *Driver) releaseVolume(st *stagedVolume) error {
	if err := st.vol.Release(); err != nil {
		return fmt.Errorf("volume %s at %s: %w", st.id, st.path, err)
	}
	klog.InfoS("Wrote back volume; its mounts stay for the next process to restore", "volumeID", st.id, "path", st.path)
	return nil
}

// shutdownVolume unmounts st's bind mounts first: each holds the FUSE
// mount, and the session cannot end while one remains.
func (d *Driver) shutdownVolume(st *stagedVolume) error {
	d.mu.Lock()
	targets := slices.Collect(maps.Keys(st.targets))
	d.mu.Unlock()
	for _, t := range targets {
		if err := d.mount.Unmount(t); err != nil {
			klog.ErrorS(err, "Unmount target at shutdown", "volumeID", st.id, "target", t)
		}
	}
	if err := st.vol.Unmount(); err != nil {
		return fmt.Errorf("volume %s at %s: %w", st.id, st.path, err)
	}
	d.mu.Lock()
	delete(d.staged, st.id)
	d.mu.Unlock()
	d.metrics.forget(st.id)
	klog.InfoS("Unmounted volume", "volumeID", st.id, "path", st.path)
	return nil
}
