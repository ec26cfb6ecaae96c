package ninep

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path"
	"sync"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// Server serves a directory over 9P2000.L: csi-goferfs's gofer.
//
// Every file is reached through a local.Root, which resolves each name
// beneath the directory with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS):
// no symlink (at any component), ".." or concurrent rename reaches a file
// outside it. The 9P library's own local attacher (fsimpl/localfs) is not
// used because it joins paths and lets the kernel follow symlinks, so a
// client could create "x -> /" and walk through it to the whole node.
type Server struct {
	root *local.Root
	srv  *p9.Server
}

// NewServer serves root. The Server does not own root.
//
// It clears the process's umask: a 9P2000.L client sends the mode a new
// file must have, its caller's umask already applied (the Linux kernel
// and csi-goferfs's data path both do), so a server must not apply one
// of its own on top, as diod does not.
func NewServer(root *local.Root) *Server {
	umaskOnce.Do(func() { unix.Umask(0) })
	s := &Server{root: root}
	s.srv = p9.NewServer(attacher{root: root})
	return s
}

// Serve accepts connections on l until ctx ends or l fails. With tlsConf
// each connection must complete a TLS handshake first (the config decides
// whether client certificates are required). When ctx ends, open
// connections are closed too: the library would otherwise wait for every
// client to hang up before returning.
func (s *Server) Serve(ctx context.Context, l net.Listener, tlsConf *tls.Config) error {
	tl := &trackingListener{Listener: l, conns: make(map[net.Conn]struct{})}
	var sl net.Listener = tl
	if tlsConf != nil {
		sl = tls.NewListener(tl, tlsConf)
	}
	stop := context.AfterFunc(ctx, tl.closeAll)
	defer stop()
	return s.srv.ServeContext(ctx, sl)
}

var umaskOnce sync.Once

// trackingListener remembers the connections it accepted, so they can be
// closed at shutdown.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.Listener.Close()
	for c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

type attacher struct{ root *local.Root }

func (a attacher) Attach() (p9.File, error) { return &serverFile{root: a.root}, nil }

// serverFile is one fid of the server: a name beneath the root and, once
// opened, the open file.
type serverFile struct {
	templatefs.XattrUnimplemented

	root *local.Root

	mu sync.Mutex
	// name is the volume-relative name; the library calls Renamed to
	// keep it current. Guarded by mu.
	name string
	// open is the open file, set once by Open or Create.
	open backend.File
	// dirents is a directory listing taken at offset 0, so later
	// offsets index a stable list. Guarded by mu.
	dirents []p9.Dirent
}

var _ p9.File = (*serverFile)(nil)

func (f *serverFile) path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}

func (f *serverFile) child(name string) string { return path.Join(f.path(), name) }

func (f *serverFile) Renamed(newDir p9.File, newName string) {
	name := newDir.(*serverFile).child(newName)
	f.mu.Lock()
	f.name = name
	f.mu.Unlock()
}

func (f *serverFile) Walk(names []string) (_ []p9.QID, _ p9.File, err error) {
	defer toLinux(&err)
	name := f.path()
	qids := make([]p9.QID, 0, len(names))
	for _, n := range names {
		if !safeComponent(n) {
			return nil, nil, syscall.EINVAL
		}
		name = path.Join(name, n)
		a, err := f.root.Lstat(name)
		if err != nil {
			return nil, nil, err
		}
		qids = append(qids, qidOf(&a))
	}
	return qids, &serverFile{root: f.root, name: name}, nil
}

