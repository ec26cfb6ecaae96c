package cache

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
)

// Budget is the node-wide byte limit on cached pages, shared by every File
// of every volume (C3). It evicts the least recently used unmapped pages,
// writing dirty ones back first (C1). Recency is an LRU list refined by a
// per-page reference bit (second chance), so that reads of cached pages
// never take the Budget's lock.
//
// Pages are charged before they are filled, and a charge that does not fit
// fails, so Used never exceeds Limit: a fill that cannot be charged falls
// back to reading the remote without caching (R5).
type Budget struct {
	limit  int64       // immutable
	report func(error) // immutable; may be nil

	mu sync.Mutex
	// used is the bytes charged: cached pages plus fills in flight.
	// Guarded by mu.
	used int64
	// peak is the highest used seen. Guarded by mu.
	peak int64
	// lru holds the cached pages that are not mapped, most recent first.
	// Guarded by mu.
	lru pageList
	// evictions and writebackErrors count pages evicted and eviction
	// writebacks that failed. Guarded by mu.
	evictions, writebackErrors uint64
}

// NewBudget returns a Budget of limit bytes. report, if not nil, is called
// (without locks held) with every error of a writeback done to evict pages;
// the data stays dirty and cached (C1), so it may be retried.
func NewBudget(limit int64, report func(error)) *Budget {
	return &Budget{limit: max(limit, 0), report: report}
}

// BudgetStats is a snapshot of a Budget's accounting.
type BudgetStats struct {
	Limit, Used, Peak          int64
	Evictions, WritebackErrors uint64
}

// Stats returns a snapshot of b's accounting.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BudgetStats{b.limit, b.used, b.peak, b.evictions, b.writebackErrors}
}

// charge takes n bytes from the budget if they fit.
func (b *Budget) charge(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

// uncharge returns n bytes to the budget.
func (b *Budget) uncharge(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// reserve charges n bytes, first evicting clean unmapped pages if needed.
// It never writes back, so the caller may hold one File's ioMu.
//
// Preconditions: no File.mu is held.
func (b *Budget) reserve(n int64) bool {
	if n > b.limit {
		return false
	}
	for range 3 {
		if b.charge(n) {
			return true
		}
		b.mu.Lock()
		deficit := b.used + n - b.limit
		b.mu.Unlock()
		if b.evict(deficit, false) == 0 {
			break
		}
	}
	return b.charge(n)
}

// makeRoom evicts until n bytes are free, writing dirty victims back.
//
// Preconditions: no File lock is held.
func (b *Budget) makeRoom(n int64) {
	n = min(n, b.limit)
	b.mu.Lock()
	deficit := b.used + n - b.limit
	b.mu.Unlock()
	if deficit > 0 {
		b.evict(deficit, true)
	}
}

// evict evicts pages, least recently used first, until want bytes are
// freed or no candidate is left. Dirty victims are written back first when
// writeBack is set and skipped otherwise.
func (b *Budget) evict(want int64, writeBack bool) (freed int64) {
	b.mu.Lock()
	// Bound the scan: skipped victims go back to the front and must not be
	// revisited forever.
	scan := min(b.lru.len, 4*int(want/PageSize)+32)
	b.mu.Unlock()
	for ; freed < want && scan > 0; scan-- {
		pg := b.popVictim()
		if pg == nil {
			break
		}
		ok, err := pg.file.evictPage(pg, writeBack)
		if ok {
			freed += PageSize
		}
		if err != nil {
			b.mu.Lock()
			b.writebackErrors++
			b.mu.Unlock()
			if b.report != nil {
				b.report(err)
			}
		}
	}
	if freed > 0 {
		b.mu.Lock()
		b.evictions += uint64(freed / PageSize)
		b.mu.Unlock()
	}
	return freed
}

// popVictim unlinks and returns the least recently used page that was not
// referenced since the evictor last passed it.
func (b *Budget) popVictim() *page {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Each pass clears one bit, so after len passes some page has none.
	for range b.lru.len + 1 {
		pg := b.lru.back
		if pg == nil {
			return nil
		}
		b.lru.remove(pg)
		if !pg.referenced.Swap(false) {
			return pg
		}
		b.lru.pushFront(pg)
	}
	return nil
}

// linkLocked makes pg an eviction candidate, as the most recently used page.
//
// Preconditions: b.mu and pg.file.mu are locked; pg is cached and not
// mapped.
func (b *Budget) linkLocked(pg *page) {
	if !pg.onLRU {
		b.lru.pushFront(pg)
	}
}

// unlinkLocked removes pg from the eviction candidates.
//
// Preconditions: b.mu is locked.
func (b *Budget) unlinkLocked(pg *page) {
	if pg.onLRU {
		b.lru.remove(pg)
	}
}

// pageList is an intrusive doubly linked list of pages.
type pageList struct {
	front, back *page
	len         int
}

func (l *pageList) pushFront(p *page) {
	p.prev, p.next, p.onLRU = nil, l.front, true
	if l.front != nil {
		l.front.prev = p
	} else {
		l.back = p
	}
	l.front = p
	l.len++
}

func (l *pageList) remove(p *page) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		l.front = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		l.back = p.prev
	}
	p.prev, p.next, p.onLRU = nil, nil, false
	l.len--
}

// fallbackBudgetBytes is used when the machine's memory cannot be read.
const fallbackBudgetBytes = 256 << 20

// DefaultBudgetBytes returns 10% of the machine's physical memory, read
// from /proc/meminfo, or 256 MiB when that fails.
func DefaultBudgetBytes() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return fallbackBudgetBytes
	}
	if total := memTotal(data); total > 0 {
		return total / 10
	}
	return fallbackBudgetBytes
}

// memTotal parses the MemTotal line ("MemTotal:  16384 kB") of
// /proc/meminfo and returns bytes, or 0.
func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 2 || string(fields[0]) != "MemTotal:" {
			continue
		}
		kb, err := strconv.ParseInt(string(fields[1]), 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}
