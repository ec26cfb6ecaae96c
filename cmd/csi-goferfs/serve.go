package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/driver"
	"k8s.io/klog/v2"
)

// serveConfig holds the flags of 'csi-goferfs serve'.
type serveConfig struct {
	endpoint string
	nodeID   string
	root     string
	stateDir string
	services string
	budget   int64
	metrics  string
	// unmountOnExit: see driver.Config.UnmountOnExit.
	unmountOnExit bool
	tls           ninepTLSFlags
}

func serveFlags() (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.StringVar(&c.endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint: a unix socket, as unix:///path or /path")
	fl.StringVar(&c.nodeID, "node-id", "", "this node's ID (required; in Kubernetes, the node name)")
	fl.StringVar(&c.root, "root", "/var/lib/csi-goferfs/volumes", "base directory of the local remote: one directory per volume")
	fl.StringVar(&c.stateDir, "state-dir", "/var/lib/csi-goferfs/state", "directory for the node's record of staged and published volumes")
	fl.StringVar(&c.services, "services", "controller,node", "CSI services to serve: controller, node, or controller,node")
	fl.Int64Var(&c.budget, "cache-budget-bytes", 0, "bytes of memory for the page cache shared by all volumes of the node (0: 10% of RAM)")
	fl.StringVar(&c.metrics, "metrics-address", "", "TCP address to serve Prometheus metrics on at /metrics, e.g. :9810 (empty: no metrics; the Helm chart sets :9810)")
	fl.BoolVar(&c.unmountOnExit, "unmount-on-exit", false, "unmount every volume on SIGTERM instead of leaving the mounts for the next process to restore under running pods (use when no plugin will follow, e.g. outside Kubernetes)")
	c.tls.register(fl)
	klog.InitFlags(fl)
	return fl, c
}

// serveMain runs the CSI driver until SIGINT or SIGTERM, then stops
// accepting RPCs and writes back every volume it staged; the mounts stay
// for the next process to restore unless --unmount-on-exit is given.
func serveMain(args []string) int {
	fl, c := serveFlags()
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "csi-goferfs serve: unexpected arguments %q\n", fl.Args())
		return 2
	}
	services, err := driver.ParseServices(c.services)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs serve: --services: %v\n", err)
		return 2
	}
	ninepTLS, err := c.tls.base()
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs serve: %v\n", err)
		return 2
	}
	d, err := driver.New(driver.Config{
		NinepTLS:       ninepTLS,
		Name:           driverName,
		Version:        version(),
		NodeID:         c.nodeID,
		Root:           c.root,
		StateDir:       c.stateDir,
		Services:       services,
		Mounter:        driver.FUSEMounter{Budget: budget(c.budget)},
		MetricsAddress: c.metrics,
		UnmountOnExit:  c.unmountOnExit,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs serve: %v\n", err)
		return 2
	}
	// The kernel has already applied each caller's umask to the modes it
	// sends; the daemon must not apply its own on top.
	syscall.Umask(0)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	klog.InfoS("Starting csi-goferfs", "version", version(), "endpoint", c.endpoint,
		"nodeID", c.nodeID, "root", c.root, "services", c.services, "metricsAddress", c.metrics)
	if err := d.Run(ctx, c.endpoint); err != nil {
		klog.ErrorS(err, "csi-goferfs stopped with an error")
		klog.Flush()
		return 1
	}
	klog.Flush()
	return 0
}
