package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"k8s.io/klog/v2"
)

// goferConfig holds the flags of 'csi-goferfs gofer'.
type goferConfig struct {
	export, listen             string
	tlsCert, tlsKey, tlsClient string
}

func goferFlags() (*flag.FlagSet, *goferConfig) {
	c := &goferConfig{}
	fl := flag.NewFlagSet("gofer", flag.ContinueOnError)
	fl.StringVar(&c.export, "export", "", "directory to serve (required); nothing outside it is reachable")
	fl.StringVar(&c.listen, "listen", "127.0.0.1:5640", "address to listen on: host:port, or a unix socket path (starting with /)")
	fl.StringVar(&c.tlsCert, "tls-cert", "", "server certificate (PEM); with --tls-key and --tls-client-ca, every client must present a certificate the CA signed")
	fl.StringVar(&c.tlsKey, "tls-key", "", "server certificate's key (PEM)")
	fl.StringVar(&c.tlsClient, "tls-client-ca", "", "CA (PEM) that signs the client certificates")
	klog.InitFlags(fl)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: csi-goferfs gofer --export DIR [--listen ADDR] [--tls-cert F --tls-key F --tls-client-ca F]\n\nServes DIR over 9P2000.L until SIGINT or SIGTERM. Without TLS, anyone who can\nreach ADDR can read and write DIR: listen on a private address, or use TLS.\n\nflags:")
		fl.PrintDefaults()
	}
	return fl, c
}

// goferMain serves a directory over 9P, the remote of 9P volumes.
func goferMain(args []string) int {
	fl, c := goferFlags()
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 || c.export == "" {
		fl.Usage()
		return 2
	}
	root, err := local.Open(c.export)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs gofer: --export: %v\n", err)
		return 1
	}
	defer root.Close()
	tlsOn := c.tlsCert != "" || c.tlsKey != "" || c.tlsClient != ""
	var srvTLS *tls.Config
	if tlsOn {
		conf, err := ninep.ServerTLS(c.tlsCert, c.tlsKey, c.tlsClient)
		if err != nil {
			fmt.Fprintf(os.Stderr, "csi-goferfs gofer: %v\n", err)
			return 2
		}
		srvTLS = conf
	}
	network := "tcp"
	if strings.HasPrefix(c.listen, "/") {
		network = "unix"
		os.Remove(c.listen) // a socket left by an earlier run
	}
	l, err := net.Listen(network, c.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-goferfs gofer: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	klog.InfoS("Serving 9P2000.L", "export", c.export, "listen", l.Addr(), "tls", tlsOn)
	err = ninep.NewServer(root).Serve(ctx, l, srvTLS)
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "csi-goferfs gofer: %v\n", err)
	return 1
}
