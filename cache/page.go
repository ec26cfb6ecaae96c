package cache

import (
	"math"
	"sync"
	"sync/atomic"
)

// PageSize is the unit of caching, dirty tracking and budget accounting.
const PageSize = 4096

// page is one cached page of a File.
type page struct {
	data *[PageSize]byte // guarded by the owning File's mu; see File.pages
	file *File           // immutable
	off  uint64          // immutable; a multiple of PageSize

	// prev, next and onLRU link the page into Budget.lru. Guarded by
	// Budget.mu.
	prev, next *page
	onLRU      bool

	// referenced is set by reads without any lock and cleared by the
	// evictor, which gives referenced pages a second chance.
	referenced atomic.Bool
}

func (p *page) rng() Range { return Range{p.off, p.off + PageSize} }

// touch marks p recently used. The load first keeps the cache line shared
// when the bit is already set.
func (p *page) touch() {
	if !p.referenced.Load() {
		p.referenced.Store(true)
	}
}

func newPage(f *File, off uint64) *page {
	return &page{data: pages.get(), file: f, off: off}
}

// free returns p's memory to the pool.
//
// Preconditions: p has been removed from its File and Budget.
func (p *page) free() {
	pages.put(p.data)
	p.data = nil
}

// bufPool holds staging buffers for fills and writeback; they live only for
// one remote call and are not cache memory.
var bufPool sync.Pool

func getBuf(n uint64) []byte {
	if bp, ok := bufPool.Get().(*[]byte); ok && uint64(cap(*bp)) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n, max(n, 256<<10))
}

func putBuf(b []byte) { bufPool.Put(&b) }

func pageDown(x uint64) uint64 { return x &^ (PageSize - 1) }

func pageUp(x uint64) uint64 {
	if x > math.MaxUint64-(PageSize-1) {
		return pageDown(math.MaxUint64)
	}
	return (x + PageSize - 1) &^ (PageSize - 1)
}

// pageRange rounds r out to whole pages; an empty r stays empty.
func pageRange(r Range) Range {
	if r.Empty() {
		return Range{}
	}
	return Range{pageDown(r.Start), pageUp(r.End)}
}
