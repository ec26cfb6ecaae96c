package driver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path"
	"strconv"
	"syscall"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/datapath"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StorageClass parameters of volumes on a 9P2000.L server.
const (
	// ParamBackend is "local" (the default: a directory under Root) or
	// "9p".
	ParamBackend = "backend"
	// ParamServer is the 9P server: host:port or a unix socket path.
	ParamServer = "server"
	// ParamExport is the directory on the server under which volumes
	// are created, one directory per volume.
	ParamExport = "export"
	// ParamMsize is the largest 9P message (optional).
	ParamMsize = "msize"

	BackendLocal = "local"
	Backend9P    = "9p"
)

// ninepDialTimeout bounds every dial of an RPC: a server that is away or
// speaks another protocol fails the RPC instead of hanging it.
const ninepDialTimeout = 10 * time.Second

// parseNinepParam parses one of the 9P parameters into p.
func parseNinepParam(field, k, v string, p *volumeParams) error {
	switch k {
	case ParamBackend:
		switch v {
		case BackendLocal:
			p.Backend = ""
		case Backend9P:
			p.Backend = Backend9P
		default:
			return status.Errorf(codes.InvalidArgument, "%s: %s %q is not valid; allowed values: %s, %s", field, k, v, BackendLocal, Backend9P)
		}
	case ParamServer:
		p.Server = v
	case ParamExport:
		p.Export = v
	case ParamMsize:
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "%s: %s %q is not a number of bytes", field, k, v)
		}
		p.Msize = uint32(n)
	}
	return nil
}

// checkNinepParams checks that the 9P parameters are all there for a 9P
// volume and absent otherwise, and that their values make sense.
func checkNinepParams(field string, p volumeParams) error {
	if p.Backend != Backend9P {
		for k, v := range map[string]string{ParamServer: p.Server, ParamExport: p.Export} {
			if v != "" {
				return status.Errorf(codes.InvalidArgument, "%s: %s is only valid with %s: %s", field, k, ParamBackend, Backend9P)
			}
		}
		if p.Msize != 0 {
			return status.Errorf(codes.InvalidArgument, "%s: %s is only valid with %s: %s", field, ParamMsize, ParamBackend, Backend9P)
		}
		return nil
	}
	cfg := ninep.Config{Server: p.Server, Export: p.Export, Msize: p.Msize}
	switch {
	case p.Server == "":
		return status.Errorf(codes.InvalidArgument, "%s: %s %s needs %s (host:port or a unix socket path)", field, ParamBackend, Backend9P, ParamServer)
	case p.Export == "":
		return status.Errorf(codes.InvalidArgument, "%s: %s %s needs %s (the directory on the server that holds the volumes)", field, ParamBackend, Backend9P, ParamExport)
	}
	if err := (ninep.Config{Server: p.Server, Export: "/"}).Validate(); err != nil {
		return status.Errorf(codes.InvalidArgument, "%s: %s: %v", field, ParamServer, err)
	}
	if err := (ninep.Config{Server: p.Server, Export: p.Export}).Validate(); err != nil {
		return status.Errorf(codes.InvalidArgument, "%s: %s: %v", field, ParamExport, err)
	}
	if err := cfg.Validate(); err != nil {
		return status.Errorf(codes.InvalidArgument, "%s: %s: %v", field, ParamMsize, err)
	}
	return nil
}

// ninepContext adds the 9P parameters to a volume context.
func (p volumeParams) ninepContext(m map[string]string) {
	if p.Backend != Backend9P {
		return
	}
	m[ParamBackend] = Backend9P
	m[ParamServer] = p.Server
	m[ParamExport] = p.Export
	if p.Msize != 0 {
		m[ParamMsize] = strconv.FormatUint(uint64(p.Msize), 10)
	}
}

