package datapath

import (
	"sync"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// cacheRemote is a remote file as the cache sees it.
//
// Writing data back makes the server set the file's mtime to its own
// clock, possibly long after the file's times were set explicitly (by
// tar, or by the kernel flushing its own times under the writeback
// cache). So the last times set are set again before the remote file is
// next synced, when data was written since: every barrier (fsync, syncfs,
// unmount) leaves the times the volume set.
type cacheRemote struct {
	f backend.File

	mu sync.Mutex
	// atime and mtime were last set explicitly; nil if never. Guarded
	// by mu.
	atime, mtime *unix.Timespec
	// written is set when data or the size changed on the remote after
	// the times were set. Guarded by mu.
	written bool
}

func (r *cacheRemote) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

func (r *cacheRemote) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.f.WriteAt(p, off)
	if n > 0 {
		r.changed()
	}
	return n, err
}

// Truncate sets mtime by itself, so the times set before stop counting.
func (r *cacheRemote) Truncate(size int64) error {
	r.mu.Lock()
	r.atime, r.mtime, r.written = nil, nil, false
	r.mu.Unlock()
	return r.f.Truncate(size)
}

func (r *cacheRemote) changed() {
	r.mu.Lock()
	r.written = true
	r.mu.Unlock()
}

// setTimes records times just set on the remote (nil: left alone).
func (r *cacheRemote) setTimes(atime, mtime *unix.Timespec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if atime != nil {
		at := *atime
		r.atime = &at
	}
	if mtime != nil {
		mt := *mtime
		r.mtime = &mt
	}
	r.written = false
}

// Sync sets the recorded times again if data was written since, then
// syncs the remote file.
func (r *cacheRemote) Sync() error {
	r.mu.Lock()
	at, mt, again := r.atime, r.mtime, r.written && (r.atime != nil || r.mtime != nil)
	r.mu.Unlock()
	if again {
		if err := r.f.Utimens(at, mt); err != nil {
			return err
		}
		r.mu.Lock()
		r.written = false
		r.mu.Unlock()
	}
	return r.f.Sync(false)
}

// Prefetch passes a sequential stream's next window to a remote that can
// read ahead (cache.Prefetcher).
func (r *cacheRemote) Prefetch(off, length int64) {
	if p, ok := r.f.(backend.Prefetcher); ok {
		p.Prefetch(off, length)
	}
}

func (r *cacheRemote) Size() (int64, error) {
	a, err := r.f.Stat()
	return a.Size, err
}

// cacheTimesSet records times a setattr just set on n's remote file, for
// its page cache to set again after writing data back.
func (n *node) cacheTimesSet(atime, mtime *unix.Timespec) {
	n.mu.Lock()
	c := n.cache
	n.mu.Unlock()
	if c != nil {
		c.cr.setTimes(atime, mtime)
	}
}

// vectorRemote is a cacheRemote whose file reads into several buffers with
// one call (backend.VectorReader): the cache then fills its pages straight
// from the file (cache.VectorReader), without a staging copy.
type vectorRemote struct {
	*cacheRemote
	v backend.VectorReader
}

func (r vectorRemote) ReadvAt(bufs [][]byte, off int64) (int, error) { return r.v.ReadvAt(bufs, off) }

// vectorReaderOf returns f's VectorReader, looking through the sharing
// wrapper, which hides it.
func vectorReaderOf(f backend.File) (backend.VectorReader, bool) {
	if s, ok := f.(*sharedFile); ok {
		f = s.File
	}
	v, ok := f.(backend.VectorReader)
	return v, ok
}
