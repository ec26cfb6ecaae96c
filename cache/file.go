package cache

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// Options configures a File.
type Options struct {
	// MinReadahead is the fill window of a read that is not part of a
	// sequential stream (R6). Zero means DefaultMinReadahead.
	MinReadahead int64
	// MaxReadahead caps the window that a sequential stream grows to. Zero
	// means DefaultMaxReadahead.
	MaxReadahead int64
	// Counters, if not nil, accumulates this File's activity, usually
	// together with other Files'.
	Counters *Counters
	// BufferGapWrites makes writes to uncached ranges stay in the cache,
	// dirty, wherever that needs no read of the remote (see Write). It
	// is for exclusive volumes, whose writes promise only to reach the
	// cache: a remote that is away or refuses then costs nothing until
	// writeback, which keeps the data until it succeeds (C1).
	BufferGapWrites bool
}

const (
	// DefaultMinReadahead is the seed's fixed readahead window.
	DefaultMinReadahead = 64 << 10
	// DefaultMaxReadahead is where growing the window stopped paying off
	// in BenchmarkColdSequentialRead against a remote with per-call latency.
	DefaultMaxReadahead = 1 << 20
	// writebackChunk bounds one remote write of coalesced dirty pages.
	writebackChunk = 1 << 20
)

// dirtyState is the value of File.dirty. keep marks pages that a writable
// mapping may dirty at any time, so writeback must not mark them clean.
type dirtyState struct{ keep bool }

// mapCount is the value of File.mapped: how many mappings, and how many
// writable ones, cover a range.
type mapCount struct{ all, writable int32 }

// File is the page cache of one remote file. Its methods may be called
// concurrently.
type File struct {
	remote       Remote    // immutable
	budget       *Budget   // immutable
	counters     *Counters // immutable; never nil
	minRA, maxRA uint64    // immutable; multiples of PageSize
	bufferGaps   bool      // immutable; Options.BufferGapWrites

	// ioMu serializes the operations that do remote I/O or change cached
	// contents, so that a fill, a write to a gap and a writeback never
	// interleave on one file. Reads served entirely from the cache do not
	// take it.
	ioMu sync.Mutex

	// mu guards the cache state below. It is never held across remote I/O.
	mu sync.RWMutex
	// size is the file size readers see; it runs ahead of remoteSize while
	// extending writes sit in dirty pages (W6). size and remoteSize are
	// written with ioMu and mu held, and may be read with either.
	size, remoteSize uint64
	// pages maps each cached page's range to the page. Page contents are
	// written with ioMu and mu held, and read with mu held. A clean,
	// unmapped page may be evicted with only mu held.
	pages Set[*page]
	// dirty holds the pages whose contents the remote lacks; it is a
	// subset of pages. Changed with ioMu and mu held.
	dirty Set[dirtyState]
	// mapped holds the ranges of memory mappings (M5, M6); pages in them
	// are not on the budget's LRU. Changed with ioMu and mu held.
	mapped Set[mapCount]
}

// NewFile returns an empty cache of remote, charging its pages to budget.
// The file size starts at remote.Size().
func NewFile(remote Remote, budget *Budget, opts Options) (*File, error) {
	size, err := remote.Size()
	if err != nil {
		return nil, fmt.Errorf("cache: size of remote: %w", err)
	}
	return NewFileOfSize(remote, budget, size, opts)
}

// NewFileOfSize is NewFile for a caller that knows the remote's size (it
// just created the file, or stat'ed it), which spares a remote call.
func NewFileOfSize(remote Remote, budget *Budget, size int64, opts Options) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: remote size %d", ErrInvalid, size)
	}
	minRA := uint64(cmpOr(opts.MinReadahead, DefaultMinReadahead))
	maxRA := uint64(cmpOr(opts.MaxReadahead, DefaultMaxReadahead))
	counters := opts.Counters
	if counters == nil {
		counters = new(Counters)
	}
	f := &File{
		remote:   remote,
		budget:   budget,
		counters: counters,
		minRA:    max(pageUp(minRA), PageSize),
		maxRA:    max(pageUp(maxRA), pageUp(minRA), PageSize),

		bufferGaps: opts.BufferGapWrites,
	}
	f.size, f.remoteSize = uint64(size), uint64(size)
	return f, nil
}

