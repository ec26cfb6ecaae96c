// Package cache is the daemon's page cache of remote files, used when the
// kernel cannot do I/O on the backing file itself (a network remote, or a
// volume with forcePageCache).
//
// # What it is
//
// A File caches one remote file in 4 KiB pages and talks to it only
// through the Remote interface that this package owns. Its state is kept in
// ordered range sets (Set): the cached pages, the dirty pages (with a keep
// flag for pages under a writable mapping) and the mapped ranges. A Budget,
// shared by every File on the node, bounds the bytes of cached pages and
// evicts the least recently used unmapped ones. A Readahead, kept by each
// open-file handle, sizes fill windows. Counters, shared by the Files of a
// volume, count hits, fills, writeback and evictions with atomic adds, for
// metrics read at scrape time.
//
// The package knows nothing of FUSE, gRPC or Kubernetes: the data path
// picks the operation that an interop mode and open flags call for (Read or
// ReadDirect, Write or WriteDirect, WriteBack after a writethrough write,
// SyncRange for O_SYNC) and invalidates the kernel's copy of dropped pages.
//
// # Rules implemented
//
// From shared/design/interop-modes.md:
//
//   - R1, W1: a negative offset or length gives ErrInvalid.
//   - R2: Read at or past the size returns io.EOF without a remote call.
//   - R4: ReadDirect writes back the overlapping dirty pages, then reads
//     the remote.
//   - R5: Read serves cached pages, fills gaps and serves from the fill;
//     when the budget cannot take the fill, it reads the gap directly.
//   - R6: fills are widened toward the gap by a window that starts at 64
//     KiB, doubles on sequential reads up to a maximum, never drops below
//     the required range, and is shrunk to the required range when the
//     budget cannot take it.
//   - R7: reads are bounded by the size; a partial remote read stops the
//     read and returns what was read.
//   - W3, W4: WriteDirect and DropRange write back, then drop the touched
//     pages.
//   - W5: Write copies into cached pages and marks them dirty; it writes
//     gaps to the remote, never filling the cache on a write.
//   - W6: a write past the end extends Size at once; RemoteSize follows at
//     writeback (WriteBackAll extends the remote if no page did).
//   - W7, W8, S4: WriteBack, SyncRange and Sync give the data path what
//     writethrough, O_SYNC and fsync need.
//   - M5, M6: Fault fills pages like a read; a write fault keeps the pages
//     dirty while a writable mapping exists; mapped pages are never
//     evicted; pages past the end give ErrBeyondEOF.
//   - C1: eviction takes only unmapped pages and writes dirty ones back
//     first; a failed writeback leaves the page cached and dirty and is
//     reported to the Budget's report function (and returned by Evict).
//   - C2: Close writes everything back and drops the cache only if that
//     worked.
//   - C3: pages are charged to the Budget before they are filled, and a
//     charge that does not fit fails, so the budget is never exceeded.
//
// # Lock order
//
//	File.ioMu
//	  File.mu
//	    Budget.mu
//	Readahead.mu (a leaf, taken alone)
//	pageMemory.mu (a leaf: page memory is taken and returned under any
//	of the above)
//
// A goroutine holds at most one File.ioMu and at most one File.mu, but the
// two may belong to different files: a fill holding its File's ioMu may
// evict a clean page of another File, taking that File's mu. No File.mu is
// held while an ioMu is acquired, so this cannot deadlock. Evicting a dirty
// page takes its File's ioMu, so it is done only with no lock held (before
// a Read or Fault takes its own ioMu).
//
// File.ioMu is held across remote I/O: it is what keeps a fill from
// caching data that a concurrent write to a gap is replacing, and a
// writeback from marking clean a page rewritten meanwhile. Fills for reads
// hold it for reading, so that a file's readers fill different ranges at
// once; they claim their ranges under File.mu, and a reader that needs a
// claimed range waits for that fill (holding ioMu for reading, which the
// fill it waits for never needs again). Everything else holds it for
// writing. File.mu and
// Budget.mu are never held across remote I/O, so reads of cached pages
// proceed while the same file waits on the remote.
//
// # Error handling
//
// Errors are Go errors: remote errors wrapped with %w (so errors.Is(err,
// syscall.ENOSPC) still works), io.EOF at the end of the file, and the
// sentinels ErrInvalid, ErrBeyondEOF, ErrNotMapped and ErrBudgetExhausted.
// The package never returns an errno of its own; the data path maps errors
// to errno in one place. A failed writeback never drops data: the pages
// stay dirty and a later writeback retries them.
package cache
