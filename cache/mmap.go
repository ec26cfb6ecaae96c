package cache

import (
	"fmt"
	"io"
)

// AddMapping records a memory mapping of [off, off+length), rounded out to
// pages. Pages in mapped ranges, cached now or later, are never evicted
// (M6).
func (f *File) AddMapping(off, length int64, writable bool) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	r = pageRange(r)
	w := b2i(writable)
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mapped.Apply(r, func(_ Range, c mapCount, _ bool) (mapCount, bool) {
		return mapCount{c.all + 1, c.writable + w}, true
	})
	f.budget.mu.Lock()
	defer f.budget.mu.Unlock()
	for seg := range f.pages.Segments(r) {
		f.budget.unlinkLocked(seg.Value)
	}
	return nil
}

// RemoveMapping undoes AddMapping with the same arguments. Pages no longer
// mapped become eviction candidates again; dirty pages no longer mapped
// writably may be cleaned by writeback again. Removing a mapping that does
// not exist returns ErrNotMapped and changes nothing.
func (f *File) RemoveMapping(off, length int64, writable bool) error {
	r, err := checkRange(off, length)
	if err != nil {
		return err
	}
	r = pageRange(r)
	w := b2i(writable)
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.mappedLocked(r, writable) {
		return fmt.Errorf("%w: remove mapping %v", ErrNotMapped, r)
	}
	f.mapped.Apply(r, func(_ Range, c mapCount, _ bool) (mapCount, bool) {
		c = mapCount{c.all - 1, c.writable - w}
		return c, c.all > 0
	})
	// A writable mapping could have dirtied these pages at any time, so
	// they were kept dirty; without one, writeback may clean them (gVisor's
	// AllowClean).
	var unkeep []Range
	x := r.Start
	for seg := range f.mapped.Segments(r) {
		if x < seg.Start {
			unkeep = append(unkeep, Range{x, seg.Start})
		}
		if seg.Value.writable == 0 {
			unkeep = append(unkeep, seg.Range)
		}
		x = seg.End
	}
	if x < r.End {
		unkeep = append(unkeep, Range{x, r.End})
	}
	for _, u := range unkeep {
		f.dirty.Apply(u, func(_ Range, d dirtyState, ok bool) (dirtyState, bool) {
			return dirtyState{}, ok
		})
	}
	f.linkRangeLocked(r)
	return nil
}

// mappedLocked reports whether every page of r is mapped, writably if
// writable is set.
//
// Preconditions: f.mu is locked.
func (f *File) mappedLocked(r Range, writable bool) bool {
	if f.mapped.Covered(r) != r.Len() {
		return false
	}
	for seg := range f.mapped.Segments(r) {
		if writable && seg.Value.writable < 1 {
			return false
		}
	}
	return true
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Fault makes the pages of [off, off+length) cached for a mapping to use,
// filling them like a read with readahead (M5). With write set the pages
// must lie in a writable mapping (else ErrNotMapped); they become dirty and
// stay dirty while so mapped. Pages at or past the end of the file give
// ErrBeyondEOF (SIGBUS), after the pages before them are faulted. Pages
// that do not fit in the budget give ErrBudgetExhausted.
func (f *File) Fault(off, length int64, write bool) error {
	r, err := checkRange(off, length)
	if err != nil || r.Empty() {
		return err
	}
	r = pageRange(r)
	f.budget.makeRoom(int64(r.Len() + f.minRA))
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	eof := pageUp(f.size)
	if r.Start >= eof {
		return fmt.Errorf("%w: fault at %d, size %d", ErrBeyondEOF, r.Start, f.size)
	}
	beyond := r.End > eof
	r.End = min(r.End, eof)
	if write {
		f.mu.RLock()
		ok := f.mappedLocked(r, true)
		f.mu.RUnlock()
		if !ok {
			return fmt.Errorf("%w: write fault on %v", ErrNotMapped, r)
		}
	}
	for x := r.Start; x < r.End; {
		f.mu.RLock()
		var req, opt Range
		for g := range f.pages.Gaps(Range{x, r.End}) {
			req = g
			opt, _ = f.pages.FindGap(g.Start)
			break
		}
		f.mu.RUnlock()
		if req.Empty() {
			break
		}
		fill, ok := f.reserveFill(req, opt.Intersect(Range{0, eof}), f.minRA)
		if !ok {
			return fmt.Errorf("%w: fault on %v", ErrBudgetExhausted, req)
		}
		got, _, err := f.fillLocked(fill, nil, 0)
		f.counters.countFill(fill, req, got)
		if err != nil {
			return err
		}
		if fill.Start+got < req.End {
			return fmt.Errorf("cache: fault on %v: %w", req, io.ErrUnexpectedEOF)
		}
		x = req.End
	}
	if write {
		f.mu.Lock()
		f.dirty.Set(r, dirtyState{keep: true})
		f.mu.Unlock()
	}
	if beyond {
		return fmt.Errorf("%w: fault past size %d", ErrBeyondEOF, f.size)
	}
	return nil
}
