package ninep

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/p9"
	"k8s.io/klog/v2"
)

// On an exclusive FS (Config.Exclusive: nobody else changes the export),
// the attribute changes made through an open file (chmod, chown, utimes
// of a File) are sent in the background, so the call that makes one
// returns without a round trip (rule N3: exclusive volumes may defer
// namespace and attribute changes, with fsync, syncfs and unmount as
// barriers). An untar sets the owner, mode and times of every file it
// makes: three round trips each that no longer hold tar up.
//
// Order is kept where it can be seen:
//   - the changes of one file are sent one at a time, in the order they
//     were made, and a file's Stat, Truncate, Sync and Close come after
//     them;
//   - a call by name that reads or changes a file with changes queued
//     (Lstat, Chmod, Truncate, Unlink, Rename, Link, ...) waits for them
//     first, so the server applies everything in the caller's order.
//
// Barriers: File.Sync returns the first failure of the file's deferred
// changes, and FS.Settle waits for all of them and returns the first
// failure since the last Settle; the data path calls it at syncfs and
// unmount, and FS.SyncDir (fsync of a directory) calls it too. A change
// is never dropped because the server is away: it waits for the server
// to come back, and a barrier fails with EIO after Config.Timeout without
// progress. A change the server refuses (an errno reply) is dropped and
// its error kept for the next barrier.

// maxDeferredFiles bounds the files with changes queued; making a change
// waits while it is reached. Each holds an open fid on the server.
const maxDeferredFiles = 256

// maxDeferredInFlight bounds the deferred requests outstanding at once.
const maxDeferredInFlight = 16

// deferred is an FS's queues of deferred changes, one per file (by inode
// number: two opens of a file, or two of its names, share one, so their
// changes stay in order). Its fields are guarded by fsys.mu.
type deferred struct {
	// queues holds the changes of each file with changes queued or
	// being sent, oldest first.
	queues map[uint64][]change
	// progress is closed (and replaced) whenever a change completes.
	progress chan struct{}
	// err is the first failure not yet returned by Settle.
	err error
	// inFlight bounds the requests outstanding.
	inFlight chan struct{}
}

func newDeferred() deferred {
	return deferred{
		queues:   make(map[uint64][]change),
		progress: make(chan struct{}),
		inFlight: make(chan struct{}, maxDeferredInFlight),
	}
}

// change is one deferred change: a setattr sent on the fid of the file
// it was made through, or (close set) that file's close, which comes
// after the changes made before it.
type change struct {
	f     *file
	what  string // for errors: "chmod", "chown", "utimes", "close"; joined by "+"
	mask  p9.SetAttrMask
	attr  p9.SetAttr
	close bool
	// create, if set, makes the file (asynccreate.go).
	create *createReq
	// byName: f stands for a directory, changed by name (asynccreate.go).
	byName bool
}

// merge folds c2, made after c, into c when one request can do both:
// they go through the same file, and the result does not change both the
// owner and the mode (servers apply a setattr's parts in an order of
// their own, and a chown after a chmod can clear set-ID bits the chmod
// set).
func (c *change) merge(c2 change) bool {
	if c.close || c2.close || c.create != nil || c2.create != nil || c.f != c2.f {
		return false
	}
	m, m2 := c.mask, c2.mask
	owner := m.UID || m.GID || m2.UID || m2.GID
	if owner && (m.Permissions || m2.Permissions) || m.Size || m2.Size {
		return false
	}
	if m2.Permissions {
		c.mask.Permissions, c.attr.Permissions = true, c2.attr.Permissions
	}
	if m2.UID {
		c.mask.UID, c.attr.UID = true, c2.attr.UID
	}
	if m2.GID {
		c.mask.GID, c.attr.GID = true, c2.attr.GID
	}
	if m2.ATime {
		c.mask.ATime, c.mask.ATimeNotSystemTime = true, m2.ATimeNotSystemTime
		c.attr.ATimeSeconds, c.attr.ATimeNanoSeconds = c2.attr.ATimeSeconds, c2.attr.ATimeNanoSeconds
	}
	if m2.MTime {
		c.mask.MTime, c.mask.MTimeNotSystemTime = true, m2.MTimeNotSystemTime
		c.attr.MTimeSeconds, c.attr.MTimeNanoSeconds = c2.attr.MTimeSeconds, c2.attr.MTimeNanoSeconds
	}
	c.what += "+" + c2.what
	return true
}