// ninepConfig is the dial configuration of a volume's directory dir, or
// of the export itself when dir is empty.
func (d *Driver) ninepConfig(p volumeParams, dir string) ninep.Config {
	return ninep.Config{
		Server:  p.Server,
		Export:  path.Join(p.Export, dir),
		Msize:   p.Msize,
		TLS:     d.ninepTLS(p.Server),
		Timeout: ninepDialTimeout,
	}
}

// ninepTLS returns the TLS config for server, or nil for plain TCP.
func (d *Driver) ninepTLS(server string) *tls.Config {
	if d.ninepTLSConf == nil || len(server) > 0 && server[0] == '/' {
		return nil
	}
	c := d.ninepTLSConf.Clone()
	if c.ServerName == "" {
		if host, _, err := splitHostPort(server); err == nil {
			c.ServerName = host
		}
	}
	return c
}

// dialNinep dials the export of p (dir empty) or a volume's directory dir,
// within ctx and ninepDialTimeout, and maps failures to gRPC codes.
func (d *Driver) dialNinep(ctx context.Context, p volumeParams, dir string) (*ninep.FS, error) {
	fsys, err := d.ninepDial(ctx, d.ninepConfig(p, dir))
	if err != nil {
		return nil, dialStatus(ctx, err, p, dir)
	}
	return fsys, nil
}

// dialStatus maps a failed dial of p's export (dir empty) or of the
// volume directory dir to a gRPC status.
func dialStatus(ctx context.Context, err error, p volumeParams, dir string) error {
	switch {
	case errors.Is(err, ninep.ErrDialect):
		return status.Errorf(codes.InvalidArgument, "%s %s: %v", ParamServer, p.Server, err)
	case dir != "" && errors.Is(err, syscall.ENOENT):
		return status.Errorf(codes.NotFound, "volume directory %s does not exist on 9P server %s: %v", dir, p.Server, err)
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return status.Errorf(codes.InvalidArgument, "%s %s on 9P server %s: %v", ParamExport, p.Export, p.Server, err)
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Unavailable, "9P server %s: %v", p.Server, err)
}

// ninepVolumeExists tells whether directory dir exists in p's export.
func (d *Driver) ninepVolumeExists(ctx context.Context, dir string, p volumeParams) (bool, error) {
	fsys, err := d.dialNinep(ctx, p, "")
	if err != nil {
		return false, err
	}
	defer fsys.Close()
	exists, err := ninepExists(fsys, dir)
	if err != nil {
		return false, status.Errorf(codes.Unavailable, "check %s/%s on 9P server %s: %v", p.Export, dir, p.Server, err)
	}
	return exists, nil
}

// deleteNinepVolume removes volume id's directory (id itself: a volume of
// the earlier scheme, whose metadata is in Root) and everything in it from
// the server. A directory already gone is success.
func (d *Driver) deleteNinepVolume(ctx context.Context, id string, p volumeParams) error {
	fsys, err := d.dialNinep(ctx, p, "")
	if err != nil {
		return err
	}
	defer fsys.Close()
	if err := removeAll(fsys, id); err != nil && !errors.Is(err, syscall.ENOENT) {
		return status.Errorf(codes.Internal, "delete volume %s on 9P server %s: %v", id, p.Server, err)
	}
	return nil
}

// removeAll removes name and, if it is a directory, its contents. It
// never follows a symlink: entries are removed, not their targets.
// Controllers on several nodes may remove the same tree at once (every
// node's provisioner deletes a PV without node affinity): an entry that
// another one removed meanwhile is ENOENT, whatever error the server gave
// (the gofer answers EINVAL for a name in a directory removed meanwhile).
func removeAll(fsys *ninep.FS, name string) error {
	err := removeTree(fsys, name)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		if _, lerr := fsys.Lstat(name); errors.Is(lerr, syscall.ENOENT) {
			return syscall.ENOENT
		}
	}
	return err
}

