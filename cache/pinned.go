package cache

import (
	"errors"
	"io"
)

// Pinned is a read served from the cache's own pages without copying them:
// the data path hands Slices to the kernel in one writev(2). While a
// Pinned is held, the File's pages cannot change or be freed (writes,
// truncation and eviction of the File wait), so Release must be called
// exactly once, as soon as the bytes have been handed over.
type Pinned struct {
	f      *File
	slices [][]byte
	n      int
}

// Slices returns the pinned bytes in order.
func (p *Pinned) Slices() [][]byte { return p.slices }

// Len returns the number of pinned bytes.
func (p *Pinned) Len() int { return p.n }

// Release unpins the pages.
func (p *Pinned) Release() {
	f := p.f
	p.f = nil
	clear(p.slices)
	p.slices = p.slices[:0]
	f.mu.RUnlock()
}

// ReadPinned is Read for the common warm case: when every byte of [off,
// off+n), bounded by the size, is cached, it pins those pages and returns
// them instead of copying them (R5). It returns false, having changed
// nothing, when the range starts at or past the size or is not entirely
// cached; the caller then uses FillPinned or Read, which fill the gaps.
//
// p is reused if not nil, so a caller can keep one per request buffer.
func (f *File) ReadPinned(p *Pinned, off int64, n int, ra *Readahead) (*Pinned, bool) {
	if off < 0 || n <= 0 {
		return nil, false
	}
	p, ok := f.pin(p, uint64(off), uint64(n))
	if ok {
		// Record the read only now: on a miss, FillPinned or Read
		// records it.
		window := ra.advance(uint64(off), uint64(n), f.minRA, f.maxRA)
		f.readAheadRLocked(uint64(off)+uint64(p.n), window) // p holds f.mu for reading
		f.counters.hits.Add(1)
	}
	return p, ok
}

// FillPinned is ReadPinned for a read that missed: it fills the gaps of
// [off, off+n) like Read (R5, R6), then pins the pages, so that a cold
// read too reaches the kernel without a copy in the daemon. It returns
// false, with nothing pinned, when the pages are not all cached after the
// fill: the budget cannot hold them, the remote failed or fell short, or
// they were evicted before they were pinned. The caller then uses Read,
// which copies what it can and reports the error.
func (f *File) FillPinned(p *Pinned, off int64, n int, ra *Readahead) (*Pinned, bool) {
	if _, err := checkRange(off, int64(n)); err != nil || n <= 0 {
		return nil, false
	}
	x := uint64(off)
	window := ra.advance(x, uint64(n), f.minRA, f.maxRA)
	f.counters.misses.Add(1)
	f.budget.makeRoom(int64(window))
	f.ioMu.RLock()
	got, err := f.readFilling(nil, x, x, uint64(n), window) // errors: Read reports them
	f.ioMu.RUnlock()
	if err == nil || errors.Is(err, io.EOF) {
		f.readAhead(x+uint64(got), window)
	}
	return f.pin(p, x, uint64(n))
}

// pin pins the cached bytes of [x, x+n), bounded by the size, into p (or a
// new Pinned), or returns false, with nothing pinned, when the range
// starts at or past the size or is not entirely cached.
func (f *File) pin(p *Pinned, x, n uint64) (*Pinned, bool) {
	f.mu.RLock()
	end := min(x+n, f.size)
	if x >= end {
		f.mu.RUnlock()
		return nil, false
	}
	if p == nil {
		p = &Pinned{}
	}
	slices := p.slices[:0]
	at := x
	for it := f.pages.LowerBound(at); at < end && it.Ok(); it = it.Next() {
		pg := it.Segment().Value
		if pg.off > at {
			break
		}
		pg.touch()
		chunk := pg.data[at-pg.off : min(end-pg.off, PageSize)]
		slices = append(slices, chunk)
		at += uint64(len(chunk))
	}
	if at < end {
		clear(slices)
		p.slices = slices[:0]
		f.mu.RUnlock()
		return nil, false
	}
	p.f, p.slices, p.n = f, slices, int(end-x)
	return p, true
}
