package cache

import "sync"

// asyncFill runs the background fills of a File's sequential streams: a
// read that ends less than two windows before the next gap starts a fill
// of one window there, so the remote read and the copy into pages of the
// next part of the stream overlap with the kernel's copy of this part
// (R6: the fill is readahead, made before the read that needs it). One
// runs at a time per File; a read of a range it is filling waits for it
// on the File's ioMu and then finds the pages cached.
//
// Without it a sequential read of a cold file is a chain: the kernel asks
// for 1 MiB, the daemon reads the remote, copies, replies, and only then
// does the next request find work. With it the daemon uses a second core.
type asyncFill struct {
	mu sync.Mutex
	// done is closed when the running fill ends; nil when none runs.
	// Guarded by mu.
	done chan struct{}
	// off stops new fills for good; Close sets it. Guarded by mu.
	off bool
}

// readAheadRLocked starts a background fill of the first gap in the two
// windows after end, when window shows a sequential stream and there is
// such a gap.
//
// Preconditions: f.mu is locked for reading.
func (f *File) readAheadRLocked(end, window uint64) {
	if !f.async || window <= f.minRA {
		return
	}
	if _, ok := f.gapAheadRLocked(end, window); ok {
		f.startAsyncFill(end, window)
	}
}

// gapAheadRLocked returns the first gap in the two windows after end.
//
// Preconditions: f.mu is locked for reading.
func (f *File) gapAheadRLocked(end, window uint64) (Range, bool) {
	for gap := range f.pages.Gaps(Range{pageUp(end), min(end+2*window, pageUp(f.size))}) {
		return gap, true
	}
	return Range{}, false
}

// readAhead is readAheadRLocked for a caller that holds no File lock.
func (f *File) readAhead(end, window uint64) {
	if !f.async || window <= f.minRA {
		return
	}
	f.mu.RLock()
	f.readAheadRLocked(end, window)
	f.mu.RUnlock()
}

// startAsyncFill starts filling window bytes of the first gap after end
// in the background, unless a background fill is already running. The gap
// is found again when the fill runs: a read may have filled this one
// meanwhile, and the fill then takes the next.
func (f *File) startAsyncFill(end, window uint64) {
	a := &f.ahead
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done != nil || a.off {
		return
	}
	done := make(chan struct{})
	a.done = done
	go func() {
		defer close(done)
		f.ioMu.Lock()
		defer f.ioMu.Unlock()
		f.fillAheadLocked(end, window)
		// Ready for the next fill before ioMu goes: the read waiting for
		// this one takes ioMu next and asks for the window after.
		a.mu.Lock()
		a.done = nil
		a.mu.Unlock()
	}()
}

// fillAheadLocked fills up to window bytes of the first gap in the two
// windows after end, if the budget takes them without writing anything
// back. A failed read is dropped: the read that needs the range reads it
// again and gets the error itself.
//
// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) fillAheadLocked(end, window uint64) {
	f.mu.RLock()
	gap, ok := f.gapAheadRLocked(end, window)
	f.mu.RUnlock()
	if !ok {
		return
	}
	fill := Range{gap.Start, min(gap.End, gap.Start+window)}
	if !f.budget.reserve(int64(fill.Len())) {
		return
	}
	buf, got, err := f.fillLocked(fill)
	f.counters.countFill(fill, Range{}, got)
	putBuf(buf)
	if err == nil && got == fill.Len() {
		f.prefetch(fill.End, window)
	}
}

// waitAhead waits for the running background fill, if any, to be done
// with the remote; stop also keeps new ones from starting.
func (f *File) waitAhead(stop bool) {
	a := &f.ahead
	a.mu.Lock()
	done := a.done
	a.off = a.off || stop
	a.mu.Unlock()
	if done != nil {
		<-done
	}
}
