package cache

import "sync"

// Readahead tracks one reader's stream of reads to size fill windows (R6):
// the window starts at the File's minimum, doubles on each read that starts
// where the previous one ended, up to the maximum, and falls back to the
// minimum on a jump. The zero value is ready to use. It belongs to the
// open-file handle, since a file may have several streams at once.
type Readahead struct {
	mu sync.Mutex
	// next is where a sequential read would start. Guarded by mu.
	next uint64
	// window is the current fill window; 0 before the first read.
	// Guarded by mu.
	window uint64
}

// advance records a read of n bytes at off and returns the window to use.
// A nil ra always gets minWin.
func (ra *Readahead) advance(off, n, minWin, maxWin uint64) uint64 {
	if ra == nil {
		return minWin
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	switch {
	case ra.window == 0:
		ra.window = minWin
	case off == ra.next:
		ra.window = min(2*ra.window, maxWin)
	case off+ra.window < ra.next || off > ra.next+ra.window:
		// Concurrent requests of one stream arrive slightly out of order;
		// only a jump further than the window ends the stream.
		ra.window = minWin
	}
	ra.next = off + n
	return ra.window
}

// maxFillRange returns the range to fill for the page-aligned required
// range req inside the optional range opt (the gap around it, bounded by
// the size): the seed's rule with window in place of its fixed 64 KiB. It
// is never smaller than req.
func maxFillRange(req, opt Range, window uint64) Range {
	if req.Len() >= window {
		return req
	}
	if opt.Len() <= window {
		return opt
	}
	opt.Start = req.Start
	if opt.Len() <= window {
		return opt
	}
	opt.End = opt.Start + window
	return opt
}
