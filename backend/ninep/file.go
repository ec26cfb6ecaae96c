package ninep

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

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
	// fidName is the name fid was walked to. Guarded by mu.
	fidName string
	// closed is set by Close. Guarded by mu.
	closed bool
	// fresh is the attributes of a file just created, for the first
	// Stat; nil once anything may have changed them (see create.go).
	// Guarded by mu.
	fresh *backend.Attr

	// ino is the file's inode number (its QID path), fixed at open.
	ino uint64
	// unlinked is set once the name the file was opened under was
	// removed or replaced through the FS. Guarded by fsys.mu.
	unlinked bool
	// created, for a file created in the background, is closed once the
	// create is done, and createErr is then its failure (asynccreate.go).
	created   chan struct{}
	createErr error
	// deferredErr is the first failure of a deferred change not yet
	// returned by Sync. Guarded by fsys.mu.
	deferredErr error
	// closing is set once Close queued the file's close behind its
	// deferred changes: a change by name must not join that queue, where
	// it would come after the close. Guarded by fsys.mu.
	closing bool
	// ownerRefused is set once the server refused a deferred owner
	// change made through this file: set-ID bits asked for after it are
	// not sent (deferred.go). Guarded by fsys.mu.
	ownerRefused bool
}

var _ backend.File = (*file)(nil)

func (f *file) setFid(s *session, fid p9.File) {
	name, _ := f.fsys.nameOf(f)
	f.mu.Lock()
	f.sess, f.fid, f.fidName = s, fid, name
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
	name, unlinked := f.fsys.nameOf(f)
	if unlinked {
		// Its name leads elsewhere now, or nowhere.
		return nil, syscall.ESTALE
	}
	parts, err := components(name)
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
	f.sess, f.fid, f.fidName = s, fid, name
	return fid, nil
}

// do runs op on the file's fid on the live session.
func (f *file) do(op func(fid p9.File) error) error {
	if err := f.waitCreated(); err != nil {
		return err
	}
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
	f.changed()
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
	if a := f.takeFresh(); a != nil {
		return *a, nil
	}
	if err := f.settle(); err != nil {
		return backend.Attr{}, err
	}
	var a backend.Attr
	op := func(fid p9.File) error {
		qid, valid, attr, err := fid.GetAttr(p9.AttrMaskAll)
		a = f.fsys.toAttr(qid, valid, attr)
		return err
	}
	err := f.doAttr(op)
	return a, err
}

func (f *file) Truncate(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	f.changed()
	if err := f.settle(); err != nil {
		return err
	}
	op := func(fid p9.File) error {
		return fid.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{Size: uint64(size)})
	}
	return f.doAttr(op)
}

// Allocate is not part of 9P2000.L.
func (f *file) Allocate(mode uint32, off, size int64) error { return syscall.EOPNOTSUPP }

// Sync sends Tfsync after the file's deferred changes; 9P2000.L has no
// data-only form the library offers. It is their barrier: it returns the
// first failure of one since the last Sync.
func (f *file) Sync(dataOnly bool) error {
	if err := f.settle(); err != nil {
		return err
	}
	if err := f.do(func(fid p9.File) error { return fid.FSync() }); err != nil {
		return err
	}
	return f.takeDeferredErr()
}

// Flush has nothing to do: every write already reached the server, where
// other clients see it; 9P has no close-to-open step beyond that.
func (f *file) Flush() error { return nil }

// Close releases the file's fid once its deferred changes are sent.
func (f *file) Close() error {
	fsys := f.fsys
	fsys.mu.Lock()
	if _, busy := fsys.deferred.queues[f.ino]; busy {
		f.closing = true
		fsys.queueLocked(change{f: f, what: "close", close: true})
		fsys.mu.Unlock()
		return nil
	}
	fsys.mu.Unlock()
	return f.closeNow()
}

func (f *file) closeNow() error {
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
	return f.setAttr("chmod", p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: p9.FileMode(perm & 07777)})
}

func (f *file) Chown(uid, gid int) error {
	mask, attr := chownAttr(uid, gid)
	return f.setAttr("chown", mask, attr)
}

func (f *file) Utimens(atime, mtime *unix.Timespec) error {
	mask, attr := utimesAttr(atime, mtime)
	return f.setAttr("utimes", mask, attr)
}

// setAttr sends a setattr on the file's fid, in the background on an
// exclusive FS. A time asked for as "now" is the client's clock when the
// change is deferred, so that it is the time of the call, not of the send.
func (f *file) setAttr(what string, mask p9.SetAttrMask, attr p9.SetAttr) error {
	if f.isClosed() {
		return syscall.EBADF
	}
	f.changed()
	if f.fsys.cfg.Exclusive {
		now := time.Now()
		if mask.ATime && !mask.ATimeNotSystemTime {
			mask.ATimeNotSystemTime = true
			attr.ATimeSeconds, attr.ATimeNanoSeconds = uint64(now.Unix()), uint64(now.Nanosecond())
		}
		if mask.MTime && !mask.MTimeNotSystemTime {
			mask.MTimeNotSystemTime = true
			attr.MTimeSeconds, attr.MTimeNanoSeconds = uint64(now.Unix()), uint64(now.Nanosecond())
		}
	}
	if f.deferSetAttr(what, mask, attr) {
		return nil
	}
	op := func(fid p9.File) error { return fid.SetAttr(mask, attr) }
	return f.doAttr(op)
}

// doAttr runs an attribute call on the file (doByPath), or by its name
// when the fid no longer leads to it (viaName).
func (f *file) doAttr(op func(fid p9.File) error) error {
	return f.viaName(f.doByPath(op), op)
}

