package cache

import (
	"fmt"
	"io"
	"math"
)

// all is every offset of a file.
var all = Range{0, math.MaxUint64}

// WriteBack writes the dirty pages overlapping [off, off+length) to the
// remote. Pages under a writable mapping are written but stay dirty (M5).
// On error the pages not known to be written stay dirty.
func (f *File) WriteBack(off, length int64) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	return f.writeBackLocked(r)
}

// WriteBackAll writes every dirty page to the remote and then makes the
// remote size follow the file size (W6).
func (f *File) WriteBackAll() error {
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	return f.writeBackAllLocked()
}

// Sync writes every dirty page back and then syncs the remote (S4).
func (f *File) Sync() error {
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.writeBackAllLocked(); err != nil {
		return err
	}
	return f.syncRemoteLocked()
}

// SyncRange writes the dirty pages overlapping [off, off+length) back and
// then syncs the remote (W8: O_SYNC and O_DSYNC writes).
func (f *File) SyncRange(off, length int64) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.writeBackLocked(r); err != nil {
		return err
	}
	return f.syncRemoteLocked()
}

// DropRange writes back the dirty pages overlapping [off, off+length) and
// then drops every page it touches, mapped or not (W3: O_DIRECT writes).
// If the writeback fails, nothing is dropped.
func (f *File) DropRange(off, length int64) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	return f.dropRangeLocked(r)
}

// Evict writes back the dirty pages overlapping [off, off+length) and
// drops the pages there that are then clean and not mapped (C1, M6). A
// page whose writeback fails stays cached and dirty; the error is
// returned.
func (f *File) Evict(off, length int64) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	err = f.writeBackLocked(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	var victims []*page
	for seg := range f.pages.Segments(pageRange(r)) {
		if f.mapped.containing(seg.Start) == nil && f.dirty.containing(seg.Start) == nil {
			victims = append(victims, seg.Value)
		}
	}
	for _, pg := range victims {
		f.removePageLocked(pg)
	}
	return err
}

// Close writes every dirty page back and, only if that succeeded, drops
// the whole cache (C2). The File stays usable, without background fills:
// the caller may close the remote next.
func (f *File) Close() error {
	f.waitAhead(true)
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.writeBackAllLocked(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(all)
	return nil
}

// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) syncRemoteLocked() error {
	if err := f.remote.Sync(); err != nil {
		return fmt.Errorf("cache: sync remote: %w", err)
	}
	return nil
}

// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) writeBackAllLocked() error {
	if err := f.writeBackLocked(all); err != nil {
		return err
	}
	if f.remoteSize < f.size {
		if err := f.remote.Truncate(int64(f.size)); err != nil {
			return fmt.Errorf("cache: extend remote to %d: %w", f.size, err)
		}
		f.mu.Lock()
		f.remoteSize = f.size
		f.mu.Unlock()
	}
	return nil
}

// writeBackLocked writes the dirty pages overlapping r, up to the size, in
// runs of at most writebackChunk bytes, and marks them clean unless kept
// dirty by a writable mapping.
//
// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) writeBackLocked(r Range) error {
	r = pageRange(r)
	for {
		f.mu.RLock()
		limit := Range{r.Start, min(r.End, f.size)}
		var run Range
		if it := f.dirty.LowerBound(limit.Start); it.Ok() {
			run = it.Segment().Intersect(limit)
			run.End = min(run.End, run.Start+writebackChunk)
		}
		if run.Empty() {
			f.mu.RUnlock()
			return nil
		}
		buf := getBuf(run.Len())
		f.copyDirtyRLocked(buf, run)
		f.mu.RUnlock()

		n, err := f.remote.WriteAt(buf, int64(run.Start))
		putBuf(buf)
		n = min(max(n, 0), int(run.Len()))
		if err == nil && uint64(n) < run.Len() {
			err = io.ErrShortWrite
		}
		f.mu.Lock()
		if n > 0 {
			f.remoteSize = max(f.remoteSize, run.Start+uint64(n))
		}
		if err == nil {
			f.markCleanLocked(pageRange(run))
		}
		f.mu.Unlock()
		f.counters.writebackBytes.Add(uint64(n))
		if err != nil {
			f.counters.writebackErrors.Add(1)
			return fmt.Errorf("cache: write back %v: %w", run, err)
		}
		r.Start = pageUp(run.End)
	}
}

