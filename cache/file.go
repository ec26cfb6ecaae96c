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
	// AsyncReadahead fills the next window of a sequential stream in the
	// background (see asyncFill). Close stops it.
	AsyncReadahead bool
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
	async        bool      // immutable; Options.AsyncReadahead

	ahead asyncFill

	// ioMu serializes the operations that do remote I/O or change cached
	// contents, so that a fill, a write to a gap and a writeback never
	// interleave on one file. Fills for reads hold it for reading and
	// keep apart through fills; everything else holds it for writing.
	// Reads served entirely from the cache do not take it.
	ioMu sync.RWMutex

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
	// fills are the claims of the fills in flight under ioMu held for
	// reading; they never overlap. Guarded by mu.
	fills []*inflightFill
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
		async:      opts.AsyncReadahead,
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
	if x+n >= end {
		f.readAheadRLocked(x+n, window)
		f.mu.RUnlock()
		f.counters.hits.Add(1)
		return int(n), eofIf(n < uint64(len(p)))
	}
	f.mu.RUnlock()
	f.counters.misses.Add(1)
	f.budget.makeRoom(int64(window))
	// For reading: fills of other ranges of the file go on meanwhile (see
	// inflightFill).
	f.ioMu.RLock()
	got, err := f.readFilling(p, x, x+n, uint64(len(p)), window)
	f.ioMu.RUnlock()
	if err == nil {
		f.readAhead(x+uint64(got), window)
	}
	return got, err
}

// copyCachedRLocked copies into dst the cached bytes from x up to end or
// the first gap, and returns how many. A nil dst only counts them.
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
		chunk := pg.data[x-pg.off : min(end-pg.off, PageSize)]
		if dst != nil {
			copy(dst[x-start:], chunk)
		}
		x += uint64(len(chunk))
	}
	return x - start
}

// errNoRoom stops a fill without a destination when the budget cannot
// take even the required range, so that the bytes cannot be cached.
var errNoRoom = errors.New("cache: no room to fill")

// readFilling finishes a read of n bytes at off whose bytes before x were
// copied into p, filling the gaps it meets or waiting for the fills of
// other readers that cover them. With a nil p it only fills.
//
// Preconditions: f.ioMu is locked for reading; f.mu is not.
func (f *File) readFilling(p []byte, off, x, n uint64, window uint64) (int, error) {
	end := min(off+n, f.size)
	for x < end {
		f.mu.RLock()
		x += f.copyCachedRLocked(tail(p, x-off), x, end)
		f.mu.RUnlock()
		if x >= end {
			break
		}
		f.mu.Lock()
		gap, isGap := f.pages.FindGap(x)
		if !isGap { // another reader's fill landed meanwhile
			f.mu.Unlock()
			continue
		}
		opt, wait := f.clipToClaimsLocked(gap.Intersect(Range{0, pageUp(f.size)}), x)
		if wait != nil {
			f.mu.Unlock()
			<-wait
			continue
		}
		req := Range{pageDown(x), min(pageUp(end), opt.End)}
		claim := f.claimLocked(maxFillRange(req, opt, window))
		f.mu.Unlock()
		want := min(end, req.End)
		got, err := f.fillCopy(tail(p, x-off), x, want, req, claim, window)
		x += got
		if err != nil || x < want {
			return int(x - off), err
		}
	}
	return int(x - off), eofIf(x-off < n)
}

// tail returns p from i on, or nil for a nil p.
func tail(p []byte, i uint64) []byte {
	if p == nil {
		return nil
	}
	return p[i:]
}

