package ninep

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
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
	// current for reopening after a reconnect, and byName those of them
	// whose name leads to them, by name. Guarded by mu.
	files  map[*file]struct{}
	byName map[string]map[*file]struct{}

	// deferred holds the changes an exclusive FS sends in the
	// background. Guarded by mu.
	// inos maps the server's inode numbers of files created in the
	// background to the local numbers reported for them, and nextLocal
	// counts those (asynccreate.go). Guarded by mu.
	inos      map[uint64]uint64
	nextLocal uint64
	// madeDirs holds the directories an exclusive FS made, by name
	// (asynccreate.go). Guarded by mu.
	madeDirs map[string]madeDir
	// genIsVersion: generations are QID versions (versionIsBirth of
	// the first session). Fixed at Dial.
	genIsVersion bool
	// newFiles and newDirs say whether the attributes of a created
	// file or directory can be computed from the request (see
	// create.go).
	newFiles, newDirs newAttrs
	// lastDir is the directory the FS made last and its attributes,
	// for the Lstat that follows. Guarded by mu.
	lastDir *newDirAttr

	deferred     deferred
	deferredSent atomic.Uint64

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
	if a, ok := fsys.takeNewDir(name); ok {
		return a, nil
	}
	// A directory's times and links change with the creates queued in
	// it, a file's attributes with its own changes.
	if err := fsys.settleNames(name); err != nil {
		return backend.Attr{}, err
	}
	var a backend.Attr
	err = fsys.do(true, func(s *session) error {
		if len(parts) == 0 {
			qid, valid, attr, err := s.root.GetAttr(p9.AttrMaskAll)
			if err != nil {
				return err
			}
			a = fsys.toAttr(qid, valid, attr)
			return nil
		}
		f, qid, valid, attr, err := s.walkStat(parts)
		if err != nil {
			return err
		}
		if fsys.queuedFor(fsys.localIno(qid.Path)) {
			// Another name of a file with changes queued: ask
			// again once they are sent.
			if err := fsys.settleIno(fsys.localIno(qid.Path)); err != nil {
				clunk(f)
				return err
			}
			qid, valid, attr, err = f.GetAttr(p9.AttrMaskAll)
			if err != nil {
				clunk(f)
				return err
			}
		}
		clunk(f)
		a = fsys.toAttr(qid, valid, attr)
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
	if err := fsys.settleName(name); err != nil {
		return nil, err // a create of name may be queued
	}
	f := &file{fsys: fsys, name: name, flags: flags}
	err = fsys.do(true, func(s *session) error {
		fid, err := s.walk(parts)
		if err != nil {
			return err
		}
		qid, _, err := fid.Open(toWire(flags))
		if err != nil {
			clunk(fid)
			return err
		}
		f.ino = fsys.localIno(qid.Path)
		f.setFid(s, fid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	fsys.track(f)
	return f, nil
}

func (fsys *FS) Mkdir(name string, perm uint32) error {
	dir, base, err := splitParent(name)
	if err != nil {
		return err
	}
	fsys.forgetNewDir()
	return fsys.do(false, func(s *session) error {
		d, release, plain, err := s.parentFidMode(dir)
		if err != nil {
			return err
		}
		defer release()
		qid, err := d.Mkdir(base, p9.FileMode(perm&07777), createUID, createGID)
		if err == nil && fsys.cfg.Exclusive && plain {
			fsys.newDir(s, name, qid, perm)
			fsys.rememberDir(name, qid.Path, perm)
			s.dirs.prepare(append(dir[:len(dir):len(dir)], base))
		}
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
	if err := fsys.settleNames(oldName); err != nil {
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
	if err := fsys.settleNames(name); err != nil {
		return err
	}
	fsys.forgetNewDir()
	if flags&unix.AT_REMOVEDIR != 0 {
		fsys.forgetDirs(name)
	}
	err = fsys.withParent(false, name, func(s *session, dir p9.File, _ string) error {
		return s.unlink(dir, parts, flags)
	})
	if err == nil {
		fsys.removed(name, flags&unix.AT_REMOVEDIR != 0)
	}
	return err
}

func (fsys *FS) Chmod(name string, perm uint32) error {
	fsys.forgetDirs(name) // its set-group-ID bit may change
	return fsys.setAttrByName("chmod", name, true, p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: p9.FileMode(perm & 07777)})
}

func (fsys *FS) Chown(name string, uid, gid int) error {
	mask, attr := chownAttr(uid, gid)
	fsys.forgetDirs(name) // a chown clears the set-group-ID bit
	return fsys.setAttrByName("chown", name, true, mask, attr)
}

func (fsys *FS) Utimens(name string, atime, mtime *unix.Timespec) error {
	mask, attr := utimesAttr(atime, mtime)
	return fsys.setAttrByName("utimes", name, true, mask, attr)
}

func (fsys *FS) Truncate(name string, size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	return fsys.setAttrByName("truncate", name, false, p9.SetAttrMask{Size: true}, p9.SetAttr{Size: uint64(size)})
}

// setAttrByName sends a setattr to the file at name. A change that may be
// deferred, of a file open under that name on an exclusive FS, joins that
// file's queue. Otherwise the call waits for the changes queued for the
// file it walks to, so the server applies them in the caller's order.
func (fsys *FS) setAttrByName(what, name string, mayDefer bool, mask p9.SetAttrMask, attr p9.SetAttr) error {
	parts, err := components(name)
	if err != nil {
		return err
	}
	fsys.forgetNewDir()
	if mayDefer {
		if f := fsys.openUnder(name); f != nil {
			return f.setAttr(what, mask, attr)
		}
		if d, ok := fsys.madeDirNamed(name, mask, attr); ok {
			fsys.deferDirSetAttr(d, what, mask, attr)
			return nil
		}
	}
	if err := fsys.settleNames(name); err != nil {
		return err
	}
	return fsys.do(true, func(s *session) error {
		f, qid, release, err := s.walkQID(parts)
		if err != nil {
			return err
		}
		defer release()
		// As on Linux: a symlink's mode cannot change, and the
		// target's must not change instead.
		if mask.Permissions && qid.Type&p9.TypeSymlink != 0 {
			return syscall.EOPNOTSUPP
		}
		if len(parts) > 0 {
			if err := fsys.settleIno(fsys.localIno(qid.Path)); err != nil {
				return err
			}
		}
		return f.SetAttr(mask, attr)
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
	if err := fsys.settleNames(name); err != nil {
		return nil, err // creates in it may be queued
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
				entries = append(entries, backend.DirEntry{Name: e.Name, Ino: fsys.localIno(e.QID.Path), Mode: direntMode(e)})
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
