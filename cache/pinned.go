package cache

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
// cached; the caller then uses Read, which fills the gaps.
//
// p is reused if not nil, so a caller can keep one per request buffer.
func (f *File) ReadPinned(p *Pinned, off int64, n int, ra *Readahead) (*Pinned, bool) {
	if off < 0 || n <= 0 {
		return nil, false
	}
	x := uint64(off)
	f.mu.RLock()
	end := min(x+uint64(n), f.size)
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
	// Record the read only now: on a miss, Read records it.
	ra.advance(x, uint64(n), f.minRA, f.maxRA)
	f.counters.hits.Add(1)
	p.f, p.slices, p.n = f, slices, int(end-x)
	return p, true
}