// copyDirtyRLocked copies the cached bytes of r into dst.
//
// Preconditions: f.mu is locked for reading; r starts on a page and every
// page it touches is cached (dirty pages always are).
func (f *File) copyDirtyRLocked(dst []byte, r Range) {
	x := r.Start
	for it := f.pages.LowerBound(x); x < r.End; it = it.Next() {
		if !it.Ok() || it.Segment().Start != x {
			panic(fmt.Sprintf("cache: dirty page %#x is not cached", x))
		}
		x += uint64(copy(dst[x-r.Start:], it.Segment().Value.data[:min(r.End-x, PageSize)]))
	}
}

// markCleanLocked removes the dirty marks in r that no mapping keeps.
//
// Preconditions: f.mu is locked.
func (f *File) markCleanLocked(r Range) {
	f.dirty.Apply(r, func(_ Range, d dirtyState, ok bool) (dirtyState, bool) {
		return d, ok && d.keep
	})
}

// dropRangeLocked writes back the dirty pages overlapping r and then drops
// every page r touches.
//
// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) dropRangeLocked(r Range) error {
	if err := f.writeBackLocked(r); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(pageRange(r))
	return nil
}

// dropLocked removes the pages in r and their dirty marks.
//
// Preconditions: f.ioMu and f.mu are locked; r is page-aligned.
func (f *File) dropLocked(r Range) {
	b := f.budget
	var freed int64
	b.mu.Lock()
	for seg := range f.pages.Segments(r) {
		b.unlinkLocked(seg.Value)
		freed += PageSize
	}
	b.used -= freed
	b.mu.Unlock()
	for seg := range f.pages.Segments(r) {
		seg.Value.free()
	}
	f.pages.Remove(r)
	f.dirty.Remove(r)
}

// removePageLocked removes the clean page pg.
//
// Preconditions: f.mu is locked; pg is cached and clean.
func (f *File) removePageLocked(pg *page) {
	b := f.budget
	b.mu.Lock()
	b.unlinkLocked(pg)
	b.used -= PageSize
	b.mu.Unlock()
	f.pages.Remove(pg.rng())
	pg.free()
}

// linkRangeLocked makes the cached, unmapped pages in r eviction
// candidates.
//
// Preconditions: f.mu is locked.
func (f *File) linkRangeLocked(r Range) {
	f.budget.mu.Lock()
	defer f.budget.mu.Unlock()
	for seg := range f.pages.Segments(r) {
		if f.mapped.containing(seg.Start) == nil {
			f.budget.linkLocked(seg.Value)
		}
	}
}

// evictPage evicts pg if it is still cached and unmapped. A dirty pg is
// written back first when writeBack is set (with the pages after it, to
// save round trips); otherwise it is skipped. A skipped page goes back to
// the LRU as recently used.
//
// Preconditions: if writeBack, no File lock is held; otherwise no File.mu
// is held.
func (f *File) evictPage(pg *page, writeBack bool) (bool, error) {
	if writeBack {
		f.ioMu.Lock()
		defer f.ioMu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.evictableLocked(pg) {
		return false, nil
	}
	var err error
	if f.dirty.containing(pg.off) != nil && writeBack {
		f.mu.Unlock()
		err = f.writeBackLocked(Range{pg.off, pg.off + writebackChunk})
		f.mu.Lock()
		if !f.evictableLocked(pg) {
			return false, err
		}
	}
	if f.dirty.containing(pg.off) != nil {
		f.budget.mu.Lock()
		f.budget.linkLocked(pg)
		f.budget.mu.Unlock()
		return false, err
	}
	f.removePageLocked(pg)
	f.counters.evictions.Add(1)
	return true, nil
}

// evictableLocked reports whether pg is still cached and not mapped.
//
// Preconditions: f.mu is locked.
func (f *File) evictableLocked(pg *page) bool {
	seg, ok := f.pages.Find(pg.off)
	return ok && seg.Value == pg && f.mapped.containing(pg.off) == nil
}

// Allocate runs change, a remote call that rewrites [off, off+length)
// behind the cache's back (fallocate: punching a hole, zeroing a range,
// preallocating), and keeps the cache coherent with it: dirty pages there
// are written back and every page there is dropped first, so no later
// read or writeback serves or restores the old bytes, and unless keepSize
// the sizes grow to cover the range. If the writeback fails, change is
// not run.
func (f *File) Allocate(off, length int64, keepSize bool, change func() error) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.dropRangeLocked(r); err != nil {
		return err
	}
	if err := change(); err != nil {
		return err
	}
	if !keepSize {
		f.mu.Lock()
		f.size = max(f.size, r.End)
		f.remoteSize = max(f.remoteSize, r.End)
		f.mu.Unlock()
	}
	return nil
}
