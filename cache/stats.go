package cache

import "sync/atomic"

// Counters accumulates the activity of the Files that share it (the data
// path gives all Files of one volume the same Counters). Counting is one
// atomic add where it happens; Stats reads a snapshot at any time, so a
// metrics scrape costs the I/O path nothing.
type Counters struct {
	hits, misses       atomic.Uint64
	fills, filledBytes atomic.Uint64
	readaheadBytes     atomic.Uint64
	writebackBytes     atomic.Uint64
	writebackErrors    atomic.Uint64
	evictions          atomic.Uint64
}

// Stats is a snapshot of Counters. Every field only grows.
type Stats struct {
	// Hits counts Reads served entirely from cached pages; Misses counts
	// Reads that had to ask the remote. ReadDirect counts as neither.
	Hits, Misses uint64
	// Fills counts remote reads into the cache (for Read and Fault), and
	// FilledBytes the bytes they read.
	Fills, FilledBytes uint64
	// ReadaheadBytes is the part of FilledBytes that no caller asked for
	// yet: the fill window beyond the pages a read or fault needed (R6).
	ReadaheadBytes uint64
	// WritebackBytes counts dirty bytes written to the remote, and
	// WritebackErrors the writebacks that failed (the data stays dirty).
	WritebackBytes, WritebackErrors uint64
	// Evictions counts pages dropped to make room in the Budget (C1).
	Evictions uint64
}

// Stats returns a snapshot of c. The fields are read one by one, so a
// snapshot taken during I/O may be a few operations apart between fields.
func (c *Counters) Stats() Stats {
	return Stats{
		Hits:            c.hits.Load(),
		Misses:          c.misses.Load(),
		Fills:           c.fills.Load(),
		FilledBytes:     c.filledBytes.Load(),
		ReadaheadBytes:  c.readaheadBytes.Load(),
		WritebackBytes:  c.writebackBytes.Load(),
		WritebackErrors: c.writebackErrors.Load(),
		Evictions:       c.evictions.Load(),
	}
}

// countFill records a fill of the range fill, of which the first got bytes
// were read, made for the required range req (req lies within fill).
func (c *Counters) countFill(fill, req Range, got uint64) {
	read := Range{fill.Start, fill.Start + min(got, fill.Len())}
	c.fills.Add(1)
	c.filledBytes.Add(read.Len())
	c.readaheadBytes.Add(read.Len() - read.Intersect(req).Len())
}