func (f *serverFile) WalkGetAttr(names []string) (_ []p9.QID, _ p9.File, _ p9.AttrMask, _ p9.Attr, err error) {
	defer toLinux(&err)
	qids, nf, err := f.Walk(names)
	if err != nil {
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	_, mask, attr, err := nf.GetAttr(p9.AttrMaskAll)
	if err != nil {
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	return qids, nf, mask, attr, nil
}

func (f *serverFile) stat() (backend.Attr, error) {
	if f.open != nil {
		return f.open.Stat()
	}
	return f.root.Lstat(f.path())
}

func (f *serverFile) GetAttr(req p9.AttrMask) (_ p9.QID, _ p9.AttrMask, _ p9.Attr, err error) {
	defer toLinux(&err)
	a, err := f.stat()
	if err != nil {
		return p9.QID{}, p9.AttrMask{}, p9.Attr{}, err
	}
	attr := p9.Attr{
		Mode:             p9.FileMode(a.Mode),
		UID:              p9.UID(a.Uid),
		GID:              p9.GID(a.Gid),
		NLink:            p9.NLink(a.Nlink),
		RDev:             p9.Dev(a.Rdev),
		Size:             uint64(a.Size),
		BlockSize:        uint64(a.Blksize),
		Blocks:           uint64(a.Blocks),
		ATimeSeconds:     uint64(a.Atim.Sec),
		ATimeNanoSeconds: uint64(a.Atim.Nsec),
		MTimeSeconds:     uint64(a.Mtim.Sec),
		MTimeNanoSeconds: uint64(a.Mtim.Nsec),
		CTimeSeconds:     uint64(a.Ctim.Sec),
		CTimeNanoSeconds: uint64(a.Ctim.Nsec),
		// local.Root reports the birth time as Gen.
		BTimeSeconds:     a.Gen / 1e9,
		BTimeNanoSeconds: a.Gen % 1e9,
	}
	mask := p9.AttrMaskAll
	mask.Gen, mask.DataVersion = false, false
	return qidOf(&a), mask, attr, nil
}

// SetAttr applies the owner before the mode: a chown, root's too, clears
// the set-user-ID bit (and a group-executable file's set-group-ID bit),
// so a mode sent along with an owner keeps the bits it asks for.
func (f *serverFile) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) (err error) {
	defer toLinux(&err)
	name := f.path()
	if valid.UID || valid.GID {
		uid, gid := -1, -1
		if valid.UID {
			uid = int(attr.UID)
		}
		if valid.GID {
			gid = int(attr.GID)
		}
		var err error
		if f.open != nil {
			err = f.open.Chown(uid, gid)
		} else {
			err = f.root.Chown(name, uid, gid)
		}
		if err != nil {
			return err
		}
	}
	if valid.Permissions {
		var err error
		if f.open != nil {
			err = f.open.Chmod(uint32(attr.Permissions.Permissions()))
		} else {
			err = f.root.Chmod(name, uint32(attr.Permissions.Permissions()))
		}
		if err != nil {
			return err
		}
	}
	if valid.Size {
		var err error
		if f.open != nil {
			err = f.open.Truncate(int64(attr.Size))
		} else {
			err = f.root.Truncate(name, int64(attr.Size))
		}
		if err != nil {
			return err
		}
	}
	if valid.ATime || valid.MTime {
		var at, mt *unix.Timespec
		if valid.ATime {
			at = &unix.Timespec{Nsec: unix.UTIME_NOW}
			if valid.ATimeNotSystemTime {
				at = &unix.Timespec{Sec: int64(attr.ATimeSeconds), Nsec: int64(attr.ATimeNanoSeconds)}
			}
		}
		if valid.MTime {
			mt = &unix.Timespec{Nsec: unix.UTIME_NOW}
			if valid.MTimeNotSystemTime {
				mt = &unix.Timespec{Sec: int64(attr.MTimeSeconds), Nsec: int64(attr.MTimeNanoSeconds)}
			}
		}
		var err error
		if f.open != nil {
			err = f.open.Utimens(at, mt)
		} else {
			err = f.root.Utimens(name, at, mt)
		}
		if err != nil {
			return err
		}
	}
	// CTime alone: the kernel's ctime follows any change; nothing to do.
	return nil
}

// serverOpenFlags are the open flags a client may ask for; the others
// (O_CREAT on Tlopen, O_NOFOLLOW removal, O_PATH, ...) are not the
// client's to choose. local.Root adds O_NOFOLLOW itself.
const serverOpenFlags = unix.O_ACCMODE | unix.O_TRUNC | unix.O_SYNC | unix.O_DSYNC | unix.O_NOATIME | unix.O_DIRECTORY

func (f *serverFile) Open(mode p9.OpenFlags) (_ p9.QID, _ uint32, err error) {
	defer toLinux(&err)
	flags := fromWire(mode) & serverOpenFlags
	// A non-blocking open never waits on a FIFO a client names.
	of, err := f.root.Open(f.path(), flags|unix.O_NONBLOCK, 0)
	if err != nil {
		return p9.QID{}, 0, err
	}
	a, err := of.Stat()
	if err != nil {
		of.Close()
		return p9.QID{}, 0, err
	}
	f.open = of
	return qidOf(&a), 0, nil
}

func (f *serverFile) Create(name string, mode p9.OpenFlags, perm p9.FileMode, _ p9.UID, _ p9.GID) (_ p9.File, _ p9.QID, _ uint32, err error) {
	defer toLinux(&err)
	if !safeComponent(name) {
		return nil, p9.QID{}, 0, syscall.EINVAL
	}
	flags := fromWire(mode)&serverOpenFlags | unix.O_CREAT | unix.O_EXCL
	nf := &serverFile{root: f.root, name: f.child(name)}
	of, err := f.root.Open(nf.name, flags, uint32(perm.Permissions()))
	if err != nil {
		return nil, p9.QID{}, 0, err
	}
	a, err := of.Stat()
	if err != nil {
		of.Close()
		return nil, p9.QID{}, 0, err
	}
	nf.open = of
	return nf, qidOf(&a), 0, nil
}

// The creating calls ignore the uid and gid a client sends: the gofer
// creates as itself and the client gives the file away with setattr, as
// csi-goferfs's data path does (see datapath/owned.go).

func (f *serverFile) Mkdir(name string, perm p9.FileMode, _ p9.UID, _ p9.GID) (_ p9.QID, err error) {
	defer toLinux(&err)
	return f.make(name, func(n string) error { return f.root.Mkdir(n, uint32(perm.Permissions())) })
}

func (f *serverFile) Symlink(target, name string, _ p9.UID, _ p9.GID) (_ p9.QID, err error) {
	defer toLinux(&err)
	return f.make(name, func(n string) error { return f.root.Symlink(target, n) })
}

func (f *serverFile) Mknod(name string, mode p9.FileMode, major, minor uint32, _ p9.UID, _ p9.GID) (_ p9.QID, err error) {
	defer toLinux(&err)
	// Device nodes on a shared export would hand devices of the file
	// server to anyone who can open them on a client.
	switch mode.FileType() {
	case p9.ModeRegular, p9.ModeNamedPipe, p9.ModeSocket:
	default:
		return p9.QID{}, syscall.EPERM
	}
	return f.make(name, func(n string) error {
		return f.root.Mknod(n, uint32(mode), unix.Mkdev(major, minor))
	})
}

func (f *serverFile) make(name string, mk func(string) error) (p9.QID, error) {
	if !safeComponent(name) {
		return p9.QID{}, syscall.EINVAL
	}
	n := f.child(name)
	if err := mk(n); err != nil {
		return p9.QID{}, err
	}
	a, err := f.root.Lstat(n)
	if err != nil {
		return p9.QID{}, err
	}
	return qidOf(&a), nil
}

func (f *serverFile) Link(target p9.File, newName string) (err error) {
	defer toLinux(&err)
	t, ok := target.(*serverFile)
	if !ok || !safeComponent(newName) {
		return syscall.EINVAL
	}
	return f.root.Link(t.path(), f.child(newName))
}

func (f *serverFile) RenameAt(oldName string, newDir p9.File, newName string) (err error) {
	defer toLinux(&err)
	nd, ok := newDir.(*serverFile)
	if !ok || !safeComponent(oldName) || !safeComponent(newName) {
		return syscall.EINVAL
	}
	return f.root.Rename(f.child(oldName), nd.child(newName), 0)
}

func (f *serverFile) Rename(newDir p9.File, newName string) (err error) {
	defer toLinux(&err)
	nd, ok := newDir.(*serverFile)
	if !ok || !safeComponent(newName) {
		return syscall.EINVAL
	}
	return f.root.Rename(f.path(), nd.child(newName), 0)
}

func (f *serverFile) UnlinkAt(name string, flags uint32) (err error) {
	defer toLinux(&err)
	if !safeComponent(name) {
		return syscall.EINVAL
	}
	if flags&unix.AT_REMOVEDIR != 0 {
		return f.root.Rmdir(f.child(name))
	}
	return f.root.Unlink(f.child(name))
}

func (f *serverFile) Readlink() (_ string, err error) {
	defer toLinux(&err)
	return f.root.Readlink(f.path())
}

func (f *serverFile) StatFS() (_ p9.FSStat, err error) {
	defer toLinux(&err)
	st, err := f.root.Statfs()
	if err != nil {
		return p9.FSStat{}, err
	}
	return p9.FSStat{
		Type:            uint32(st.Type),
		BlockSize:       uint32(st.Bsize),
		Blocks:          st.Blocks,
		BlocksFree:      st.Bfree,
		BlocksAvailable: st.Bavail,
		Files:           st.Files,
		FilesFree:       st.Ffree,
		FSID:            uint64(uint32(st.Fsid.Val[0])) | uint64(uint32(st.Fsid.Val[1]))<<32,
		NameLength:      uint32(st.Namelen),
	}, nil
}

func (f *serverFile) Readdir(offset uint64, count uint32) (_ p9.Dirents, err error) {
	defer toLinux(&err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if offset == 0 || f.dirents == nil {
		entries, err := f.root.ReadDir(f.name)
		if err != nil {
			return nil, err
		}
		f.dirents = make([]p9.Dirent, len(entries))
		for i, e := range entries {
			f.dirents[i] = p9.Dirent{
				QID:    p9.QID{Type: p9.FileMode(e.Mode).QIDType(), Path: e.Ino},
				Offset: uint64(i + 1),
				Type:   dtype(e.Mode),
				Name:   e.Name,
			}
		}
	}
	if offset >= uint64(len(f.dirents)) {
		return nil, nil
	}
	// The library trims the reply to count bytes; an entry takes at
	// least 24, so more than count/24 would be encoded for nothing.
	end := min(uint64(len(f.dirents)), offset+uint64(count/24)+1)
	return p9.Dirents(f.dirents[offset:end]), nil
}

func (f *serverFile) ReadAt(p []byte, off int64) (_ int, err error) {
	defer toLinux(&err)
	if f.open == nil {
		return 0, syscall.EBADF
	}
	return f.open.ReadAt(p, off)
}

func (f *serverFile) WriteAt(p []byte, off int64) (_ int, err error) {
	defer toLinux(&err)
	if f.open == nil {
		return 0, syscall.EBADF
	}
	return f.open.WriteAt(p, off)
}

func (f *serverFile) FSync() (err error) {
	defer toLinux(&err)
	if f.open == nil {
		return syscall.EBADF
	}
	return f.open.Sync(false)
}

func (f *serverFile) Lock(pid int, t p9.LockType, flags p9.LockFlags, start, length uint64, client string) (_ p9.LockStatus, err error) {
	defer toLinux(&err)
	return p9.LockStatusError, syscall.ENOSYS
}

func (f *serverFile) Close() (err error) {
	defer toLinux(&err)
	if f.open != nil {
		return f.open.Close()
	}
	return nil
}

// toLinux hands the library errnos in its own type. The library converts
// a syscall.Errno with errors.Is against os.ErrExist and friends first,
// which turns ENOTEMPTY into EEXIST and EPERM into EACCES.
func toLinux(err *error) {
	var e syscall.Errno
	if *err != nil && errors.As(*err, &e) {
		*err = linux.Errno(e)
	}
}
