package datapath

import (
	"context"
	"errors"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// remoteOpenFlags turns the flags of an open(2) into those the daemon uses
// for the remote file.
//
//   - O_APPEND: FUSE writes carry explicit offsets (the kernel resolves
//     appends), and pwrite(2) on an O_APPEND descriptor would ignore them.
//   - O_DIRECT: with a host FD the kernel opens the backing file itself,
//     with the caller's flags; the daemon's own reads and writes use
//     unaligned buffers and must not be O_DIRECT.
//   - O_WRONLY with the writeback cache: the kernel reads pages to fill
//     partial writes, so the descriptor must be readable.
//   - the kernel's private bits (FMODE_EXEC) mean nothing to the remote.
func (v *Volume) remoteOpenFlags(flags uint32) int {
	f := int(flags) &^ (unix.O_APPEND | unix.O_DIRECT | fuse.FMODE_EXEC | unix.O_NOCTTY)
	if v.writebackCache && f&unix.O_ACCMODE == unix.O_WRONLY {
		f = f&^unix.O_ACCMODE | unix.O_RDWR
	}
	return f
}

var _ fs.NodeOpener = (*node)(nil)

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	name := n.name()
	f, err := n.vol.fs.Open(name, n.vol.remoteOpenFlags(flags), 0)
	if err != nil {
		return nil, 0, n.errno(err)
	}
	h, err := n.vol.newHandle(n, name, f, flags, -1)
	if err != nil {
		f.Close()
		return nil, 0, n.errno(err)
	}
	if p, ok := n.vol.fs.(backend.SiblingPrefetcher); ok && flags&unix.O_ACCMODE != unix.O_WRONLY {
		p.OpenedForRead(name)
	}
	return h, h.fuseFlags(), 0
}

var _ fs.NodeCreater = (*node)(nil)

// Create makes a new file. The kernel sends CREATE only when it believes
// the name is absent, but its belief may be stale (a negative entry cached
// while someone created the file on the remote). The remote create is
// therefore always exclusive: opening an existing file here would skip the
// kernel's permission check on it and hand it to the caller. When the name
// exists and the caller did not ask for O_EXCL, ESTALE makes the kernel
// look the name up again and open the file it finds, with the usual checks.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p := n.childName(name)
	a, f, err := n.vol.createOwned(ctx, n, p, mode, func(at string, mode uint32) (backend.File, error) {
		return n.vol.fs.Open(at, n.vol.remoteOpenFlags(flags)|unix.O_CREAT|unix.O_EXCL, mode)
	})
	n.entryChanged(name, true, false, err)
	if errors.Is(err, unix.EEXIST) && flags&unix.O_EXCL == 0 {
		return nil, nil, 0, syscall.ESTALE
	}
	if err != nil {
		return nil, nil, 0, n.errno(err)
	}
	child := n.newChild(ctx, &a, out)
	h, err := n.vol.newHandle(child.Operations().(*node), p, f, flags, a.Size)
	if err != nil {
		f.Close()
		return nil, nil, 0, n.errno(err)
	}
	return child, h, h.fuseFlags(), 0
}
