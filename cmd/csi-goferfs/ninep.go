package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// ninepTLSFlags are the client side of TLS to a gofer: the node's
// certificate, its key, and the CA that signed the gofer's certificate.
type ninepTLSFlags struct {
	cert, key, ca, serverName string
}

func (f *ninepTLSFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&f.cert, "9p-tls-cert", "", "client certificate (PEM) for TLS to 9P servers; with --9p-tls-key and --9p-tls-ca it turns TLS on")
	fl.StringVar(&f.key, "9p-tls-key", "", "client certificate's key (PEM)")
	fl.StringVar(&f.ca, "9p-tls-ca", "", "CA (PEM) that signs the 9P servers' certificates")
	fl.StringVar(&f.serverName, "9p-tls-server-name", "", "name the 9P server's certificate must hold (default: the server's host)")
}

// config returns the TLS config for server (host:port), or nil when no
// TLS flag is set.
func (f *ninepTLSFlags) config(server string) (*tls.Config, error) {
	if f.cert == "" && f.key == "" && f.ca == "" {
		return nil, nil
	}
	name := f.serverName
	if name == "" {
		host, _, err := net.SplitHostPort(server)
		if err != nil {
			return nil, fmt.Errorf("TLS needs a host:port server, got %q", server)
		}
		name = host
	}
	return ninep.ClientTLS(f.cert, f.key, f.ca, name)
}

// base returns the TLS config without a server name (the driver sets it
// per server), or nil when no TLS flag is set.
func (f *ninepTLSFlags) base() (*tls.Config, error) {
	if f.cert == "" && f.key == "" && f.ca == "" {
		return nil, nil
	}
	return ninep.ClientTLS(f.cert, f.key, f.ca, f.serverName)
}

// mountNinep mounts the 9P source src (see 'csi-goferfs mount -h') at mnt.
// A 9P remote has no host FD, so it always mounts with ForcePageCache.
func mountNinep(src, mnt string, opts datapath.Options, tf *ninepTLSFlags) (*datapath.Volume, error) {
	cfg, err := ninep.ParseSource(src)
	if err != nil {
		return nil, err
	}
	if cfg.TLS, err = tf.config(cfg.Server); err != nil {
		return nil, err
	}
	cfg.Exclusive = opts.Mode.IsExclusive()
	fsys, err := ninep.Dial(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	opts.ForcePageCache = true
	vol, err := datapath.MountFS(fsys, mnt, opts)
	if err != nil {
		fsys.Close()
		return nil, err
	}
	return vol, nil
}
