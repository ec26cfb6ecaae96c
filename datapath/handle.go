package datapath

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// handle is one open file: the remote file behind it and the flags it was
// opened with. The kernel serializes nothing for us: Read, Write and the
// rest may run concurrently on one handle, and all of them are safe to.
type handle struct {
	node  *node
	f     backend.File
	flags uint32 // open(2) flags as the caller gave them
	// host is the descriptor handed to the kernel for passthrough, or -1
	// when the daemon serves this file's I/O.
	host int
	// cache is the inode's page cache when the daemon serves I/O in a
	// caching mode; nil when I/O goes straight to f.
	cache *cache.File
	// ra is this open file's readahead stream (R6).
	ra cache.Readahead
	// borrowers counts requests without a handle that use f
	// (borrowOpenFile); Release waits for them before closing f.
	borrowers sync.WaitGroup
	// killPriv is set while the file has set-user-ID or set-group-ID
	// bits that a write by an unprivileged caller must clear (see
	// clearSetID).
	killPriv atomic.Bool
}

// newHandle returns the handle of an open of n, the remote file name,
// opened with the caller's flags as f; size is the file's size if the
// caller just learned it from the remote, else -1. On error the caller
// still owns f.
func (v *Volume) newHandle(n *node, name string, f backend.File, flags uint32, size int64) (*handle, error) {
	h := &handle{node: n, f: f, flags: flags, host: -1}
	if hf, ok := f.(backend.HostFile); ok && v.passthrough.Load() {
		h.host = hf.Fd()
	}
	if v.usesCache(h) {
		rdwr := v.remoteOpenFlags(flags)&unix.O_ACCMODE == unix.O_RDWR
		cf, hf, err := n.fileCache(name, f, rdwr, size)
		if err != nil {
			return nil, err
		}
		h.f, h.cache = hf, cf
	}
	if h.host < 0 && v.opts.Mode != Exclusive {
		// Direct I/O writes reach the daemon without the kernel's
		// set-ID clearing; remember whether this file needs it.
		if a, err := f.Stat(); err == nil && setIDToClear(a.Mode) != 0 {
			h.killPriv.Store(true)
		}
	}
	n.addHandle(h)
	return h, nil
}

// setIDToClear returns the set-ID bits a write by an unprivileged user
// clears, as the kernel does for its own writes: set-user-ID always,
// set-group-ID when the group may execute (without it the bit means
// mandatory locking, and stays).
func setIDToClear(mode uint32) uint32 {
	bits := mode & unix.S_ISUID
	if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		bits |= unix.S_ISGID
	}
	return bits
}

// clearSetID drops the set-ID bits before the first write of an
// unprivileged caller. The kernel does this itself for writes through its
// page cache and for passthrough; direct I/O writes are the daemon's job.
// FUSE tells the caller's uid but not its capabilities, so root counts as
// privileged (CAP_FSETID) and everyone else does not.
func (h *handle) clearSetID(ctx context.Context) error {
	if !h.killPriv.Load() {
		return nil
	}
	if caller, ok := fuse.FromContext(ctx); !ok || caller.Uid == 0 {
		return nil
	}
	a, err := h.f.Stat()
	if err != nil {
		return err
	}
	if bits := setIDToClear(a.Mode); bits != 0 {
		if err := h.f.Chmod(a.Mode & 07777 &^ bits); err != nil {
			return err
		}
	}
	h.killPriv.Store(false)
	return nil
}

// direct tells whether the file was opened O_DIRECT (R4, W3).
func (h *handle) direct() bool { return h.flags&unix.O_DIRECT != 0 }

// syncWrites tells whether writes must be durable before they return (W8).
func (h *handle) syncWrites() bool { return h.flags&(unix.O_SYNC|unix.O_DSYNC) != 0 }

// fuseFlags returns the FOPEN_* flags of the open reply. A passthrough
// handle needs no caching flags: go-fuse adds FOPEN_PASSTHROUGH, and the
// kernel does the I/O on the backing file, coherent with every other user
// of it.
func (h *handle) fuseFlags() uint32 {
	var flags uint32
	if !h.node.vol.opts.Mode.flushesOnClose() {
		// Flush would do nothing (S5): spare close(2) the round trip.
		// The kernel ignores this under its writeback cache; Flush
		// then stops FLUSH for the mount.
		flags |= fuse.FOPEN_NOFLUSH
	}
	if h.host >= 0 {
		return flags
	}
	return flags | h.node.vol.opts.Mode.openFlags(h.readOnly())
}

// readOnly tells whether the file was opened for reading only.
func (h *handle) readOnly() bool { return h.flags&unix.O_ACCMODE == unix.O_RDONLY }

var (
	_ fs.FilePassthroughFder = (*handle)(nil)
	_ fs.FileReader          = (*handle)(nil)
	_ fs.FileWriter          = (*handle)(nil)
	_ fs.FileFlusher         = (*handle)(nil)
	_ fs.FileFsyncer         = (*handle)(nil)
	_ fs.FileReleaser        = (*handle)(nil)
	_ fs.FileGetattrer       = (*handle)(nil)
	_ fs.FileLseeker         = (*handle)(nil)
	_ fs.FileAllocater       = (*handle)(nil)
)

