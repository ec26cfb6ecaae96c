// Package local is the embedded default remote: a directory on the node.
//
// Every access is relative to a descriptor of the volume directory and is
// resolved by openat2(2) with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, so no
// name, symlink or rename race can reach a file outside the directory.
// Files opened here have a host FD, which the data path hands to the kernel
// for FUSE passthrough.
package local

import (
	"fmt"
	"os"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// Root is a volume directory on the node.
type Root struct {
	fd       int // O_PATH descriptor of the directory; fixed at Open.
	dir      string
	warm     warmer   // see PrefetchDirs
	siblings siblings // see OpenedForRead
}

var _ backend.FS = (*Root)(nil)

// Open opens the directory dir as a remote.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Root{fd: fd, dir: dir}, nil
}

// String names the directory, for logs.
func (r *Root) String() string { return fmt.Sprintf("local:%s", r.dir) }

// Close stops reading ahead and closes the directory descriptor.
func (r *Root) Close() error {
	r.warm.q.stop()
	r.siblings.q.stop()
	return unix.Close(r.fd)
}

// statxMask asks for what Stat_t holds plus the birth time, which tells two
// files apart that had the same inode number at different times.
const statxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

func (r *Root) Lstat(name string) (backend.Attr, error) {
	var stx unix.Statx_t
	var err error
	if name == "" {
		err = unix.Statx(r.fd, "", unix.AT_EMPTY_PATH, statxMask, &stx)
	} else {
		err = r.atParent(name, func(dirfd int, base string) error {
			return unix.Statx(dirfd, base, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx)
		})
	}
	if err != nil {
		return backend.Attr{}, err
	}
	return attrFromStatx(&stx), nil
}

func (r *Root) Open(name string, flags int, perm uint32) (backend.File, error) {
	// Never follow a final symlink: the kernel only opens regular files
	// and directories through FUSE, and a symlink planted in their place
	// must not redirect the open.
	// openat2 insists on a mode only when it creates, and on permission
	// bits only (FUSE sends the file type bits along).
	if flags&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		perm = 0
	}
	fd, err := openBeneath(r.fd, name, flags|unix.O_NOFOLLOW, perm&07777)
	if err != nil {
		return nil, err
	}
	return &file{fd: fd}, nil
}

func (r *Root) Mkdir(name string, perm uint32) error {
	return r.atParent(name, func(dirfd int, base string) error {
		return unix.Mkdirat(dirfd, base, perm)
	})
}

func (r *Root) Mknod(name string, mode uint32, dev uint64) error {
	return r.atParent(name, func(dirfd int, base string) error {
		return unix.Mknodat(dirfd, base, mode, int(dev))
	})
}

func (r *Root) Symlink(target, name string) error {
	return r.atParent(name, func(dirfd int, base string) error {
		return unix.Symlinkat(target, dirfd, base)
	})
}

func (r *Root) Readlink(name string) (string, error) {
	var target string
	err := r.atParent(name, func(dirfd int, base string) error {
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return err
		}
		target = string(buf[:n])
		return nil
	})
	return target, err
}

func (r *Root) Link(oldName, newName string) error {
	return r.atParent(oldName, func(olddir int, oldBase string) error {
		return r.atParent(newName, func(newdir int, newBase string) error {
			return unix.Linkat(olddir, oldBase, newdir, newBase, 0)
		})
	})
}

func (r *Root) Unlink(name string) error {
	return r.atParent(name, func(dirfd int, base string) error {
		return unix.Unlinkat(dirfd, base, 0)
	})
}

func (r *Root) Rmdir(name string) error {
	return r.atParent(name, func(dirfd int, base string) error {
		return unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
	})
}

func (r *Root) Rename(oldName, newName string, flags uint32) error {
	return r.atParent(oldName, func(olddir int, oldBase string) error {
		return r.atParent(newName, func(newdir int, newBase string) error {
			return unix.Renameat2(olddir, oldBase, newdir, newBase, uint(flags))
		})
	})
}

func (r *Root) Chmod(name string, perm uint32) error {
	return r.atNode(name, func(fd int, proc string) error {
		// chmod of a symlink is not supported on Linux; say so
		// instead of changing the link's target.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.EOPNOTSUPP
		}
		return unix.Chmod(proc, perm)
	})
}

func (r *Root) Chown(name string, uid, gid int) error {
	return r.atNode(name, func(fd int, _ string) error {
		return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
	})
}

func (r *Root) Utimens(name string, atime, mtime *unix.Timespec) error {
	return r.atNode(name, func(_ int, proc string) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, proc, utimes(atime, mtime), 0)
	})
}

func (r *Root) Truncate(name string, size int64) error {
	fd, err := openBeneath(r.fd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Ftruncate(fd, size)
}

func (r *Root) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	err := unix.Fstatfs(r.fd, &st)
	return st, err
}

// utimes builds utimensat's argument; nil leaves a time unchanged.
func utimes(atime, mtime *unix.Timespec) []unix.Timespec {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = *atime
	}
	if mtime != nil {
		ts[1] = *mtime
	}
	return ts
}

func attrFromStatx(x *unix.Statx_t) backend.Attr {
	var a backend.Attr
	a.Dev = unix.Mkdev(x.Dev_major, x.Dev_minor)
	a.Ino = x.Ino
	a.Nlink = uint64(x.Nlink)
	a.Mode = uint32(x.Mode)
	a.Uid = x.Uid
	a.Gid = x.Gid
	a.Rdev = unix.Mkdev(x.Rdev_major, x.Rdev_minor)
	a.Size = int64(x.Size)
	a.Blksize = int64(x.Blksize)
	a.Blocks = int64(x.Blocks)
	a.Atim = unix.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)}
	a.Mtim = unix.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)}
	a.Ctim = unix.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)}
	a.Gen = 1
	if x.Mask&unix.STATX_BTIME != 0 {
		a.Gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return a
}
