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
// Writethrough and shared use direct I/O, so every write reaches the remote
// before it returns (W4, W7) and shared reads always see the remote (R3).
// It also makes the kernel refuse MAP_SHARED mappings with ENODEV, which is
// M3 exactly and M2 with one difference the FUSE protocol forces (M4):
// writethrough also refuses read-only shared mappings, because the kernel
// cannot refuse only the writable ones. Private mappings are allowed.
func (m Mode) openFlags() uint32 {
	if m == Exclusive {
		return fuse.FOPEN_KEEP_CACHE
	}
	return fuse.FOPEN_DIRECT_IO
}

// flushesOnClose tells whether close(2) flushes the remote handle (S5).
func (m Mode) flushesOnClose() bool { return m != Exclusive }