// fillCopy fills the claimed range around req, copies the bytes from x up
// to want into dst unless dst is nil, and returns how many of them it
// has. When the budget cannot take even req, it reads dst directly (R5),
// or with a nil dst returns errNoRoom.
//
// Preconditions: f.ioMu is locked for reading; f.mu is not; claim is this
// reader's and covers req, a gap, which holds x and want.
func (f *File) fillCopy(dst []byte, x, want uint64, req Range, claim *inflightFill, window uint64) (uint64, error) {
	defer f.releaseClaim(claim)
	fill := claim.rng
	if !f.budget.reserve(int64(fill.Len())) {
		if fill == req || !f.budget.reserve(int64(req.Len())) {
			if dst == nil {
				return 0, errNoRoom
			}
			n, err := f.readRemoteLocked(dst[:want-x], x)
			return uint64(n), err
		}
		fill = req
		f.shrinkClaim(claim, fill)
	}
	if dst != nil {
		dst = dst[:want-x]
	}
	got, _, err := f.fillLocked(fill, dst, x)
	f.counters.countFill(fill, req, got)
	if err == nil && got == fill.Len() && window > f.minRA {
		f.prefetch(fill.End, window)
	}
	var n uint64
	if fill.Start+got > x {
		n = min(fill.Start+got, want) - x
	}
	return n, err
}

// prefetch asks a Prefetcher remote for the window after a sequential
// stream's fill, up to the remote size.
//
// Preconditions: f.ioMu is locked (for reading or writing).
func (f *File) prefetch(off, window uint64) {
	p, ok := f.remote.(Prefetcher)
	if !ok || off >= f.remoteSize {
		return
	}
	p.Prefetch(int64(off), int64(min(window, f.remoteSize-off)))
}

// reserveFill widens req toward opt by the readahead window (R6) and
// charges the result to the budget, falling back to req alone. It is for
// fills under ioMu held for writing, which need no claim.
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

// fillLocked reads the already charged range fill from the remote into
// new pages, caches the whole pages read, and copies into dst the bytes
// read from x on (x lies in fill; dst may be nil). It returns how many
// bytes it read and how many it copied. The copy is made before the pages
// are cached, while no one else can evict and reuse them.
//
// Preconditions: f.ioMu is locked, for writing or, with fill claimed, for
// reading; f.mu is not; fill is a page-aligned gap.
func (f *File) fillLocked(fill Range, dst []byte, x uint64) (got, copied uint64, err error) {
	pgs := make([]*page, fill.Len()/PageSize)
	bufs := make([][]byte, len(pgs))
	for i := range pgs {
		pgs[i] = newPage(f, fill.Start+uint64(i)*PageSize)
		bufs[i] = pgs[i].data[:]
	}
	n, err := f.readRemoteVLocked(bufs, fill.Start)
	got = uint64(n)
	whole := got
	if got < fill.Len() {
		whole = pageDown(got)
	}
	// Cached bytes past the size are zero, so that extending the size
	// never reveals stale data. The pages are not cached yet, and the
	// size changes only under ioMu held for writing, so f.mu is not
	// needed.
	if sz := f.size; fill.Start+whole > sz {
		zeroPages(bufs, max(sz, fill.Start)-fill.Start, whole)
	}
	if dst != nil && x < fill.Start+got {
		copied = copyFromPages(dst, bufs, x-fill.Start, got)
	}
	keep := pgs[:whole/PageSize]
	segs := make([]Segment[*page], len(keep))
	for i, pg := range keep {
		segs[i] = Segment[*page]{pg.rng(), pg}
	}
	f.mu.Lock()
	f.pages.InsertGap(segs)
	f.linkRangeLocked(Range{fill.Start, fill.Start + whole})
	f.mu.Unlock()
	for _, pg := range pgs[len(keep):] {
		pg.free()
	}
	if rest := fill.Len() - whole; rest > 0 {
		f.budget.uncharge(int64(rest))
	}
	return got, copied, err
}