// deferSetAttr queues a setattr for f, waiting while too many files have
// changes queued. It returns false when the FS does not defer changes;
// the caller then sends the change itself.
func (f *file) deferSetAttr(what string, mask p9.SetAttrMask, attr p9.SetAttr) bool {
	fsys := f.fsys
	if !fsys.cfg.Exclusive {
		return false
	}
	fsys.mu.Lock()
	fsys.waitRoomLocked(f.ino)
	fsys.queueLocked(change{f: f, what: what, mask: mask, attr: attr})
	fsys.mu.Unlock()
	return true
}

// waitRoomLocked waits while maxDeferredFiles files have changes queued,
// unless file ino is one of them.
//
// Preconditions: fsys.mu is held; it is released while waiting.
func (fsys *FS) waitRoomLocked(ino uint64) {
	for {
		if _, ok := fsys.deferred.queues[ino]; ok || len(fsys.deferred.queues) < maxDeferredFiles {
			return
		}
		ch := fsys.deferred.progress
		fsys.mu.Unlock()
		<-ch
		fsys.mu.Lock()
	}
}

// queueLocked appends c to its file's queue, or merges it into the last
// change there if that is not being sent yet, and starts sending the
// queue unless that is under way. (An untar's chmod, utimes and the
// kernel's own mtime update of a file become one request.)
//
// Preconditions: fsys.mu is held.
func (fsys *FS) queueLocked(c change) {
	ino := c.f.ino
	q, busy := fsys.deferred.queues[ino]
	if n := len(q); n > 1 && q[n-1].merge(c) {
		return
	}
	fsys.deferred.queues[ino] = append(q, c)
	if !busy {
		go fsys.drain(ino)
	}
}

// drain sends the queued changes of file ino in order until none is left.
func (fsys *FS) drain(ino uint64) {
	for {
		fsys.mu.Lock()
		q := fsys.deferred.queues[ino]
		if len(q) == 0 {
			delete(fsys.deferred.queues, ino)
			fsys.progressLocked()
			fsys.mu.Unlock()
			return
		}
		c := q[0]
		fsys.mu.Unlock()

		var err error
		switch {
		case c.close:
			c.f.closeNow()
		case c.create != nil:
			err = fsys.sendCreate(c)
		case c.setsIDAfterRefusedOwner():
			err = errSetIDAfterRefusedOwner
		case c.byName:
			err = fsys.sendByName(c)
		default:
			err = fsys.send(c)
		}

		fsys.mu.Lock()
		fsys.deferred.queues[ino] = fsys.deferred.queues[ino][1:]
		if err != nil && (c.mask.UID || c.mask.GID) {
			c.f.ownerRefused = true
		}
		if err != nil {
			err = fmt.Errorf("deferred %s of %s: %w", c.what, c.f.name, err)
			klog.ErrorS(err, "9P server refused a deferred change", "server", fsys.cfg.Server)
			if c.f.deferredErr == nil {
				c.f.deferredErr = err
			}
			if fsys.deferred.err == nil {
				fsys.deferred.err = err
			}
		}
		fsys.progressLocked()
		fsys.mu.Unlock()
	}
}

// errSetIDAfterRefusedOwner is the failure of a deferred chmod that would
// have made a file set-user-ID or set-group-ID after the server refused to
// give the file its new owner.
var errSetIDAfterRefusedOwner = fmt.Errorf("set-ID bits not applied: the owner change before them was refused: %w", syscall.EPERM)

// setsIDAfterRefusedOwner reports whether c would set set-ID bits on a
// file whose deferred owner change the server refused. The data path gives
// a new file its owner and then its set-ID bits (a chown clears them): if
// the chown failed, the file still belongs to the daemon (root), and the
// bits would make the caller's program run as root. Without the deferral
// the chmod would never be sent, since the chown's failure returns first.
func (c *change) setsIDAfterRefusedOwner() bool {
	c.f.fsys.mu.Lock()
	refused := c.f.ownerRefused
	c.f.fsys.mu.Unlock()
	return refused && c.mask.Permissions && c.attr.Permissions&(p9.SetUserID|p9.SetGroupID) != 0
}

// send sends one setattr, again and again while the server cannot be
// reached: a deferred change is never dropped for an outage.
func (fsys *FS) send(c change) error {
	return fsys.sendRetrying(c, func(bool) error {
		err := c.f.doByPath(func(fid p9.File) error { return fid.SetAttr(c.mask, c.attr) })
		if err != nil && isReply(err) {
			err = fsys.refused(c, err)
		}
		return err
	})
}

