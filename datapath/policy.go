package datapath

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Kernel cache lifetimes per mode (rules N1-N3).
//
// Exclusive: nobody else changes the remote, so what the kernel learned
// stays true until it changes through this mount, which updates or
// invalidates the kernel's copy itself. An hour bounds the damage if the
// contract is broken by hand.
//
// Writethrough: others may read the remote and an operator may touch it;
// one second is the libfuse default and keeps repeated stats cheap.
//
// Shared: never cache; every lookup and getattr asks the remote.
const (
	exclusiveTimeout    = time.Hour
	writethroughTimeout = time.Second
)

func (m Mode) entryTimeout() time.Duration {
	switch m {
	case Shared:
		return 0
	case WriteThrough:
		return writethroughTimeout
	default:
		return exclusiveTimeout
	}
}

// negativeTimeout is how long a failed lookup is cached. Only an exclusive
// volume can know that a name stays absent.
func (m Mode) negativeTimeout() time.Duration {
	if m == Exclusive {
		return exclusiveTimeout
	}
	return 0
}

// usesWritebackCache tells whether the kernel's writeback cache is enabled
// for the mount. Only exclusive mode may buffer writes, and passthrough
// mounts must not: the kernel does not combine the two.
func (m Mode) usesWritebackCache(passthrough bool) bool {
	return m == Exclusive && !passthrough
}

// openFlags returns the FOPEN_* flags for an open served by the daemon
// (no host FD).
//
// Exclusive keeps the kernel page cache across opens: the data cannot
// have changed behind our back. The kernel's own O_DIRECT path then
// writes back and invalidates overlapping cached pages around direct I/O
// (R4, W3).
//
// Writethrough and shared open writable files with direct I/O, so every
// write reaches the remote before it returns (W4, W7) and shared reads
// always see the remote (R3). It also makes the kernel refuse MAP_SHARED
// mappings with ENODEV, which is M3 exactly and M2 for writable files.
//
// A writethrough file opened read-only cannot be written through, nor
// mapped shared and writable, so it may use the kernel page cache: warm
// re-reads then cost what a local file's do, and a read-only MAP_SHARED
// mapping works, as M2 allows. The kernel keeps those pages coherent with
// the rest of the mount itself: it drops an inode's cached pages around a
// direct-I/O write to them (Linux 6.6 and later) and around fallocate, and
// when the attributes it refreshes every second show a change made
// elsewhere (FUSE_AUTO_INVAL_DATA); the daemon's cache drops its own pages
// on fallocate (cache.File.Allocate). The one difference the FUSE protocol forces
// (M4): a read-only MAP_SHARED mapping of a file opened read-write is
// refused too, because the kernel cannot refuse only writable mappings of
// a direct-I/O file.
func (m Mode) openFlags(readOnly bool) uint32 {
	if m == Exclusive || m == WriteThrough && readOnly {
		return fuse.FOPEN_KEEP_CACHE
	}
	return fuse.FOPEN_DIRECT_IO
}

// flushesOnClose tells whether close(2) flushes the remote handle (S5).
func (m Mode) flushesOnClose() bool { return m != Exclusive }
