package cache

import "slices"

// A fill in flight: the range a reader is reading from the remote to cache,
// and a channel closed once its pages are cached (or given up).
//
// Reads of different ranges of one file fill at the same time: each holds
// the File's ioMu for reading, which keeps out everything that changes the
// remote or the cached contents (those hold ioMu for writing), and takes
// mu only to claim its range and to insert its pages. Claims keep the
// fills of concurrent readers apart, so no range is read twice and every
// insert lands in a gap. The kernel sends a sequential stream's READs a
// couple at a time; with one fill at a time per file the second waited
// for the first's remote read and copies.
type inflightFill struct {
	rng  Range
	done chan struct{}
}

// clipToClaimsLocked decides where a read at x may fill, inside the
// page-aligned gap opt around it: either opt cut back to the ranges that
// no other fill has claimed, or the done channel of the fill that covers
// x, to wait for before looking again.
//
// Preconditions: f.mu is locked; opt contains pageDown(x).
func (f *File) clipToClaimsLocked(opt Range, x uint64) (Range, <-chan struct{}) {
	for _, c := range f.fills {
		switch {
		case c.rng.Contains(x):
			return Range{}, c.done
		case c.rng.End <= x:
			// Claims are page-aligned, so one that ends at or before x
			// ends at or before x's page.
			opt.Start = max(opt.Start, min(c.rng.End, opt.End))
		case c.rng.Start < opt.End:
			opt.End = max(c.rng.Start, opt.Start)
		}
	}
	return opt, nil
}

// claimLocked records that a fill of r is in flight.
//
// Preconditions: f.mu is locked; r overlaps no other claim.
func (f *File) claimLocked(r Range) *inflightFill {
	c := &inflightFill{rng: r, done: make(chan struct{})}
	f.fills = append(f.fills, c)
	return c
}

// shrinkClaim narrows c to r, inside it, so that other readers may fill
// the rest.
func (f *File) shrinkClaim(c *inflightFill, r Range) {
	f.mu.Lock()
	c.rng = r
	f.mu.Unlock()
}

// releaseClaim ends c and wakes the readers waiting for it.
//
// Preconditions: f.mu is not locked.
func (f *File) releaseClaim(c *inflightFill) {
	f.mu.Lock()
	f.fills = slices.DeleteFunc(f.fills, func(o *inflightFill) bool { return o == c })
	f.mu.Unlock()
	close(c.done)
}