// sendRetrying runs attempt as one of the deferred requests outstanding,
// again (with retried set) after a back-off for as long as it fails
// because the server cannot be reached. It returns the server's refusal,
// or errClosed once the FS has shut down.
func (fsys *FS) sendRetrying(c change, attempt func(retried bool) error) error {
	backoff := minBackoff
	for retried := false; ; retried = true {
		fsys.deferred.inFlight <- struct{}{}
		err := attempt(retried)
		<-fsys.deferred.inFlight
		fsys.deferredSent.Add(1)
		var te *transportError
		if err == nil || !errors.As(err, &te) || fsys.stopped() {
			return err
		}
		klog.V(2).InfoS("Deferred change waits for the 9P server", "change", c.what, "err", err)
		select {
		case <-fsys.stop:
			return errClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// refused handles a deferred setattr the server refused on the file's
// fid. The kernel flushes a file's times when it likes, after the file
// was removed too: a change to a file no name leads to any more, which
// servers that track files by path (diod, the gofer) cannot make, is
// dropped (nobody can see it; a file with other links keeps its old
// times). A renamed file is changed by its current name (viaName).
func (fsys *FS) refused(c change, err error) error {
	fsys.mu.Lock()
	name, unlinked := c.f.name, c.f.unlinked
	fsys.mu.Unlock()
	if unlinked {
		klog.V(2).InfoS("Dropped a change of a removed file", "change", c.what, "file", name, "err", err)
		return nil
	}
	return c.f.viaName(err, func(fid p9.File) error { return fid.SetAttr(c.mask, c.attr) })
}

// progressLocked wakes everyone waiting for deferred changes.
//
// Preconditions: fsys.mu is held.
func (fsys *FS) progressLocked() {
	close(fsys.deferred.progress)
	fsys.deferred.progress = make(chan struct{})
}

// waitDeferred waits until done reports true (it is called with fsys.mu
// held). It fails with EIO when no deferred change completes for
// Config.Timeout, which only happens while the server is away.
func (fsys *FS) waitDeferred(done func() bool) error {
	if !fsys.cfg.Exclusive {
		return nil
	}
	var timer *time.Timer
	fsys.mu.Lock()
	for !done() {
		ch := fsys.deferred.progress
		fsys.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(fsys.cfg.Timeout)
			defer timer.Stop()
		} else {
			timer.Reset(fsys.cfg.Timeout)
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("9P server %s: deferred changes not sent for %v: %w",
				fsys.cfg.Server, fsys.cfg.Timeout, syscall.EIO)
		}
		fsys.mu.Lock()
	}
	fsys.mu.Unlock()
	return nil
}

// settleIno waits until file ino has no changes queued.
func (fsys *FS) settleIno(ino uint64) error {
	return fsys.waitDeferred(func() bool {
		_, busy := fsys.deferred.queues[ino]
		return !busy
	})
}

// settle waits until the changes queued for f's file are sent.
func (f *file) settle() error { return f.fsys.settleIno(f.ino) }

// settleName waits until no file opened under name has changes queued,
// so a call by that name reaches the server after them. (A file with
// changes queued that name does not lead to, another link of it, is
// waited for once the call has walked to it: settleIno.)
func (fsys *FS) settleName(name string) error {
	return fsys.settleMatching(func(f *file) bool { return f.name == name })
}

// settleNames waits until no file at or beneath one of names has changes
// queued: a call that removes or moves those names reaches the server
// after them (a server that tracks its fids by path must still find the
// files).
func (fsys *FS) settleNames(names ...string) error {
	return fsys.settleMatching(func(f *file) bool {
		for _, name := range names {
			if hasPrefixPath(f.name, name) {
				return true
			}
		}
		return false
	})
}

// settleMatching waits until no change is queued for a file for which
// match reports true.
func (fsys *FS) settleMatching(match func(f *file) bool) error {
	return fsys.waitDeferred(func() bool {
		for _, q := range fsys.deferred.queues {
			for _, c := range q {
				if match(c.f) {
					return false
				}
			}
		}
		return true
	})
}

// Settle waits until every deferred change made so far has reached the
// server, and returns the first failure of one since the last Settle. It
// is the barrier of syncfs and unmount.
func (fsys *FS) Settle() error {
	if err := fsys.waitDeferred(func() bool { return len(fsys.deferred.queues) == 0 }); err != nil {
		return err
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	err := fsys.deferred.err
	fsys.deferred.err = nil
	return err
}

// queuedFor reports whether file ino has changes queued.
func (fsys *FS) queuedFor(ino uint64) bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	_, busy := fsys.deferred.queues[ino]
	return busy
}

// DeferredSent returns how many deferred changes were sent (each one
// request, attempts after an outage included): the requests nobody
// waited for.
func (fsys *FS) DeferredSent() uint64 { return fsys.deferredSent.Load() }

// takeDeferredErr returns and forgets the first failure of f's deferred
// changes.
func (f *file) takeDeferredErr() error {
	f.fsys.mu.Lock()
	defer f.fsys.mu.Unlock()
	err := f.deferredErr
	f.deferredErr = nil
	return err
}
