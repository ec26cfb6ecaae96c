// Package driver is the CSI gRPC server of csi-goferfs: the identity,
// controller and node services, request validation, per-volume locks and
// the mapping of every failure to a gRPC status code.
//
// # Volumes
//
// A local volume is a directory Root/<id> on one node. The controller creates and
// deletes it and keeps the volume's parameters in Root/.goferfs-meta/<id>.json,
// outside the volume so users never see them. Volume IDs are single path
// components from a small character set (see validate.go), so no ID can name
// a path outside Root.
//
// A volume on a 9P server has no node: any controller instance may get its
// calls. Its ID names the server, the export and its directory there, and
// its metadata lives on the server (ninep_volume.go); it has no topology.
//
// # Node
//
// NodeStageVolume mounts one FUSE session per volume per node at the staging
// path (through the Mounter); NodePublishVolume bind-mounts the staging path
// at each pod's target, so all pods on a node share one cache. The FUSE
// sessions are served by this process: when it stops, Run writes back every
// staged volume. With a StateDir the node remembers what it staged and
// published, the mounts are left in place, and the next process restores
// them (state.go); without one, Run unmounts them.
//
// # Metrics
//
// The Driver owns the node's Prometheus registry (metrics.go): per-volume
// series appear when a volume is staged and go when it is unstaged. Run
// serves them at /metrics on Config.MetricsAddress.
//
// # Errors
//
// Only this package produces gRPC status codes. Every RPC validates all of
// its fields first and names the offending field in the message.
//
// # Locking
//
// Lock order: volumeLocks (per volume, try-lock; a held lock answers
// Aborted) -> Driver.mu (the staged map). Driver.mu is never held across a
// mount, unmount or file system call that can block on a FUSE session.
package driver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/mount-utils"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
)

// DefaultName is the driver name registered with Kubernetes.
const DefaultName = "goferfs.csi.dev"

// TopologyKey is the topology segment that pins a local volume to the node
// whose Root holds it. Volumes on a 9P server have no topology.
const TopologyKey = "topology.goferfs.csi.dev/node"

// Services selects which CSI services a Driver serves. The identity service
// is always served.
type Services struct {
	Controller bool
	Node       bool
}

// ParseServices parses a comma-separated list of "controller" and "node".
func ParseServices(s string) (Services, error) {
	var svc Services
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "controller":
			svc.Controller = true
		case "node":
			svc.Node = true
		default:
			return Services{}, fmt.Errorf("unknown service %q: must be controller, node or controller,node", name)
		}
	}
	return svc, nil
}

// Config configures a Driver.
type Config struct {
	// Name is the CSI driver name; empty means DefaultName.
	Name string
	// Version is reported by GetPluginInfo.
	Version string
	// NodeID identifies this node; it is also the volumes' topology value.
	NodeID string
	// Root is the base directory of the local remote: one directory per volume.
	Root string
	// StateDir keeps the node's record of staged and published volumes
	// across restarts. Empty disables the record and the restore.
	StateDir string
	// Services selects the CSI services to serve.
	Services Services
	// Mounter mounts the FUSE data path; nil means datapath.Mount.
	Mounter Mounter
	// MetricsAddress is the TCP address ("host:port", ":9810") where Run
	// serves Prometheus metrics at /metrics. Empty serves none.
	MetricsAddress string
	// UnmountOnExit makes Run unmount every volume when it stops, instead
	// of leaving the mounts for the next process to restore (stopVolumes).
	// Running containers then keep a dead volume until they restart.
	UnmountOnExit bool
	// NinepTLS, if not nil, is the TLS config (client certificate and
	// trusted CA) for TCP connections to 9P servers. Nil: plain TCP.
	NinepTLS *tls.Config
}

// Driver serves the CSI services described by its Config.
type Driver struct {
	name     string
	version  string
	nodeID   string
	root     string
	stateDir string
	// unmountOnExit is Config.UnmountOnExit.
	unmountOnExit bool
	services      Services
	mounter       Mounter
	// ninepTLSConf is Config.NinepTLS; fixed at New.
	ninepTLSConf *tls.Config
	// ninepDial connects the controller to a 9P server: ninep.Dial,
	// which tests replace.
	ninepDial func(context.Context, ninep.Config) (*ninep.FS, error)
	// mount does bind mounts and mount-point checks; tests replace it.
	mount mount.Interface

	// metricsAddr is where Run serves metrics; "" serves none.
	metricsAddr string
	// metrics holds the registry behind /metrics (metrics.go).
	metrics *metrics

	locks volumeLocks
	// ops counts operations still running after their RPC returned
	// (see runLocked), so Run can wait for them before unmounting.
	ops sync.WaitGroup

	mu sync.Mutex
	// staged holds the volumes this process has staged, by volume ID.
	// Guarded by mu.
	staged map[string]*stagedVolume
}

// New checks cfg and returns a Driver. It touches nothing on disk: a
// missing Root makes Probe report not-ready rather than New fail, because
// the directory may be provided later (a host path mounted late).
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.NodeID == "" {
		return nil, errors.New("driver: NodeID is required")
	}
	if !cfg.Services.Controller && !cfg.Services.Node {
		return nil, errors.New("driver: no service selected: enable controller, node or both")
	}
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("driver: Root must be an absolute path, got %q", cfg.Root)
	}
	if cfg.StateDir != "" && !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("driver: StateDir must be an absolute path, got %q", cfg.StateDir)
	}
	if cfg.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(cfg.MetricsAddress); err != nil {
			return nil, fmt.Errorf("driver: MetricsAddress: %w", err)
		}
	}
	if cfg.Mounter == nil {
		cfg.Mounter = FUSEMounter{}
	}
	d := &Driver{
		name:          cfg.Name,
		version:       cfg.Version,
		nodeID:        cfg.NodeID,
		root:          filepath.Clean(cfg.Root),
		stateDir:      cfg.StateDir,
		unmountOnExit: cfg.UnmountOnExit,
		services:      cfg.Services,
		mounter:       cfg.Mounter,
		ninepTLSConf:  cfg.NinepTLS,
		ninepDial:     ninep.Dial,
		mount:         mount.New(""),
		staged:        make(map[string]*stagedVolume),
		metricsAddr:   cfg.MetricsAddress,
	}
	d.metrics = newMetrics(d)
	return d, nil
}

// volumeDir is the directory of the volume id.
//
// Preconditions:
//   - id passed checkVolumeID.
func (d *Driver) volumeDir(id string) string {
	return filepath.Join(d.root, id)
}

// topology is where every volume of this driver instance is accessible.
func (d *Driver) topology() map[string]string {
	return map[string]string{TopologyKey: d.nodeID}
}

func splitHostPort(hostport string) (host, port string, err error) {
	return net.SplitHostPort(hostport)
}
