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

// dirHandle is one open directory. It lists the directory once per pass
// and, for READDIRPLUS, looks up each listed entry through the same open
// directory when the remote offers one (backend.DirOpener), instead of
// resolving the directory's path again for every entry.
type dirHandle struct {
	node *node
	dir  backend.Dir // nil when the remote has no DirOpener

	mu      sync.Mutex
	entries []fuse.DirEntry // the current pass; nil before the first read
	pos     int             // index of the next entry to return
}

var (
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
	_ fs.FileLookuper       = (*dirHandle)(nil)
	_ fs.FileFsyncdirer     = (*dirHandle)(nil)
	_ fs.FileReleasedirer   = (*dirHandle)(nil)
	_ fs.FileGetattrer      = (*dirHandle)(nil)
)

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h := &dirHandle{node: n}
	if do, ok := n.vol.fs.(backend.DirOpener); ok {
		d, err := do.OpenDir(n.name())
		if err != nil {
			return nil, 0, n.errno(err)
		}
		h.dir = d
	}
	return h, 0, 0
}

// list reads the directory from its start.
func (h *dirHandle) list() syscall.Errno {
	var entries []backend.DirEntry
	var err error
	if h.dir != nil {
		entries, err = h.dir.ReadDir()
	} else {
		entries, err = h.node.vol.fs.ReadDir(h.node.name())
	}
	if err != nil {
		return h.node.errno(err)
	}
	h.entries = make([]fuse.DirEntry, len(entries))
	for i, e := range entries {
		h.entries[i] = fuse.DirEntry{Name: e.Name, Mode: e.Mode, Ino: h.node.vol.ino(e.Ino), Off: uint64(i + 1)}
	}
	h.pos = 0
	h.prefetchSubdirs(entries)
	return 0
}

// prefetchSubdirs tells a remote that reads directories ahead about the
// subdirectories just listed: a walk that lists a directory usually
// enters them next (find, du, ls -R), and the remote can read them while
// the kernel is still busy with this one.
func (h *dirHandle) prefetchSubdirs(entries []backend.DirEntry) {
	p, ok := h.node.vol.fs.(backend.DirPrefetcher)
	if !ok {
		return
	}
	var dirs []string
	for _, e := range entries {
		if e.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, h.node.childName(e.Name))
		}
	}
	p.PrefetchDirs(dirs)
}

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.entries == nil {
		if errno := h.list(); errno != 0 {
			return nil, errno
		}
	}
	if h.pos >= len(h.entries) {
		return nil, 0
	}
	e := h.entries[h.pos]
	h.pos++
	return &e, 0
}

// Seekdir moves to the entry after offset off. Offset 0 is rewinddir(3),
// which must show the directory as it is now, so it lists it again.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 || h.entries == nil {
		if errno := h.list(); errno != 0 {
			return errno
		}
	}
	h.pos = int(min(off, uint64(len(h.entries))))
	return 0
}

// Lookup is READDIRPLUS's lookup of an entry just listed: the same as
// node.Lookup, with the attributes read through the open directory.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if h.dir == nil {
		return h.node.Lookup(ctx, name, out)
	}
	a, err := h.dir.Lstat(name)
	if err != nil {
		return nil, h.node.errno(err)
	}
	return h.node.newChild(ctx, &a, out), 0
}

// Getattr is a GETATTR of the directory while it is open, which must
// work after the directory was removed (fstat(2) of its descriptor). It
// asks the open directory when the remote has one, which costs what a
// stat by name would; otherwise by name, unless the name is known to be
// gone.
func (h *dirHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.node.openAttr(out, h.stat)
}

func (h *dirHandle) stat() (backend.Attr, error) {
	if h.dir != nil {
		return h.dir.Stat()
	}
	if h.node.removed() {
		// Its name would be a placeholder no remote has.
		return backend.Attr{}, syscall.ENOENT
	}
	return h.node.vol.fs.Lstat(h.node.name())
}

// Fsyncdir makes the directory's entries durable on the remote (S4 for
// directories: a database's fsync of its directory after a rename), through
// the open directory or, on a remote without one, by name.
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if h.dir != nil {
		return h.node.errno(h.dir.Sync())
	}
	if ds, ok := h.node.vol.fs.(backend.DirSyncer); ok {
		return h.node.errno(ds.SyncDir(h.node.name()))
	}
	return syscall.ENOTSUP
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if h.dir != nil {
		h.dir.Close()
	}
}