func cmpOr(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// Size returns the file size, including writes not yet written back.
func (f *File) Size() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(f.size)
}

// RemoteSize returns the remote file's size as the cache knows it.
func (f *File) RemoteSize() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(f.remoteSize)
}

// CachedBytes returns the bytes of cached pages.
func (f *File) CachedBytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(f.pages.Covered(Range{0, math.MaxUint64}))
}

// DirtyBytes returns the bytes of dirty pages.
func (f *File) DirtyBytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(f.dirty.Covered(Range{0, math.MaxUint64}))
}

// checkRange validates an offset and length from a caller.
func checkRange(off, length int64) (Range, error) {
	if off < 0 || length < 0 || off > math.MaxInt64-length {
		return Range{}, fmt.Errorf("%w: offset %d, length %d", ErrInvalid, off, length)
	}
	return Range{uint64(off), uint64(off + length)}, nil
}

func eofIf(short bool) error {
	if short {
		return io.EOF
	}
	return nil
}

// Read reads len(p) bytes at off through the cache (R5) and returns how
// many it read. At or past the file size it returns 0 and io.EOF without
// asking the remote (R2); a read cut short by the size returns io.EOF with
// the bytes before it (R7). A partial remote read stops the read: the
// bytes before it are returned with a nil error, or with the remote's
// error. ra tracks the caller's sequential stream (R6); nil means the
// minimum window.
func (f *File) Read(p []byte, off int64, ra *Readahead) (int, error) {
	if _, err := checkRange(off, int64(len(p))); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	x := uint64(off)
	window := ra.advance(x, uint64(len(p)), f.minRA, f.maxRA)
	f.mu.RLock()
	end := min(x+uint64(len(p)), f.size)
	var n uint64
	if x < end {
		n = f.copyCachedRLocked(p, x, end)
	}
	f.mu.RUnlock()
	if x+n >= end {
		f.counters.hits.Add(1)
		return int(n), eofIf(n < uint64(len(p)))
	}
	f.counters.misses.Add(1)
	f.budget.makeRoom(int64(window))
	f.ioMu.Lock()
	defer f.ioMu.Unlock()
	return f.readLocked(p, x, x+n, window)
}

// copyCachedRLocked copies into dst the cached bytes from x up to end or
// the first gap, and returns how many.
//
// Preconditions: f.mu is locked for reading; x < end.
func (f *File) copyCachedRLocked(dst []byte, x, end uint64) uint64 {
	start := x
	for it := f.pages.LowerBound(x); x < end && it.Ok(); it = it.Next() {
		pg := it.Segment().Value
		if pg.off > x {
			break
		}
		pg.touch()
		x += uint64(copy(dst[x-start:], pg.data[x-pg.off:min(end-pg.off, PageSize)]))
	}
	return x - start
}

// readLocked finishes a Read of p at off whose bytes before x were copied.
//
// Preconditions: f.ioMu is locked; f.mu is not.
func (f *File) readLocked(p []byte, off, x uint64, window uint64) (int, error) {
	end := min(off+uint64(len(p)), f.size)
	for x < end {
		f.mu.RLock()
		x += f.copyCachedRLocked(p[x-off:], x, end)
		gap, _ := f.pages.FindGap(x)
		f.mu.RUnlock()
		if x >= end {
			break
		}
		opt := gap.Intersect(Range{0, pageUp(f.size)})
		req := Range{pageDown(x), min(pageUp(end), opt.End)}
		want := min(end, req.End)
		got, err := f.fillCopyLocked(p[x-off:want-off], x, req, opt, window)
		x += got
		if err != nil || x < want {
			return int(x - off), err
		}
	}
	return int(x - off), eofIf(x-off < uint64(len(p)))
}

