package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/datapath"
	"k8s.io/klog/v2"
)

func mountFlags() (*flag.FlagSet, *string, *bool, *bool) {
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	interop := fl.String("interop", string(datapath.Exclusive), "interop mode: exclusive, writethrough or shared")
	force := fl.Bool("force-page-cache", false, "never let the kernel do I/O on the backing file (no FUSE passthrough)")
	debug := fl.Bool("debug", false, "log every FUSE request")
	klog.InitFlags(fl)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: csi-goferfs mount [flags] SRC MNT\n\nServes directory SRC at MNT until SIGINT or SIGTERM.\n\nflags:")
		fl.PrintDefaults()
	}
	return fl, interop, force, debug
}

// mountMain mounts SRC at MNT in the foreground. SIGINT or SIGTERM writes
// back everything and unmounts; if the unmount fails (files still open),
// it says so and keeps serving, so no process loses its files.
func mountMain(args []string) int {
	fl, interop, force, debug := mountFlags()
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 2 {
		fl.Usage()
		return 2
	}
	mode, err := datapath.ParseMode(*interop)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs mount: --interop: %v\n", err)
		return 2
	}
	src, mnt := fl.Arg(0), fl.Arg(1)
	vol, err := datapath.Mount(src, mnt, datapath.Options{
		Mode: mode, ForcePageCache: *force, FsName: src, Debug: *debug,
	})
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
