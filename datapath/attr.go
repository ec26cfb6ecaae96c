package datapath

import (
	"context"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var _ fs.NodeGetattrer = (*node)(nil)

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	// An open file may have been unlinked: ask its descriptor. The
	// kernel names the handle only for regular files; for a directory
	// go-fuse passes one of the node's open handles, if any.
	switch h := f.(type) {
	case *handle:
		return h.Getattr(ctx, out)
	case *dirHandle:
		return h.Getattr(ctx, out)
	}
	if a, ok := n.knownAttr(); ok {
		fillAttr(&out.Attr, &a)
		return 0
	}
	var a backend.Attr
	var err error
	if of, done := n.borrowOpenFile(); of != nil {
		a, err = of.Stat() // no lookup, and right after an unlink too
		done()
	} else {
		a, err = n.vol.fs.Lstat(n.name())
	}
	if err != nil {
		return n.errno(err)
	}
	n.rememberAttr(&a)
	fillAttr(&out.Attr, &a)
	n.cachedSize(&out.Attr)
	return 0
}

// cachedSize reports the size of the node's page cache, which runs ahead
// of the remote's while extending writes are not written back (W6).
func (n *node) cachedSize(out *fuse.Attr) {
	if cf := n.cachedFile(); cf != nil {
		out.Size = uint64(cf.Size())
	}
}

var _ fs.NodeSetattrer = (*node)(nil)

// Setattr applies the changes in order: owner before mode (chown clears
// set-id bits), size before times (truncate sets mtime, an explicit mtime
// must win).
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer func() {
		if errno != 0 {
			n.forgetAttr() // part of the change may have been applied
			return
		}
		// go-fuse leaves a SETATTR reply's timeout at zero, which made
		// the kernel send a GETATTR after every chmod, chown and utimes.
		// The reply is as fresh as a GETATTR's; it keeps as long.
		out.SetTimeout(n.vol.opts.Mode.entryTimeout())
	}()
	target, done := n.attrTarget(f)
	defer done()
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if !n.hasOwner(u, g) {
			if err := target.chown(u, g); err != nil {
				return n.errno(err)
			}
		}
	}
	if mode, ok := in.GetMode(); ok && !n.hasPerm(mode&07777) {
		if err := target.chmod(mode & 07777); err != nil {
			return n.errno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		// ftruncate(2) names its (writable) file; truncate(2) names a
		// path, and other open files of the node may be read-only.
		var err error
		if cf := n.cachedFile(); cf != nil {
			// Drops cached pages past the end and truncates the remote.
			err = cf.Truncate(int64(size))
		} else if h, ok := f.(*handle); ok {
			err = h.f.Truncate(int64(size))
		} else {
			err = n.vol.fs.Truncate(n.name(), int64(size))
		}
		if err != nil {
			return n.errno(err)
		}
	}
	atime, aok := in.GetATime()
	mtime, mok := in.GetMTime()
	if aok || mok {
		var at, mt *unix.Timespec
		if aok {
			ts := unix.NsecToTimespec(atime.UnixNano())
			at = &ts
		}
		if mok {
			ts := unix.NsecToTimespec(mtime.UnixNano())
			mt = &ts
		}
		if err := target.utimens(at, mt); err != nil {
			return n.errno(err)
		}
		n.cacheTimesSet(at, mt)
	}
	if a, ok := n.setattrResult(in); ok {
		fillAttr(&out.Attr, &a)
		n.cachedSize(&out.Attr)
		return 0
	}
	return n.Getattr(ctx, f, out)
}

var _ fs.NodeGetxattrer = (*node)(nil)

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	target, done := n.attrTarget(nil)
	defer done()
	sz, err := target.getxattr(attr, dest)
	return uint32(sz), n.errno(err)
}

var _ fs.NodeSetxattrer = (*node)(nil)

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	target, done := n.attrTarget(nil)
	defer done()
	return n.errno(target.setxattr(attr, data, int(flags)))
}

var _ fs.NodeListxattrer = (*node)(nil)

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	target, done := n.attrTarget(nil)
	defer done()
	sz, err := target.listxattr(dest)
	return uint32(sz), n.errno(err)
}

var _ fs.NodeRemovexattrer = (*node)(nil)

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	target, done := n.attrTarget(nil)
	defer done()
	return n.errno(target.removexattr(attr))
}