// readRemoteVLocked is readRemoteLocked into bufs, in order, as if they
// were one buffer: straight into them from a VectorReader, else through
// a staging buffer.
//
// Preconditions: f.ioMu is locked (for reading or writing).
func (f *File) readRemoteVLocked(bufs [][]byte, off uint64) (int, error) {
	var total uint64
	for _, b := range bufs {
		total += uint64(len(b))
	}
	want := f.remoteBytes(off, total)
	v, ok := f.remote.(VectorReader)
	if !ok {
		buf := getBuf(total)
		defer putBuf(buf)
		n, err := f.readRemoteLocked(buf, off)
		scatter(bufs, buf[:n])
		return n, err
	}
	if want > 0 {
		// Hand the remote only the bytes before its end.
		head, rest := splitBufs(bufs, want)
		n, err := v.ReadvAt(head, int64(off))
		if n, full, err := settleRemoteRead(n, err, want, off); !full {
			return n, err
		}
		bufs = rest
	}
	for _, b := range bufs {
		clear(b)
	}
	return int(total), nil
}

// splitBufs splits bufs at byte n, which must be within them, sharing
// their memory: head holds the first n bytes and rest the others.
func splitBufs(bufs [][]byte, n uint64) (head, rest [][]byte) {
	for i, b := range bufs {
		switch {
		case n == 0:
			return bufs[:i], bufs[i:]
		case n < uint64(len(b)):
			head = append(bufs[:i:i], b[:n])
			rest = append([][]byte{b[n:]}, bufs[i+1:]...)
			return head, rest
		}
		n -= uint64(len(b))
	}
	return bufs, nil
}

// scatter copies src into bufs in order.
func scatter(bufs [][]byte, src []byte) {
	for _, b := range bufs {
		if len(src) == 0 {
			return
		}
		src = src[copy(b, src):]
	}
}

// zeroPages clears bytes [from, to) of bufs taken as one buffer of
// PageSize buffers.
func zeroPages(bufs [][]byte, from, to uint64) {
	for o := from; o < to; {
		b := bufs[o/PageSize][o%PageSize:]
		b = b[:min(uint64(len(b)), to-o)]
		clear(b)
		o += uint64(len(b))
	}
}

// copyFromPages copies bytes [from, to) of bufs, taken as one buffer of
// PageSize buffers, into dst, and returns how many.
func copyFromPages(dst []byte, bufs [][]byte, from, to uint64) uint64 {
	start := from
	for from < to && from-start < uint64(len(dst)) {
		b := bufs[from/PageSize][from%PageSize:]
		b = b[:min(uint64(len(b)), to-from)]
		from += uint64(copy(dst[from-start:], b))
	}
	return from - start
}

// readRemoteLocked reads p at off from the remote. Bytes at or past the
// remote size read as zero without a remote call. A short read before the
// remote size is returned as is, with a nil error unless the remote gave
// one other than io.EOF.
//
// Preconditions: f.ioMu is locked (for reading or writing).
func (f *File) readRemoteLocked(p []byte, off uint64) (int, error) {
	want := f.remoteBytes(off, uint64(len(p)))
	if want > 0 {
		n, err := f.remote.ReadAt(p[:want], int64(off))
		if n, full, err := settleRemoteRead(n, err, want, off); !full {
			return n, err
		}
	}
	clear(p[want:])
	return len(p), nil
}

// remoteBytes returns how many of the n bytes at off lie before the
// remote's end.
//
// Preconditions: f.ioMu is locked (for reading or writing).
func (f *File) remoteBytes(off, n uint64) uint64 {
	if off >= f.remoteSize {
		return 0
	}
	return min(n, f.remoteSize-off)
}

// settleRemoteRead checks a remote read of want bytes at off that returned
// n and err. full tells whether all want bytes came; if not, it returns
// the bytes that did, with a nil error unless the remote gave one other
// than io.EOF.
func settleRemoteRead(n int, err error, want, off uint64) (int, bool, error) {
	n = min(max(n, 0), int(want))
	if uint64(n) == want {
		return n, true, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return n, false, nil
	}
	return n, false, fmt.Errorf("cache: read remote at %d: %w", off+uint64(n), err)
}
