package ninep

import (
	"io"
	"sync"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// maxInFlight bounds the requests one read or write has outstanding.
const maxInFlight = 8

// file is an open remote file: a fid opened on some session, reopened by
// name on a newer session after a reconnect.
type file struct {
	fsys  *FS
	flags int // open(2) flags, fixed at open

	// name is the file's volume-relative name, kept current by renames
	// through the FS. Guarded by fsys.mu.
	name string

	mu sync.Mutex
	// sess is the session fid belongs to. Guarded by mu.
	sess *session
	// fid is the open fid. Guarded by mu.
	fid p9.File
	// closed is set by Close. Guarded by mu.
	closed bool
}

var _ backend.File = (*file)(nil)

func (f *file) setFid(s *session, fid p9.File) {
	f.mu.Lock()
	f.sess, f.fid = s, fid
	f.mu.Unlock()
}

// fidOn returns the file's fid on session s, reopening the file there if
// it was opened on an older session.
func (f *file) fidOn(s *session) (p9.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, syscall.EBADF
	}
	if f.sess == s {
		return f.fid, nil
	}
	parts, err := components(f.fsys.nameOf(f))
	if err != nil {
		return nil, err
	}
	fid, err := s.walk(parts)
	if err == nil {
		_, _, err = fid.Open(toWire(f.flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)))
		if err != nil {
			clunk(fid)
		}
	}
	if err != nil {
		if isReply(err) {
			// The file is gone from its name (unlinked or renamed
			// by someone else while we were away).
			return nil, syscall.ESTALE
		}
		return nil, err
	}
	// The old fid died with its session; nothing to clunk.
	f.sess, f.fid = s, fid
	return fid, nil
}

// do runs op on the file's fid on the live session.
func (f *file) do(op func(fid p9.File) error) error {
	return f.fsys.do(true, func(s *session) error {
		fid, err := f.fidOn(s)
		if err != nil {
			return err
		}
		return op(fid)
	})
}

// ReadAt reads with up to maxInFlight requests outstanding. At the end of
// the file it returns what was read and io.EOF.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	return f.parallel(p, off, func(fid p9.File, b []byte, o int64) (int, error) {
		n, err := fid.ReadAt(b, o)
		if isEOF(err) {
			return n, nil
		}
		return n, err
	}, true)
}

// WriteAt writes with up to maxInFlight requests outstanding. After an
// error it reports the bytes of p that are known to be written: the
// prefix before the first request that failed.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	n, err := f.parallel(p, off, func(fid p9.File, b []byte, o int64) (int, error) {
		return fid.WriteAt(b, o)
	}, false)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// parallel splits p into requests of one session chunk each and runs xfer
// on them concurrently. A short reply ends the transfer there; the result
// is the length of the complete prefix.
func (f *file) parallel(p []byte, off int64, xfer func(fid p9.File, b []byte, o int64) (int, error), read bool) (int, error) {
	s, err := f.fsys.session()
	if err != nil {
		return 0, err
	}
	chunk := s.chunk
	if len(p) <= chunk {
		return f.one(p, off, xfer, read)
	}
	pieces := (len(p) + chunk - 1) / chunk
	ns := make([]int, pieces)
	errs := make([]error, pieces)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := range pieces {
		b := p[i*chunk : min((i+1)*chunk, len(p))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ns[i], errs[i] = f.one(b, off+int64(i*chunk), xfer, read)
		}()
	}
	wg.Wait()
	total := 0
	for i := range pieces {
		total += ns[i]
		want := min(chunk, len(p)-i*chunk)
		if errs[i] != nil {
			return total, errs[i]
		}
		if ns[i] < want {
			if read && total == 0 {
				return 0, io.EOF
			}
			return total, nil
		}
	}
	return total, nil
}

// one does the transfer of p as a single request on the file's fid. The
// client library would split a larger p itself, one request at a time.
func (f *file) one(p []byte, off int64, xfer func(fid p9.File, b []byte, o int64) (int, error), read bool) (int, error) {
	var n int
	err := f.do(func(fid p9.File) (err error) {
		n, err = xfer(fid, p, off)
		return err
	})
	if err == nil && read && n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, err
}

func (f *file) Stat() (backend.Attr, error) {
	var a backend.Attr
	err := f.do(func(fid p9.File) error {
		qid, valid, attr, err := fid.GetAttr(p9.AttrMaskAll)
		a = toAttr(qid, valid, attr)
		return err
	})
	return a, err
}

func (f *file) Truncate(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	return f.do(func(fid p9.File) error {
		return fid.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{Size: uint64(size)})
	})
}

// Allocate is not part of 9P2000.L.
func (f *file) Allocate(mode uint32, off, size int64) error { return syscall.EOPNOTSUPP }

// Sync sends Tfsync; 9P2000.L has no data-only form the library offers.
func (f *file) Sync(dataOnly bool) error {
	return f.do(func(fid p9.File) error { return fid.FSync() })
}

// Flush has nothing to do: every write already reached the server, where
// other clients see it; 9P has no close-to-open step beyond that.
func (f *file) Flush() error { return nil }

func (f *file) Close() error {
	f.fsys.untrack(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return syscall.EBADF
	}
	f.closed = true
	clunk(f.fid)
	f.fid, f.sess = nil, nil
	return nil
}

func (f *file) Chmod(perm uint32) error {
	return f.do(func(fid p9.File) error {
		return fid.SetAttr(p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: p9.FileMode(perm & 07777)})
	})
}

func (f *file) Chown(uid, gid int) error {
	mask, attr := chownAttr(uid, gid)
	return f.do(func(fid p9.File) error { return fid.SetAttr(mask, attr) })
}

func (f *file) Utimens(atime, mtime *unix.Timespec) error {
	mask, attr := utimesAttr(atime, mtime)
	return f.do(func(fid p9.File) error { return fid.SetAttr(mask, attr) })
}

func (f *file) Getxattr(attr string, dest []byte) (int, error)     { return 0, syscall.ENODATA }
func (f *file) Setxattr(attr string, data []byte, flags int) error { return syscall.EOPNOTSUPP }
func (f *file) Listxattr(dest []byte) (int, error)                 { return 0, nil }
func (f *file) Removexattr(attr string) error                      { return syscall.ENODATA }

// track registers an open file for rename bookkeeping.
func (fsys *FS) track(f *file) {
	fsys.mu.Lock()
	fsys.files[f] = struct{}{}
	fsys.mu.Unlock()
}

func (fsys *FS) untrack(f *file) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if _, ok := fsys.files[f]; !ok {
		return
	}
	delete(fsys.files, f)
	if fsys.closed && len(fsys.files) == 0 {
		fsys.shutdownLocked()
	}
}

func (fsys *FS) nameOf(f *file) string {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return f.name
}

// renamed moves the names of open files at or beneath oldName.
func (fsys *FS) renamed(oldName, newName string) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	for f := range fsys.files {
		if hasPrefixPath(f.name, oldName) {
			f.name = newName + f.name[len(oldName):]
		}
	}
}