func removeTree(fsys *ninep.FS, name string) error {
	err := fsys.Unlink(name)
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return err
	}
	if !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EPERM) {
		return err
	}
	entries, err := fsys.ReadDir(name)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := removeAll(fsys, name+"/"+e.Name); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return fsys.Rmdir(name)
}

// ninepCapacity is the space available on the server's export.
func (d *Driver) ninepCapacity(ctx context.Context, p volumeParams) (int64, error) {
	fsys, err := d.dialNinep(ctx, p, "")
	if err != nil {
		return 0, err
	}
	defer fsys.Close()
	st, err := fsys.Statfs()
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "statfs on 9P server %s: %v", p.Server, err)
	}
	return int64(st.Bavail) * blockSize(&st), nil
}

// NinepMounter is a Mounter that can also mount a volume on a 9P server.
type NinepMounter interface {
	MountNinep(cfg ninep.Config, target string, opts datapath.Options) (MountedVolume, error)
}

var _ NinepMounter = FUSEMounter{}

// MountNinep dials cfg and mounts the remote at target. A 9P remote has no
// host FD, so the volume always goes through the daemon's page cache.
func (m FUSEMounter) MountNinep(cfg ninep.Config, target string, opts datapath.Options) (MountedVolume, error) {
	if opts.Budget == nil {
		opts.Budget = m.Budget
	}
	cfg.Exclusive = opts.Mode.IsExclusive()
	fsys, err := ninep.Dial(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	opts.ForcePageCache = true
	v, err := datapath.MountFS(fsys, target, opts)
	if err != nil {
		fsys.Close()
		return nil, err
	}
	return v, nil
}

// mountNinep mounts 9P volume id at path through the mounter.
func (d *Driver) mountNinep(id, path string, opts datapath.Options, p volumeParams) (MountedVolume, error) {
	nm, ok := d.mounter.(NinepMounter)
	if !ok {
		return nil, fmt.Errorf("this node's mounter cannot mount 9P volumes")
	}
	return nm.MountNinep(d.ninepConfig(p, ninepDir(id)), path, opts)
}

// volumeSource returns the directory of a local volume (NotFound if it is
// missing); a 9P volume has none, its server is checked when it mounts.
// The server and export of a 9P volume whose ID names them must be the
// volume context's: the ID is what the controller manages.
func (d *Driver) volumeSource(id string, p volumeParams) (string, error) {
	if p.Backend != Backend9P {
		return d.existingVolumeDir(id)
	}
	r, ok, err := parseNinepVolumeID(id)
	if err != nil {
		return "", err
	}
	if ok && (r.Server != p.Server || r.Export != p.Export) {
		return "", status.Errorf(codes.InvalidArgument,
			"volume_context: %s %q and %s %q differ from those of volume %s (%q, %q)",
			ParamServer, p.Server, ParamExport, p.Export, id, r.Server, r.Export)
	}
	return "", nil
}

// mountError maps a failed mount of volume id at path to a gRPC status:
// for 9P, what is wrong with the server says more than Internal.
func mountError(id, path string, p volumeParams, err error) error {
	if p.Backend == Backend9P {
		switch {
		case errors.Is(err, ninep.ErrDialect):
			return status.Errorf(codes.InvalidArgument, "mount volume %s: %s %s: %v", id, ParamServer, p.Server, err)
		case errors.Is(err, syscall.ENOENT):
			return status.Errorf(codes.NotFound, "volume %s does not exist on 9P server %s: %v", id, p.Server, err)
		case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return status.Errorf(codes.FailedPrecondition, "mount volume %s from 9P server %s: %v", id, p.Server, err)
		case !errors.Is(err, datapath.ErrSessionEnded):
			var ne interface{ Timeout() bool }
			// Every syscall.Errno has a Timeout method: ask it.
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EIO) {
				return status.Errorf(codes.Unavailable, "mount volume %s: 9P server %s: %v", id, p.Server, err)
			}
		}
	}
	return status.Errorf(codes.Internal, "mount volume %s at %s: %v", id, path, err)
}
