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
// windows after end, when window shows a sequential stream.
//
// Preconditions: f.mu is locked for reading.
func (f *File) readAheadRLocked(end, window uint64) {
	if !f.async || window <= f.minRA {
		return
	}
	limit := min(end+2*window, pageUp(f.size))
	for gap := range f.pages.Gaps(Range{pageUp(end), limit}) {
		f.startAsyncFill(gap.Start, window)
		return
	}
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

// startAsyncFill starts filling window bytes from the page-aligned at in
// the background, unless a background fill is already running.
func (f *File) startAsyncFill(at, window uint64) {
	a := &f.ahead
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done != nil || a.off {
		return
	}
	done := make(chan struct{})
	a.done = done
	go func() {
		f.fillAhead(at, window)
		a.mu.Lock()
		a.done = nil
		a.mu.Unlock()
		close(done)
	}()
}

// fillAhead fills the gap at at, up to window bytes, if it is still a gap
// and the budget takes it without writing anything back. A failed read is
// dropped: the read that needs the range reads it again and gets the
// error itself.
func (f *File) fillAhead(at, window uint64) {
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	f.mu.RLock()
	gap, ok := f.pages.FindGap(at)
	fill := Range{at, min(gap.End, at+window, pageUp(f.size))}
	f.mu.RUnlock()
	if !ok || fill.Empty() || !f.budget.reserve(int64(fill.Len())) {
		return
	}
	buf, got, err := f.fillLocked(fill)
	f.counters.countFill(fill, Range{}, got)
	putBuf(buf)
	if err == nil && got == fill.Len() {
		f.prefetch(fill.End, window)
	}
}

// waitAhead waits for the running background fill, if any; stop also
// keeps new ones from starting.
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
