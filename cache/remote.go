package cache

import "errors"

// Remote is the backing file as the cache sees it. The remote is the source
// of truth; the cache only ever talks to it through these calls.
//
// ReadAt may return fewer bytes than asked for with a nil error (a partial
// read) or io.EOF at the end of the file. WriteAt may write a prefix of p and
// return an error saying why it stopped (e.g. ENOSPC).
type Remote interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Truncate sets the remote file's size.
	Truncate(size int64) error
	// Sync makes written data durable on the remote.
	Sync() error
	// Size returns the remote file's current size.
	Size() (int64, error)
}

// Prefetcher is a Remote that can start reading a range in the background
// (the host's readahead into a local backing file's page cache, or
// pipelined reads from a network server). A sequential stream prefetches
// the window after each fill, so that the next fill finds its data on the
// way instead of waiting for a whole remote read.
type Prefetcher interface {
	// Prefetch is a hint: it must not block on the remote, and errors
	// are ignored (the fill that needs the data will see them).
	Prefetch(off, length int64)
}

// VectorReader is a Remote that reads into several buffers with one call
// (preadv(2) on a local backing file). A fill then reads straight into
// the pages it caches; without it the bytes go through a staging buffer,
// one more copy of everything a cold read brings in.
type VectorReader interface {
	// ReadvAt is ReadAt into bufs in order, as if they were one buffer.
	ReadvAt(bufs [][]byte, off int64) (int, error)
}

// Sentinel errors. Errors from the remote are wrapped with %w and keep their
// identity (errors.Is(err, syscall.EIO) still works).
var (
	// ErrInvalid reports a negative offset or length, or a range that
	// overflows int64 (R1, W1: EINVAL).
	ErrInvalid = errors.New("cache: invalid offset or length")
	// ErrBeyondEOF reports a fault on a page at or past the end of the file
	// (M5: SIGBUS).
	ErrBeyondEOF = errors.New("cache: page beyond end of file")
	// ErrNotMapped reports a write fault, or a mapping removal, on a range
	// that is not mapped that way.
	ErrNotMapped = errors.New("cache: range not mapped")
	// ErrBudgetExhausted reports that pages which must be cached (a fault)
	// do not fit in the budget even after eviction.
	ErrBudgetExhausted = errors.New("cache: page budget exhausted")
)
