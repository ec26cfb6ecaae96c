package cache

import (
	"fmt"
	"io"
)

// Write writes p at off (W5): the parts that fall on cached pages are copied
// into them and marked dirty; the parts that fall on gaps are written to
// the remote directly, without filling the cache. A write past the end
// extends the size at once and the remote size at writeback (W6). A short
// or failed remote write stops the write; the bytes before it count.
//
// With Options.BufferGapWrites, gap pages that need no read of the remote
// (see bufferableLocked) are cached and marked dirty instead, as far as
// the budget allows; only partial pages over remote data still go to the
// remote (the kernel's writeback cache reads those pages before writing
// part of them, so they are rare).
func (f *File) Write(p []byte, off int64) (int, error) {
	r, err := checkRange(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	if f.bufferGaps {
		// Evicting may write back dirty pages, which takes a File's
		// ioMu: make room before taking ours.
		f.budget.makeRoom(int64(pageRange(r).Len()))
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	start, end := r.Start, r.End
	x := start
	for x < end {
		f.mu.Lock()
		if n := f.copyInLocked(p[x-start:], x, end); n > 0 {
			x += n
			f.size = max(f.size, x)
		}
		gap, _ := f.pages.FindGap(x)
		f.mu.Unlock()
		if x >= end {
			break
		}
		chunkEnd := min(end, gap.End)
		if f.bufferGaps {
			pages := f.bufferableLocked(x, chunkEnd)
			if !pages.Empty() {
				if n := f.bufferLocked(p[x-start:chunkEnd-start], x, pages); n > 0 {
					x += n
					continue
				}
			} else {
				// Only x's page needs the remote's bytes; the
				// pages after it may still be buffered.
				chunkEnd = min(chunkEnd, pageDown(x)+PageSize)
			}
		}
		// Never read-modify-write a page to cache it: the gap goes to the
		// remote as it is.
		chunk := p[x-start : chunkEnd-start]
		n, err := f.remote.WriteAt(chunk, int64(x))
		n = min(max(n, 0), len(chunk))
		if err == nil && n < len(chunk) {
			err = io.ErrShortWrite
		}
		f.mu.Lock()
		if n > 0 {
			x += uint64(n)
			f.remoteSize = max(f.remoteSize, x)
			f.size = max(f.size, x)
		}
		f.mu.Unlock()
		if err != nil {
			return int(x - start), fmt.Errorf("cache: write remote at %d: %w", x, err)
		}
	}
	return int(x - start), nil
}

// bufferableLocked returns the pages, from x's page on, that a write of
// the gap [x, end) can cache without reading the remote: every byte of
// them that the write does not cover lies at or past the remote size, so
// it is zero. It is empty when x's page is not such a page.
//
// Preconditions: f.ioMu is locked; [x, end) is within one gap.
func (f *File) bufferableLocked(x, end uint64) Range {
	r := Range{pageDown(x), pageUp(end)}
	if r.Start < x && r.Start < f.remoteSize {
		return Range{}
	}
	if r.End > end && end < f.remoteSize {
		r.End = pageDown(end)
	}
	return r
}

// bufferLocked caches the gap pages (zeroed), copies src at x into them
// and marks them dirty. It returns how many bytes it copied: 0 when the
// budget cannot take the pages.
//
// Preconditions: f.ioMu is locked; f.mu is not; pages is a page-aligned
// part of a gap that contains x.
func (f *File) bufferLocked(src []byte, x uint64, pages Range) uint64 {
	if !f.budget.reserve(int64(pages.Len())) {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	segs := make([]Segment[*page], 0, pages.Len()/PageSize)
	for o := pages.Start; o < pages.End; o += PageSize {
		pg := newPage(f, o)
		clear(pg.data[:])
		segs = append(segs, Segment[*page]{pg.rng(), pg})
	}
	f.pages.InsertGap(segs)
	f.linkRangeLocked(pages)
	n := f.copyInLocked(src, x, min(pages.End, x+uint64(len(src))))
	f.size = max(f.size, x+n)
	return n
}

// copyInLocked copies src into the cached pages from x up to end or the
// first gap, marks them dirty and returns how many bytes it copied.
//
// Preconditions: f.ioMu and f.mu are locked.
func (f *File) copyInLocked(src []byte, x, end uint64) uint64 {
	start := x
	for it := f.pages.LowerBound(x); x < end && it.Ok(); it = it.Next() {
		pg := it.Segment().Value
		if pg.off > x {
			break
		}
		pg.touch()
		x += uint64(copy(pg.data[x-pg.off:min(end-pg.off, PageSize)], src[x-start:]))
	}
	// Rewriting dirty pages is common (appends, databases); skipping the
	// Apply then keeps the write free of allocations.
	if r := pageRange(Range{start, x}); f.dirty.Covered(r) != r.Len() {
		f.dirty.Apply(r, markDirty)
	}
	return x - start
}

// markDirty is an Apply function that marks gaps dirty and keeps existing
// marks (and their keep flags) as they are.
func markDirty(_ Range, d dirtyState, _ bool) (dirtyState, bool) { return d, true }

// WriteDirect writes p at off straight to the remote (W3, W4: O_DIRECT):
// it first writes back the dirty pages it overlaps and drops every page it
// touches, so the cache cannot hold stale data afterwards. The caller
// invalidates other copies (the kernel's page cache).
func (f *File) WriteDirect(p []byte, off int64) (int, error) {
	r, err := checkRange(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.dropRangeLocked(r); err != nil {
		return 0, err
	}
	n, err := f.remote.WriteAt(p, off)
	n = min(max(n, 0), len(p))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if n > 0 {
		f.mu.Lock()
		f.remoteSize = max(f.remoteSize, r.Start+uint64(n))
		f.size = max(f.size, r.Start+uint64(n))
		f.mu.Unlock()
	}
	if err != nil {
		return n, fmt.Errorf("cache: write remote at %d: %w", r.Start+uint64(n), err)
	}
	return n, nil
}

// ReadDirect reads p at off from the remote, bypassing the cache, after
// writing back the dirty pages it overlaps (R4: O_DIRECT). It is bounded by
// the size like Read (R2, R7).
func (f *File) ReadDirect(p []byte, off int64) (int, error) {
	r, err := checkRange(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	r.End = min(r.End, f.size)
	if r.Empty() {
		return 0, io.EOF
	}
	if err := f.writeBackLocked(r); err != nil {
		return 0, err
	}
	n, err := f.readRemoteLocked(p[:r.Len()], r.Start)
	if err == nil {
		err = eofIf(n < len(p) && uint64(n) == r.Len())
	}
	return n, err
}

// Truncate sets the size of the remote and then of the cache: pages past
// the new size are dropped, mapped or not, with their dirty marks, and the
// tail of the last page is zeroed. If the remote refuses, nothing changes.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: truncate to %d", ErrInvalid, size)
	}
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	if err := f.remote.Truncate(size); err != nil {
		return fmt.Errorf("cache: truncate remote to %d: %w", size, err)
	}
	sz := uint64(size)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remoteSize = sz
	f.dropLocked(Range{pageUp(sz), all.End})
	if seg, ok := f.pages.Find(sz); ok {
		clear(seg.Value.data[sz-seg.Start:])
	}
	f.size = sz
	return nil
}
