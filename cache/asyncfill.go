package cache

import "sync"

// asyncFill runs the background fills of a File's sequential streams: a
// read that ends less than two windows before the next gap starts a fill
// of one window there, so the remote read and the copy into pages of the
// next part of the stream overlap with the kernel's copy of this part
// (R6: the fill is readahead, made before the read that needs it). One
// goroutine per File fills, one window at a time, until the two windows
// after the latest read of the stream are cached. It fills like a read,
// with ioMu held for reading and its range claimed, so a read of another
// range goes on meanwhile, and a read of the range it is filling waits
// for that fill and then finds the pages cached.
//
// Without it a sequential read of a cold file is a chain: the kernel asks
// for 1 MiB, the daemon reads the remote, copies, replies, and only then
// does the next request find work. With it the daemon uses a second core.
type asyncFill struct {
	mu sync.Mutex
	// done is closed when the running filler ends; nil when none runs.
	// Guarded by mu.
	done chan struct{}
	// end and window are the latest read's end and window, which the
	// filler works from. Guarded by mu.
	end, window uint64
	// off stops the filler and keeps new ones from starting; Close sets
	// it. Guarded by mu.
	off bool
}

// readAheadRLocked has the two windows after end filled in the background
// when window shows a sequential stream and they hold a gap.
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

// readAhead is readAheadRLocked for a caller that holds no File lock.
func (f *File) readAhead(end, window uint64) {
	if !f.async || window <= f.minRA {
		return
	}
	f.mu.RLock()
	f.readAheadRLocked(end, window)
	f.mu.RUnlock()
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

// startAsyncFill points the filler at the latest read, starting it if it
// is not running.
func (f *File) startAsyncFill(end, window uint64) {
	a := &f.ahead
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.off {
		return
	}
	a.end, a.window = end, window
	if a.done != nil {
		return
	}
	done := make(chan struct{})
	a.done = done
	go f.fillAhead(done)
}

// fillAhead is the filler: it fills one window at a time after the latest
// read, and ends when the two windows after it hold no gap, the budget
// takes no more, a remote read fails or Close stops it. A failed read is
// dropped: the read that needs the range reads it again and gets the
// error itself.
func (f *File) fillAhead(done chan struct{}) {
	defer close(done)
	a := &f.ahead
	for {
		a.mu.Lock()
		end, window, off := a.end, a.window, a.off
		a.mu.Unlock()
		more := !off && f.fillAheadOnce(end, window)
		// Stop unless there is more to fill or a read moved the stream on
		// meanwhile.
		a.mu.Lock()
		stop := !more && (a.off || a.end == end && a.window == window)
		if stop {
			a.done = nil
		}
		a.mu.Unlock()
		if stop {
			return
		}
	}
}

// fillAheadOnce fills up to window bytes of the first gap in the two
// windows after end, unless a read is filling its start already or the
// budget cannot take them without writing anything back, and tells
// whether it filled them all.
//
// Preconditions: no File lock is held.
func (f *File) fillAheadOnce(end, window uint64) bool {
	f.ioMu.RLock()
	defer f.ioMu.RUnlock()
	f.mu.Lock()
	gap, ok := f.gapAheadRLocked(end, window)
	var claim *inflightFill
	if ok {
		var wait <-chan struct{}
		gap, wait = f.clipToClaimsLocked(gap, gap.Start)
		if ok = wait == nil; ok {
			claim = f.claimLocked(Range{gap.Start, min(gap.End, gap.Start+window)})
		}
	}
	f.mu.Unlock()
	if !ok {
		return false
	}
	defer f.releaseClaim(claim)
	fill := claim.rng
	if !f.budget.reserve(int64(fill.Len())) {
		return false
	}
	got, _, err := f.fillLocked(fill, nil, fill.Start)
	f.counters.countFill(fill, Range{}, got)
	if err != nil || got < fill.Len() {
		return false
	}
	f.prefetch(fill.End, window)
	return true
}

// waitAhead waits for the running filler, if any, to be done with the
// remote; stop also ends it after its current fill and keeps new ones
// from starting.
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
