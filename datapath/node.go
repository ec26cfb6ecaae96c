package datapath

import (
	"context"
	"sync"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is one file or directory of a volume. Its remote name is its path
// from the volume root, recomputed per operation from the kernel's view of
// the tree, so renames need no bookkeeping here.
type node struct {
	fs.Inode
	vol *Volume

	mu sync.Mutex
	// cache is the inode's page cache, created by the first open that
	// needs it (see cached.go). Guarded by mu.
	cache *nodeCache
	// handles are the node's open files. Guarded by mu.
	handles map[*handle]struct{}
	// attr is the node's attributes as last read from the remote, with
	// the volume's own changes applied; valid while attrOK, which is
	// only ever set on exclusive volumes (see attrcache.go). Without
	// attrOK they are only what a removed file that is still open
	// answers with when the remote cannot (goneAttr). Guarded by mu.
	attr   backend.Attr
	attrOK bool
	// names, if not nil, are all of the directory's entries (see
	// dirnames.go). Guarded by mu.
	names map[string]struct{}
}

func (n *node) isRegular() bool { return n.StableAttr().Mode&unix.S_IFMT == unix.S_IFREG }

// name returns the node's remote name; "" is the volume root.
func (n *node) name() string {
	return n.Path(n.vol.root.EmbeddedInode())
}

// removed reports whether n's last name was removed through the volume
// (an open file or directory can outlive it).
func (n *node) removed() bool {
	_, parent := n.Parent()
	return parent == nil && !n.IsRoot()
}

// childName returns the remote name of n's child called name.
func (n *node) childName(name string) string {
	if p := n.name(); p != "" {
		return p + "/" + name
	}
	return name
}

// newChild links the remote file described by a into the tree under n.
func (n *node) newChild(ctx context.Context, a *backend.Attr, out *fuse.EntryOut) *fs.Inode {
	fillAttr(&out.Attr, a)
	child := n.NewInode(ctx, &node{vol: n.vol}, n.vol.stableAttr(a))
	// The inode may be one the kernel already knows, with its own node.
	child.Operations().(*node).rememberAttr(a)
	return child
}

var _ fs.NodeLookuper = (*node)(nil)

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.knownAbsent(name) {
		return nil, syscall.ENOENT
	}
	a, err := n.vol.fs.Lstat(n.childName(name))
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

// made links a new remote entry into the tree, after createOwned.
func (n *node) made(ctx context.Context, a backend.Attr, err error, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

var _ fs.NodeMkdirer = (*node)(nil)

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, _, err := n.vol.createOwned(ctx, n, n.childName(name), mode, func(at string, mode uint32) (backend.File, error) {
		return nil, n.vol.fs.Mkdir(at, mode)
	})
	n.entryChanged(name, true, false, err)
	if err == nil {
		n.subdirAdded()
	}
	child, errno := n.made(ctx, a, err, out)
	if errno == 0 {
		child.Operations().(*node).startEmpty(&a)
	}
	return child, errno
}

var _ fs.NodeMknoder = (*node)(nil)

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, _, err := n.vol.createOwned(ctx, n, n.childName(name), mode, func(at string, mode uint32) (backend.File, error) {
		return nil, n.vol.fs.Mknod(at, mode, uint64(rdev))
	})
	n.entryChanged(name, true, false, err)
	return n.made(ctx, a, err, out)
}

var _ fs.NodeSymlinker = (*node)(nil)

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, _, err := n.vol.createOwned(ctx, n, n.childName(name), 0, func(at string, _ uint32) (backend.File, error) {
		return nil, n.vol.fs.Symlink(target, at)
	})
	n.entryChanged(name, true, false, err)
	return n.made(ctx, a, err, out)
}

var _ fs.NodeLinker = (*node)(nil)

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.vol != n.vol {
		return nil, syscall.EXDEV
	}
	p := n.childName(name)
	t.forgetAttr() // nlink and ctime change
	err := n.vol.fs.Link(t.name(), p)
	n.entryChanged(name, true, false, err)
	if err != nil {
		return nil, n.errno(err)
	}
	a, err := n.vol.fs.Lstat(p)
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

var _ fs.NodeReadlinker = (*node)(nil)

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.vol.fs.Readlink(n.name())
	if err != nil {
		return nil, n.errno(err)
	}
	return []byte(target), 0
}

var _ fs.NodeUnlinker = (*node)(nil)

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.forgetChildAttr(name)
	err := n.vol.fs.Unlink(n.childName(name))
	n.entryChanged(name, false, false, err)
	return n.errno(err)
}

var _ fs.NodeRmdirer = (*node)(nil)

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.forgetChildAttr(name)
	err := n.vol.fs.Rmdir(n.childName(name))
	n.entryChanged(name, false, true, err)
	return n.errno(err)
}

var _ fs.NodeRenamer = (*node)(nil)

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.vol != n.vol {
		return syscall.EXDEV
	}
	n.forgetChildAttr(name)
	np.forgetChildAttr(newName)
	isDir := n.childIsDir(name) || flags&unix.RENAME_EXCHANGE != 0 && np.childIsDir(newName)
	err := n.vol.fs.Rename(n.childName(name), np.childName(newName), flags)
	// RENAME_EXCHANGE leaves both names there; any other rename moves one.
	n.entryChanged(name, flags&unix.RENAME_EXCHANGE != 0, isDir, err)
	np.entryChanged(newName, true, isDir, err)
	return n.errno(err)
}

// forgetChildAttr makes n's child called name, if the kernel knows it,
// forget its attributes: an unlink or rename changes its nlink or ctime.
func (n *node) forgetChildAttr(name string) {
	if c := n.GetChild(name); c != nil {
		c.Operations().(*node).forgetAttr()
	}
}

var _ fs.NodeStatfser = (*node)(nil)

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.vol.fs.Statfs()
	if err != nil {
		return n.errno(err)
	}
	out.Blocks = st.Blocks
	out.Bfree = st.Bfree
	out.Bavail = st.Bavail
	out.Files = st.Files
	out.Ffree = st.Ffree
	out.Bsize = uint32(st.Bsize)
	out.NameLen = uint32(st.Namelen)
	out.Frsize = uint32(st.Frsize)
	return 0
}

// fillAttr copies a remote file's attributes into a FUSE reply.
func fillAttr(out *fuse.Attr, a *backend.Attr) {
	out.Ino = a.Ino
	out.Size = uint64(a.Size)
	out.Blocks = uint64(a.Blocks)
	out.Atime, out.Atimensec = uint64(a.Atim.Sec), uint32(a.Atim.Nsec)
	out.Mtime, out.Mtimensec = uint64(a.Mtim.Sec), uint32(a.Mtim.Nsec)
	out.Ctime, out.Ctimensec = uint64(a.Ctim.Sec), uint32(a.Ctim.Nsec)
	out.Mode = a.Mode
	out.Nlink = uint32(a.Nlink)
	out.Uid, out.Gid = a.Uid, a.Gid
	out.Rdev = uint32(a.Rdev)
	out.Blksize = uint32(a.Blksize)
}

// isDir reports whether a names a directory.
func isDir(a *backend.Attr) bool { return a.Mode&unix.S_IFMT == unix.S_IFDIR }