// errOtherFile reports that the file's fid leads to another file: the
// server tracks fids by path, and a newcomer took the name of the file,
// which was removed.
var errOtherFile = fmt.Errorf("ninep: the open file's name leads to another file: %w", syscall.ESTALE)

// doByPath runs op, an attribute call, where it reaches the file on a
// server that runs such calls by the path a fid was walked to (diod), so
// that it never reaches something else that took the file's old name:
//
//   - on a fid walked to the file's current name if the FS renamed the
//     file since its own fid was walked;
//   - on its own fid once it has been removed through the FS, after
//     checking that the fid still leads to the file (errOtherFile if not);
//   - on its own fid otherwise.
func (f *file) doByPath(op func(fid p9.File) error) error {
	name, unlinked := f.fsys.nameOf(f)
	f.mu.Lock()
	walked := f.fidName
	f.mu.Unlock()
	switch {
	case unlinked && f.ino != 0:
		return f.do(func(fid p9.File) error {
			qid, _, _, err := fid.GetAttr(p9.AttrMask{})
			if err != nil {
				return err
			}
			if qid.Path != f.ino {
				return errOtherFile
			}
			return op(fid)
		})
	case !unlinked && walked != "" && name != walked:
		if err := f.waitCreated(); err != nil {
			return err
		}
		return f.fsys.withFid(true, name, func(_ *session, fid p9.File) error { return op(fid) })
	}
	return f.do(op)
}

// viaName runs op again on a fid walked to the file's current name when
// the server refused it on the file's own fid as if the file had no path
// (ENOENT, ESTALE, EINVAL): servers that change attributes by path keep a
// fid's path as it was walked, and the FS has renamed the file since
// (diod; the gofer too after a rename made as link and unlink).
func (f *file) viaName(err error, op func(fid p9.File) error) error {
	if err == nil || !isReply(err) {
		return err
	}
	if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESTALE) && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	name, unlinked := f.fsys.nameOf(f)
	if unlinked || f.createFailed() {
		return err
	}
	return f.fsys.withFid(true, name, func(_ *session, fid p9.File) error { return op(fid) })
}

// takeFresh returns the attributes known since the create, once.
func (f *file) takeFresh() *backend.Attr {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.fresh
	f.fresh = nil
	return a
}

// changed forgets the attributes known since the create.
func (f *file) changed() {
	f.mu.Lock()
	f.fresh = nil
	f.mu.Unlock()
}

func (f *file) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *file) Getxattr(attr string, dest []byte) (int, error)     { return 0, syscall.ENODATA }
func (f *file) Setxattr(attr string, data []byte, flags int) error { return syscall.EOPNOTSUPP }
func (f *file) Listxattr(dest []byte) (int, error)                 { return 0, nil }
func (f *file) Removexattr(attr string) error                      { return syscall.ENODATA }

// track registers an open file for rename bookkeeping.
func (fsys *FS) track(f *file) {
	fsys.mu.Lock()
	fsys.trackLocked(f)
	fsys.mu.Unlock()
}

// trackLocked is track with fsys.mu held.
func (fsys *FS) trackLocked(f *file) {
	fsys.files[f] = struct{}{}
	fsys.nameLocked(f, f.name)
}

func (fsys *FS) untrack(f *file) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if _, ok := fsys.files[f]; !ok {
		return
	}
	delete(fsys.files, f)
	fsys.unlinkLocked(f)
	if fsys.closed && len(fsys.files) == 0 {
		fsys.shutdownLocked()
	}
}

// nameLocked gives the tracked file f the name name, which leads to it.
//
// Preconditions: fsys.mu is held.
func (fsys *FS) nameLocked(f *file, name string) {
	fsys.unlinkLocked(f)
	f.name, f.unlinked = name, false
	set := fsys.byName[name]
	if set == nil {
		set = make(map[*file]struct{})
		fsys.byName[name] = set
	}
	set[f] = struct{}{}
}

// unlinkLocked records that f's name no longer leads to it.
//
// Preconditions: fsys.mu is held.
func (fsys *FS) unlinkLocked(f *file) {
	if f.unlinked {
		return
	}
	f.unlinked = true
	if set := fsys.byName[f.name]; set != nil {
		delete(set, f)
		if len(set) == 0 {
			delete(fsys.byName, f.name)
		}
	}
}

func (fsys *FS) nameOf(f *file) (string, bool) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return f.name, f.unlinked
}

// renamed moves the names of open files at or beneath oldName; files
// open under newName itself were replaced.
func (fsys *FS) renamed(oldName, newName string) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	for f := range fsys.byName[newName] {
		fsys.unlinkLocked(f)
	}
	var moved []*file
	for name, set := range fsys.byName {
		if hasPrefixPath(name, oldName) {
			for f := range set {
				moved = append(moved, f)
			}
		}
	}
	for _, f := range moved {
		fsys.nameLocked(f, newName+f.name[len(oldName):])
	}
	fsys.dirsRenamedLocked(oldName, newName)
}

// removed marks the files open under name: the name no longer leads to
// them; a directory is no longer one the FS made.
func (fsys *FS) removed(name string, dir bool) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if dir {
		delete(fsys.madeDirs, name)
	}
	for f := range fsys.byName[name] {
		fsys.unlinkLocked(f)
	}
}

// openUnder returns a file open under name, on an exclusive FS (where a
// name leads to the file it was opened as until the FS itself changes
// that), or nil.
func (fsys *FS) openUnder(name string) *file {
	if !fsys.cfg.Exclusive {
		return nil
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	for f := range fsys.byName[name] {
		if f.ino != 0 && !f.closing {
			return f
		}
	}
	return nil
}
