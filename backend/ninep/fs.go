package ninep

import (
	"context"
	"io"
	"sync"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// FS is a remote on a 9P2000.L server. It is safe for concurrent use.
type FS struct {
	cfg  Config        // fixed at Dial
	stop chan struct{} // closed when the session ends for good
	// ctx is cancelled with stop, ending a dial in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// cur is the live session, nil while reconnecting. Guarded by mu.
	cur *session
	// ready is closed when cur is set again after a loss. Guarded by mu.
	ready chan struct{}
	// closed is set by Close; the session ends (stop is closed) once
	// no file is open. Guarded by mu.
	closed bool
	// files holds the open files, so renames can keep their names
	// current for reopening after a reconnect. Guarded by mu.
	files map[*file]struct{}

	requests Requests // counts every request sent
}

var _ backend.FS = (*FS)(nil)

// The daemon creates files as itself; the data path gives them to the
// caller afterwards. 9P2000.L servers take the group (and gVisor-derived
// ones the user) from the request.
var (
	createUID = p9.UID(unix.Geteuid())
	createGID = p9.GID(unix.Getegid())
)

func (fsys *FS) Lstat(name string) (backend.Attr, error) {
	parts, err := components(name)
	if err != nil {
		return backend.Attr{}, err
	}
	var a backend.Attr
	err = fsys.do(true, func(s *session) error {
		if len(parts) == 0 {
			qid, valid, attr, err := s.root.GetAttr(p9.AttrMaskAll)
			if err != nil {
				return err
			}
			a = toAttr(qid, valid, attr)
			return nil
		}
		f, qid, valid, attr, err := s.walkStat(parts)
		if err != nil {
			return err
		}
		clunk(f)
		a = toAttr(qid, valid, attr)
		return nil
	})
	return a, err
}

func (fsys *FS) Open(name string, flags int, perm uint32) (backend.File, error) {
	if flags&unix.O_CREAT != 0 {
		return fsys.create(name, flags, perm)
	}
	parts, err := components(name)
	if err != nil {
		return nil, err
	}
	f := &file{fsys: fsys, name: name, flags: flags}
	err = fsys.do(true, func(s *session) error {
		fid, err := s.walk(parts)
		if err != nil {
			return err
		}
		if _, _, err := fid.Open(toWire(flags)); err != nil {
			clunk(fid)
			return err
		}
		f.setFid(s, fid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	fsys.track(f)
	return f, nil
}

// create makes and opens a regular file. The server creates exclusively
// when asked to (O_EXCL is sent along); the data path always asks.
func (fsys *FS) create(name string, flags int, perm uint32) (backend.File, error) {
	dir, base, err := splitParent(name)
	if err != nil {
		return nil, err
	}
	f := &file{fsys: fsys, name: name, flags: flags}
	err = fsys.do(false, func(s *session) error {
		// Tlcreate turns the directory's fid into the new file's, so
		// it must be a fid of our own, never the root's.
		fid, err := s.walk(dir)
		if err != nil {
			return err
		}
		nf, _, _, err := fid.Create(base, toWire(flags), p9.FileMode(perm&07777), createUID, createGID)
		if err != nil {
			clunk(fid)
			return err
		}
		f.setFid(s, nf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	fsys.track(f)
	return f, nil
}

func (fsys *FS) Mkdir(name string, perm uint32) error {
	return fsys.withParent(false, name, func(_ *session, dir p9.File, base string) error {
		_, err := dir.Mkdir(base, p9.FileMode(perm&07777), createUID, createGID)
		return err
	})
}

func (fsys *FS) Mknod(name string, mode uint32, dev uint64) error {
	return fsys.withParent(false, name, func(_ *session, dir p9.File, base string) error {
		_, err := dir.Mknod(base, p9.FileMode(mode), unix.Major(dev), unix.Minor(dev), createUID, createGID)
		return err
	})
}

func (fsys *FS) Symlink(target, name string) error {
	return fsys.withParent(false, name, func(_ *session, dir p9.File, base string) error {
		_, err := dir.Symlink(target, base, createUID, createGID)
		return err
	})
}

func (fsys *FS) Readlink(name string) (string, error) {
	var target string
	err := fsys.withFid(true, name, func(_ *session, f p9.File) (err error) {
		target, err = f.Readlink()
		return err
	})
	return target, err
}

func (fsys *FS) Link(oldName, newName string) error {
	oldParts, err := components(oldName)
	if err != nil {
		return err
	}
	return fsys.withParent(false, newName, func(s *session, dir p9.File, base string) error {
		target, release, err := s.walkTo(oldParts)
		if err != nil {
			return err
		}
		defer release()
		return dir.Link(target, base)
	})
}

func (fsys *FS) Unlink(name string) error { return fsys.unlink(name, 0) }

func (fsys *FS) Rmdir(name string) error { return fsys.unlink(name, unix.AT_REMOVEDIR) }

func (fsys *FS) unlink(name string, flags uint32) error {
	parts, err := components(name)
	if err != nil {
		return err
	}
	return fsys.withParent(false, name, func(s *session, dir p9.File, _ string) error {
		return s.unlink(dir, parts, flags)
	})
}

func (fsys *FS) Chmod(name string, perm uint32) error {
	parts, err := components(name)
	if err != nil {
		return err
	}
	return fsys.do(true, func(s *session) error {
		f, qid, _, _, err := s.walkStat(parts)
		if err != nil {
			return err
		}
		defer clunk(f)
		// As on Linux: a symlink's mode cannot change, and the
		// target's must not change instead.
		if qid.Type&p9.TypeSymlink != 0 {
			return syscall.EOPNOTSUPP
		}
		return f.SetAttr(p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: p9.FileMode(perm & 07777)})
	})
}

func (fsys *FS) Chown(name string, uid, gid int) error {
	mask, attr := chownAttr(uid, gid)
	return fsys.withFid(true, name, func(_ *session, f p9.File) error {
		return f.SetAttr(mask, attr)
	})
}

func (fsys *FS) Utimens(name string, atime, mtime *unix.Timespec) error {
	mask, attr := utimesAttr(atime, mtime)
	return fsys.withFid(true, name, func(_ *session, f p9.File) error {
		return f.SetAttr(mask, attr)
	})
}

func (fsys *FS) Truncate(name string, size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	return fsys.withFid(true, name, func(_ *session, f p9.File) error {
		return f.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{Size: uint64(size)})
	})
}

func (fsys *FS) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	err := fsys.do(true, func(s *session) error {
		fs, err := s.root.StatFS()
		if err != nil {
			return err
		}
		st = unix.Statfs_t{
			Type:    int64(fs.Type),
			Bsize:   int64(fs.BlockSize),
			Frsize:  int64(fs.BlockSize),
			Blocks:  fs.Blocks,
			Bfree:   fs.BlocksFree,
			Bavail:  fs.BlocksAvailable,
			Files:   fs.Files,
			Ffree:   fs.FilesFree,
			Namelen: int64(fs.NameLength),
		}
		st.Fsid.Val[0] = int32(fs.FSID)
		st.Fsid.Val[1] = int32(fs.FSID >> 32)
		return nil
	})
	return st, err
}

func (fsys *FS) ReadDir(name string) ([]backend.DirEntry, error) {
	parts, err := components(name)
	if err != nil {
		return nil, err
	}
	var entries []backend.DirEntry
	err = fsys.do(true, func(s *session) error {
		entries = entries[:0]
		d, err := s.walk(parts)
		if err != nil {
			return err
		}
		defer clunk(d)
		if _, _, err := d.Open(p9.ReadOnly); err != nil {
			return err
		}
		var off uint64
		for {
			ds, err := d.Readdir(off, uint32(s.chunk))
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return nil
			}
			for _, e := range ds {
				off = e.Offset
				if e.Name == "." || e.Name == ".." {
					continue
				}
				entries = append(entries, backend.DirEntry{Name: e.Name, Ino: e.QID.Path, Mode: direntMode(e)})
			}
		}
	})
	return entries, err
}

// The 9P client library has no extended attribute calls (it answers
// ENOSYS itself), so the FS has none: no attribute exists, and none can
// be set.

func (fsys *FS) Getxattr(name, attr string, dest []byte) (int, error) { return 0, syscall.ENODATA }
func (fsys *FS) Setxattr(name, attr string, data []byte, flags int) error {
	return syscall.EOPNOTSUPP
}
func (fsys *FS) Listxattr(name string, dest []byte) (int, error) { return 0, nil }
func (fsys *FS) Removexattr(name, attr string) error             { return syscall.ENODATA }

func chownAttr(uid, gid int) (p9.SetAttrMask, p9.SetAttr) {
	var mask p9.SetAttrMask
	var attr p9.SetAttr
	if uid != -1 {
		mask.UID, attr.UID = true, p9.UID(uid)
	}
	if gid != -1 {
		mask.GID, attr.GID = true, p9.GID(gid)
	}
	return mask, attr
}

// utimesAttr builds a setattr for utimensat(2) times: nil or UTIME_OMIT
// leaves a time alone, UTIME_NOW asks for the server's clock.
func utimesAttr(atime, mtime *unix.Timespec) (p9.SetAttrMask, p9.SetAttr) {
	var mask p9.SetAttrMask
	var attr p9.SetAttr
	if atime != nil && atime.Nsec != unix.UTIME_OMIT {
		mask.ATime = true
		if atime.Nsec != unix.UTIME_NOW {
			mask.ATimeNotSystemTime = true
			attr.ATimeSeconds, attr.ATimeNanoSeconds = uint64(atime.Sec), uint64(atime.Nsec)
		}
	}
	if mtime != nil && mtime.Nsec != unix.UTIME_OMIT {
		mask.MTime = true
		if mtime.Nsec != unix.UTIME_NOW {
			mask.MTimeNotSystemTime = true
			attr.MTimeSeconds, attr.MTimeNanoSeconds = uint64(mtime.Sec), uint64(mtime.Nsec)
		}
	}
	return mask, attr
}

// isEOF is how the client library reports a read at the end of a file.
func isEOF(err error) bool { return err == io.EOF }