// PassthroughFd offers the host FD to the kernel (R3, W4, M7).
func (h *handle) PassthroughFd() (int, bool) {
	return h.host, h.host >= 0
}

// Read serves a read the kernel could not do itself. Offsets below zero
// never get here: the kernel answers EINVAL (R1).
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var n int
	var err error
	switch {
	case h.cache == nil:
		n, err = h.f.ReadAt(dest, off) // R3: shared mode goes to the remote
	case h.direct():
		n, err = h.cache.ReadDirect(dest, off) // R4
	default:
		if r, ok := pinnedRead(h.cache, off, len(dest), &h.ra); ok {
			return r, 0 // R5, served from cached pages without a copy
		}
		n, err = h.cache.Read(dest, off, &h.ra) // R5, R6
	}
	if n > 0 || err == nil {
		// A short read stops the read and returns what was read (R7).
		return fuse.ReadResultData(dest[:n]), 0
	}
	if isEOF(err) {
		return fuse.ReadResultData(nil), 0
	}
	return nil, h.errno(err)
}

// Write applies the write rules for I/O the daemon serves: straight to the
// remote in shared mode (W4); through the page cache otherwise (W5, W6),
// written back at once in writethrough mode (W7) and made durable for
// O_SYNC/O_DSYNC files (W8); O_DIRECT writes back and drops the touched
// pages first (W3).
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if err := h.clearSetID(ctx); err != nil {
		return 0, h.errno(err)
	}
	var n int
	var err error
	switch {
	case h.cache == nil:
		n, err = h.f.WriteAt(data, off)
	case h.direct():
		n, err = h.cache.WriteDirect(data, off)
	default:
		n, err = h.cache.Write(data, off)
		if err == nil && h.node.vol.opts.Mode == WriteThrough {
			if werr := h.cache.WriteBack(off, int64(n)); werr != nil {
				return 0, h.errno(werr) // W7: the write did not happen
			}
		}
	}
	if err != nil && n == 0 {
		return 0, h.errno(err)
	}
	if n > 0 && h.syncWrites() && h.cache != nil {
		if err := h.cache.SyncRange(off, int64(n)); err != nil {
			return 0, h.errno(err)
		}
	}
	return uint32(n), 0
}

// Flush is close(2) (S5): exclusive volumes keep buffered data buffered;
// the other modes flush the remote handle so other clients see the data.
//
// On an exclusive volume the answer is ENOSYS, which the kernel takes as
// success and as a promise: it sends no more FLUSH on this mount (whose
// mode never changes). It still writes its dirty pages back on close
// before it would have sent one. That spares every close the round trip
// where FOPEN_NOFLUSH cannot: the kernel ignores that flag under its
// writeback cache.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if !h.node.vol.opts.Mode.flushesOnClose() {
		return syscall.ENOSYS
	}
	return h.errno(h.f.Flush())
}

// Fsync makes everything written through this file durable (S4). The
// kernel has already sent its dirty pages; the remote is synced here.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.cache != nil {
		return h.errno(h.cache.Sync())
	}
	const fdatasync = 1 // FUSE_FSYNC_FDATASYNC
	return h.errno(h.f.Sync(flags&fdatasync != 0))
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.node.removeHandle(h)
	h.borrowers.Wait() // see borrowOpenFile
	return h.errno(h.f.Close())
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.node.openAttr(out, h.f.Stat)
}

func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	h.node.forgetAttr() // blocks, and maybe the size, change
	change := func() error { return h.f.Allocate(mode, int64(off), int64(size)) }
	if h.cache == nil {
		return h.errno(change())
	}
	// A punched hole or zeroed range must not be served, or written back,
	// from pages cached before it.
	keepSize := mode&unix.FALLOC_FL_KEEP_SIZE != 0
	if err := h.cache.Allocate(int64(off), int64(size), keepSize, change); err != nil {
		return h.errno(err)
	}
	return 0
}

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel resolves the other
// whence values itself). With a host FD the backing file reports its real
// holes; otherwise the file is one data extent (S2). The size is always
// the remote's current one, which S1 asks for in shared mode.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if h.host >= 0 {
		res, err := unix.Seek(h.host, int64(off), int(whence))
		if err != nil {
			return 0, h.errno(err)
		}
		return uint64(res), 0
	}
	var size uint64
	if h.cache != nil {
		size = uint64(h.cache.Size())
	} else {
		a, err := h.f.Stat()
		if err != nil {
			return 0, h.errno(err)
		}
		size = uint64(a.Size)
	}
	if off >= size {
		return 0, syscall.ENXIO
	}
	switch whence {
	case unix.SEEK_DATA:
		return off, 0
	case unix.SEEK_HOLE:
		return size, 0
	}
	return 0, syscall.EINVAL
}
