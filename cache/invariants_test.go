package cache

import (
	"bytes"
	"fmt"
	"testing"
)

// view returns what the file holds for a reader: cached pages over the
// remote's bytes, which are zero past the remote's end. It has no side
// effects on the cache.
func (f *File) view(remote []byte) []byte {
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]byte, f.size)
	copy(out, remote)
	for seg := range f.pages.Segments(Range{0, f.size}) {
		copy(out[seg.Start:seg.End], seg.Value.data[:seg.Len()])
	}
	return out
}

// checkInvariants reports every broken invariant of f, given the remote's
// current bytes.
func (f *File) checkInvariants(remote []byte) error {
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.remoteSize != uint64(len(remote)) {
		return fmt.Errorf("remoteSize %d, remote has %d bytes", f.remoteSize, len(remote))
	}
	if len(f.fills) != 0 {
		return fmt.Errorf("%d fills still claimed", len(f.fills))
	}
	if f.remoteSize > f.size {
		return fmt.Errorf("remoteSize %d > size %d", f.remoteSize, f.size)
	}
	for seg := range f.dirty.Segments(all) {
		if f.pages.Covered(seg.Range) != seg.Len() {
			return fmt.Errorf("dirty %v not all cached", seg.Range)
		}
		if seg.Value.keep && !f.mappedLocked(seg.Range, true) {
			return fmt.Errorf("dirty %v kept but not writably mapped", seg.Range)
		}
	}
	for seg := range f.pages.Segments(all) {
		pg := seg.Value
		if seg.Range != pg.rng() || pg.file != f || pg.data == nil {
			return fmt.Errorf("page %v malformed", seg.Range)
		}
		if seg.Start >= pageUp(f.size) {
			return fmt.Errorf("page %v past size %d", seg.Range, f.size)
		}
		if f.size < seg.End {
			tail := pg.data[max(f.size, seg.Start)-seg.Start:]
			if !bytes.Equal(tail, make([]byte, len(tail))) {
				return fmt.Errorf("page %v has non-zero bytes past size %d", seg.Range, f.size)
			}
		}
		if f.dirty.containing(seg.Start) != nil {
			continue
		}
		// A clean page holds exactly what the remote holds.
		want := make([]byte, PageSize)
		if seg.Start < uint64(len(remote)) {
			copy(want, remote[seg.Start:])
		}
		n := min(f.size, seg.End) - seg.Start
		if !bytes.Equal(pg.data[:n], want[:n]) {
			return fmt.Errorf("clean page %v differs from the remote", seg.Range)
		}
	}
	return nil
}

// checkBudget reports a broken budget invariant, given every File charged
// to b.
func checkBudget(b *Budget, files ...*File) error {
	var pages int64
	unmapped := map[*page]bool{}
	for _, f := range files {
		f.mu.RLock()
		for seg := range f.pages.Segments(all) {
			pages++
			if f.mapped.containing(seg.Start) == nil {
				unmapped[seg.Value] = true
			}
		}
		f.mu.RUnlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used != pages*PageSize {
		return fmt.Errorf("budget used %d, pages hold %d", b.used, pages*PageSize)
	}
	if b.used > b.limit || b.peak > b.limit {
		return fmt.Errorf("budget used %d (peak %d) over limit %d", b.used, b.peak, b.limit)
	}
	n := 0
	for pg := b.lru.front; pg != nil; pg = pg.next {
		if !unmapped[pg] {
			return fmt.Errorf("LRU holds page %#x that is not cached or is mapped", pg.off)
		}
		n++
	}
	if n != len(unmapped) || n != b.lru.len {
		return fmt.Errorf("LRU has %d pages (len %d), want %d", n, b.lru.len, len(unmapped))
	}
	return nil
}

// mustCheck fails t on a broken invariant.
func mustCheck(t testing.TB, b *Budget, f *File, r *fakeRemote) {
	t.Helper()
	if err := f.checkInvariants(r.snapshot()); err != nil {
		t.Fatal(err)
	}
	if err := checkBudget(b, f); err != nil {
		t.Fatal(err)
	}
}
