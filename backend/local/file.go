package local

import (
	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// file is an open file of the volume directory; its descriptor is the
// host FD.
type file struct {
	fd int
}

var _ backend.HostFile = (*file)(nil)

func (f *file) Fd() int { return f.fd }

var _ backend.VectorReader = (*file)(nil)

// iovMax is IOV_MAX on Linux: the most buffers one preadv(2) takes.
const iovMax = 1024

// ReadvAt reads into bufs with preadv(2), iovMax buffers per call, until
// they are full or a call comes up short (the end of the file).
func (f *file) ReadvAt(bufs [][]byte, off int64) (int, error) {
	var done int
	for len(bufs) > 0 {
		batch := bufs[:min(len(bufs), iovMax)]
		var want int
		for _, b := range batch {
			want += len(b)
		}
		n, err := unix.Preadv(f.fd, batch, off+int64(done))
		if err == unix.EINTR {
			continue
		}
		done += max(n, 0)
		if err != nil || n < want {
			return done, err
		}
		bufs = bufs[len(batch):]
	}
	return done, nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(f.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

var _ backend.Prefetcher = (*file)(nil)

// Prefetch starts the host's readahead of the range into the backing
// file's page cache (POSIX_FADV_WILLNEED queues the reads and returns).
func (f *file) Prefetch(off, length int64) {
	unix.Fadvise(f.fd, off, length, unix.FADV_WILLNEED)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(f.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

func (f *file) Stat() (backend.Attr, error) {
	var stx unix.Statx_t
	if err := unix.Statx(f.fd, "", unix.AT_EMPTY_PATH, statxMask, &stx); err != nil {
		return backend.Attr{}, err
	}
	return attrFromStatx(&stx), nil
}

func (f *file) Truncate(size int64) error { return unix.Ftruncate(f.fd, size) }

func (f *file) Allocate(mode uint32, off, size int64) error {
	return unix.Fallocate(f.fd, mode, off, size)
}

func (f *file) Sync(dataOnly bool) error {
	if dataOnly {
		return unix.Fdatasync(f.fd)
	}
	return unix.Fsync(f.fd)
}

// Flush closes a duplicate of the descriptor: that is what close(2) does
// to the backing file system (an NFS share, say, publishes written data on
// close), without giving up the descriptor itself.
func (f *file) Flush() error {
	nfd, err := unix.Dup(f.fd)
	if err != nil {
		return err
	}
	return unix.Close(nfd)
}

func (f *file) Close() error { return unix.Close(f.fd) }

func (f *file) Chmod(perm uint32) error { return unix.Fchmod(f.fd, perm) }

func (f *file) Chown(uid, gid int) error { return unix.Fchown(f.fd, uid, gid) }

func (f *file) Utimens(atime, mtime *unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFdPath(f.fd), utimes(atime, mtime), 0)
}

func (f *file) Getxattr(attr string, dest []byte) (int, error) {
	return unix.Fgetxattr(f.fd, attr, dest)
}

func (f *file) Setxattr(attr string, data []byte, flags int) error {
	return unix.Fsetxattr(f.fd, attr, data, flags)
}

func (f *file) Listxattr(dest []byte) (int, error) { return unix.Flistxattr(f.fd, dest) }

func (f *file) Removexattr(attr string) error { return unix.Fremovexattr(f.fd, attr) }
