package datapath

import (
	"syscall"
	"time"

	"github.com/csi-goferfs/csi-goferfs/cache"
	"golang.org/x/sys/unix"
)

// The data path counts, it does not export: Stats returns plain numbers
// and an OpObserver is told each operation's latency, so the package stays
// free of any metrics library and the caller (the driver) decides what to
// publish.

// Op is a FUSE operation whose latency is reported to an OpObserver.
type Op uint8

// The timed operations: the data operations and the lookups and attribute
// calls that every open pays for.
const (
	OpLookup Op = iota
	OpGetattr
	OpSetattr
	OpOpen
	OpCreate
	OpRead
	OpWrite
	OpFlush
	OpFsync
	// NumOps is the number of Ops: they run from 0 to NumOps-1, so an
	// observer can keep per-Op state in an array.
	NumOps = iota
)

var opNames = [NumOps]string{"lookup", "getattr", "setattr", "open", "create", "read", "write", "flush", "fsync"}

// String returns the operation's name in lower case, as in FUSE_LOOKUP.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "unknown"
}

// OpObserver is told how long each timed FUSE operation took, errors
// included. It is called on the goroutine serving the request, so it must
// be cheap and must not block.
type OpObserver interface {
	ObserveOp(op Op, d time.Duration)
}

// RemoteErrnos are the errors that mean the remote failed, rather than
// that a request was refused: I/O errors (and errors with no errno, which
// become EIO), a lost connection, a full or read-only store, a stale
// handle. Errors such as ENOENT, EEXIST or EACCES are answers, not
// failures, and are not counted.
var RemoteErrnos = [...]syscall.Errno{
	unix.EIO, unix.ENOSPC, unix.EDQUOT, unix.EROFS, unix.ESTALE,
	unix.ENOTCONN, unix.ETIMEDOUT, unix.ECONNRESET, unix.ECONNREFUSED,
	unix.ECONNABORTED, unix.EHOSTUNREACH, unix.ENETUNREACH,
}

// remoteErrorIndex returns the index of e in RemoteErrnos, or -1.
func remoteErrorIndex(e syscall.Errno) int {
	for i, r := range RemoteErrnos {
		if r == e {
			return i
		}
	}
	return -1
}

// VolumeStats is a snapshot of a volume's counters and cache state.
type VolumeStats struct {
	// Cache counts the page cache activity of all the volume's files.
	Cache cache.Stats
	// CachedBytes and DirtyBytes are the bytes of the volume's cached
	// pages and of those the remote lacks, at the time of the call.
	CachedBytes, DirtyBytes int64
	// RemoteErrors counts, for each of RemoteErrnos, the FUSE operations
	// that failed with it.
	RemoteErrors map[syscall.Errno]uint64
}

// Stats returns a snapshot of v's counters. It sums the volume's caches,
// so it costs a little per cached file; it is meant for a metrics scrape,
// not for the I/O path.
func (v *Volume) Stats() VolumeStats {
	s := VolumeStats{
		Cache:        v.cacheCounters.Stats(),
		RemoteErrors: make(map[syscall.Errno]uint64, len(RemoteErrnos)),
	}
	for i, e := range RemoteErrnos {
		s.RemoteErrors[e] = v.remoteErrors[i].Load()
	}
	v.cachesMu.Lock()
	caches := make([]*nodeCache, 0, len(v.caches))
	for c := range v.caches {
		caches = append(caches, c)
	}
	v.cachesMu.Unlock()
	for _, c := range caches {
		s.CachedBytes += c.file.CachedBytes()
		s.DirtyBytes += c.file.DirtyBytes()
	}
	return s
}
