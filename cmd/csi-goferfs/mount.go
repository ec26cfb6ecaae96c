package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/datapath"
	"k8s.io/klog/v2"
)

// mountConfig holds the flags of 'csi-goferfs mount'.
type mountConfig struct {
	interop string
	force   bool
	debug   bool
	budget  int64
	tls     ninepTLSFlags
}

func mountFlags() (*flag.FlagSet, *mountConfig) {
	c := &mountConfig{}
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	fl.StringVar(&c.interop, "interop", string(datapath.Exclusive), "interop mode: exclusive, writethrough or shared")
	fl.BoolVar(&c.force, "force-page-cache", false, "never let the kernel do I/O on the backing file (no FUSE passthrough)")
	fl.BoolVar(&c.debug, "debug", false, "log every FUSE request")
	fl.Int64Var(&c.budget, "cache-budget-bytes", 0, "bytes of memory for the page cache (0: 10% of RAM)")
	c.tls.register(fl)
	klog.InitFlags(fl)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), `usage: csi-goferfs mount [flags] SRC MNT

Serves SRC at MNT until SIGINT or SIGTERM. SRC is a directory, or a 9P2000.L
server (a csi-goferfs gofer, diod, ...):

  9p://HOST:PORT/EXPORT/PATH[?msize=N]                 over TCP (TLS with --9p-tls-*)
  9p+unix:///PATH/TO/SOCKET?export=/EXPORT/PATH[&msize=N]   over a unix socket

A 9P remote has no host FD, so file data goes through the daemon's page cache.

flags:`)
		fl.PrintDefaults()
	}
	return fl, c
}

// mountMain mounts SRC at MNT in the foreground. SIGINT or SIGTERM writes
// back everything and unmounts; if the unmount fails (files still open),
// it says so and keeps serving, so no process loses its files.
func mountMain(args []string) int {
	fl, c := mountFlags()
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 2 {
		fl.Usage()
		return 2
	}
	mode, err := datapath.ParseMode(c.interop)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs mount: --interop: %v\n", err)
		return 2
	}
	src, mnt := fl.Arg(0), fl.Arg(1)
	if c.debug {
		// go-fuse logs requests through the standard logger; their
		// latency is what a reader of this log looks for.
		log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	}
	opts := datapath.Options{
		Mode: mode, ForcePageCache: c.force, FsName: src, Debug: c.debug, Budget: budget(c.budget),
	}
	var vol *datapath.Volume
	if ninep.IsSource(src) {
		vol, err = mountNinep(src, mnt, opts, &c.tls)
	} else {
		vol, err = datapath.Mount(src, mnt, opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs mount: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "csi-goferfs: serving %s at %s (interop %s, passthrough %v); Ctrl-C to unmount\n",
		src, mnt, mode, vol.Passthrough())

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	ended := make(chan struct{})
	go func() { vol.Wait(); close(ended) }()
	for {
		select {
		case <-ended:
			fmt.Fprintln(os.Stderr, "csi-goferfs: unmounted from outside")
			return 0
		case <-sig:
			if err := vol.Unmount(); err != nil {
				fmt.Fprintf(os.Stderr, "csi-goferfs: %v; still serving\n", err)
				continue
			}
			return 0
		}
	}
}
