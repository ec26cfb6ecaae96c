// Command csi-goferfs is the csi-goferfs CSI driver and its tools.
//
//	csi-goferfs serve   the CSI gRPC server (controller, node, or both)
//	csi-goferfs mount   a standalone mount of a directory, for use without Kubernetes
//	csi-goferfs version
//	csi-goferfs gofer   a 9P2000.L server of a directory: the remote of 9p volumes
//	csi-goferfs register  the kubelet plugin registration (for clusters without node-driver-registrar)
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/csi-goferfs/csi-goferfs/datapath"
)

const driverName = "goferfs.csi.dev"

// commands maps each subcommand to its entry point. Each gets its own
// arguments and returns the process exit code.
var commands = map[string]func(args []string) int{
	"serve":    serveMain,
	"mount":    mountMain,
	"version":  versionMain,
	"register": registerMain,
	"gofer":    goferMain,
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		if os.Args[1] != "-h" && os.Args[1] != "--help" && os.Args[1] != "help" {
			fmt.Fprintf(os.Stderr, "csi-goferfs: unknown command %q\n", os.Args[1])
		}
		usage()
		os.Exit(2)
	}
	os.Exit(run(os.Args[2:]))
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: csi-goferfs <command> [flags]

commands:
  serve     run the CSI driver (gRPC on --endpoint)
  mount     mount a directory through the csi-goferfs data path, in the foreground
  version   print the version
  gofer     serve a directory over 9P2000.L (the remote of backend: 9p volumes)
  register  register the driver with the kubelet (instead of node-driver-registrar)

Run 'csi-goferfs <command> -h' for the command's flags.
`)
}

// version is the module version the binary was built from, or the VCS
// revision for a development build.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

func versionMain(args []string) int {
	fmt.Printf("csi-goferfs %s (%s)\n", version(), driverName)
	return 0
}

// budget returns the page cache budget for a --cache-budget-bytes value;
// 0 or less means the default, 10% of RAM.
func budget(bytes int64) *cache.Budget {
	if bytes <= 0 {
		return datapath.DefaultBudget()
	}
	return datapath.NewBudget(bytes)
}