// fillCopyLocked fills the cache around req and copies the bytes at x into
// dst. When the budget cannot take even req, it reads dst directly (R5).
//
// Preconditions: f.ioMu is locked; f.mu is not; req is a gap within opt.
func (f *File) fillCopyLocked(dst []byte, x uint64, req, opt Range, window uint64) (uint64, error) {
	fill, ok := f.reserveFill(req, opt, window)
	if !ok {
		n, err := f.readRemoteLocked(dst, x)
		return uint64(n), err
	}
	buf, got, err := f.fillLocked(fill)
	f.counters.countFill(fill, req, got)
	if err == nil && got == fill.Len() && window > f.minRA {
		f.prefetch(fill.End, window)
	}
	var n uint64
	if fill.Start+got > x {
		n = uint64(copy(dst, buf[x-fill.Start:got]))
	}
	putBuf(buf)
	return n, err
}

// prefetch asks a Prefetcher remote for the window after a sequential
// stream's fill, up to the remote size.
//
// Preconditions: f.ioMu is locked.
func (f *File) prefetch(off, window uint64) {
	p, ok := f.remote.(Prefetcher)
	if !ok || off >= f.remoteSize {
		return
	}
	p.Prefetch(int64(off), int64(min(window, f.remoteSize-off)))
}

// reserveFill widens req toward opt by the readahead window (R6) and
// charges the result to the budget, falling back to req alone.
func (f *File) reserveFill(req, opt Range, window uint64) (Range, bool) {
	fill := maxFillRange(req, opt, window)
	if f.budget.reserve(int64(fill.Len())) {
		return fill, true
	}
	if fill != req && f.budget.reserve(int64(req.Len())) {
		return req, true
	}
	return Range{}, false
}

// fillLocked reads the already charged range fill from the remote, caches
// the whole pages read and returns the staging buffer (for putBuf) with
// the count of valid bytes in it.
//
// Preconditions: f.ioMu is locked; f.mu is not; fill is a page-aligned gap.
func (f *File) fillLocked(fill Range) ([]byte, uint64, error) {
	buf := getBuf(fill.Len())
	n, err := f.readRemoteLocked(buf, fill.Start)
	got := uint64(n)
	whole := got
	if got < fill.Len() {
		whole = pageDown(got)
	}
	f.mu.Lock()
	// Cached bytes past the size are zero, so that extending the size
	// never reveals stale data.
	if sz := f.size; fill.Start+whole > sz {
		clear(buf[max(sz, fill.Start)-fill.Start : whole])
	}
	segs := make([]Segment[*page], 0, whole/PageSize)
	for o := fill.Start; o < fill.Start+whole; o += PageSize {
		pg := newPage(f, o)
		copy(pg.data[:], buf[o-fill.Start:])
		segs = append(segs, Segment[*page]{pg.rng(), pg})
	}
	f.pages.InsertGap(segs)
	f.linkRangeLocked(Range{fill.Start, fill.Start + whole})
	f.mu.Unlock()
	if rest := fill.Len() - whole; rest > 0 {
		f.budget.uncharge(int64(rest))
	}
	return buf, got, err
}

// readRemoteLocked reads p at off from the remote. Bytes at or past the
// remote size read as zero without a remote call. A short read before the
// remote size is returned as is, with a nil error unless the remote gave
// one other than io.EOF.
//
// Preconditions: f.ioMu is locked.
func (f *File) readRemoteLocked(p []byte, off uint64) (int, error) {
	var want uint64
	if off < f.remoteSize {
		want = min(uint64(len(p)), f.remoteSize-off)
	}
	if want > 0 {
		n, err := f.remote.ReadAt(p[:want], int64(off))
		n = min(max(n, 0), int(want))
		if uint64(n) < want {
			if err == nil || errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("cache: read remote at %d: %w", off+uint64(n), err)
		}
	}
	clear(p[want:])
	return len(p), nil
}
