package datapath

import (
	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// attrTarget is where a node's attribute and xattr changes go: an open
// remote file of the node when there is one, else its name. An open file
// keeps working after the name is gone (fchmod of an unlinked file, or the
// kernel writing back the times of a deleted file), and needs no lookup.
type attrTarget struct {
	f    backend.File // nil: use fs and name
	fs   backend.FS
	name string
}

// attrTarget returns the target for a request that carried fh (nil when
// the request named no open file), and a func to call when done with it.
func (n *node) attrTarget(fh fs.FileHandle) (attrTarget, func()) {
	if h, ok := fh.(*handle); ok {
		// The caller holds this open for the whole request.
		return attrTarget{f: h.f}, func() {}
	}
	if f, done := n.borrowOpenFile(); f != nil {
		return attrTarget{f: f}, done
	}
	return attrTarget{fs: n.vol.fs, name: n.name()}, func() {}
}

// borrowOpenFile returns an open remote file of the node (its page
// cache's, or an open handle's) and a func to call when done with it;
// until then the file stays open. A request that names no handle may pick
// one whose RELEASE is on its way (close(2) does not wait for it): closing
// the descriptor under the request would fail it with EBADF, or worse,
// apply it to whatever file reuses the descriptor number. The page cache's
// file lives until the kernel forgets the inode, which it cannot do while
// a request on the inode is in flight. Nil when the node has no open file.
func (n *node) borrowOpenFile() (backend.File, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cache != nil {
		return n.cache.remote, func() {}
	}
	for h := range n.handles {
		// Release removes h from handles (under mu) before it waits,
		// so no borrow starts once it waits.
		h.borrowers.Add(1)
		return h.f, h.borrowers.Done
	}
	return nil, func() {}
}

func (n *node) addHandle(h *handle) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handles == nil {
		n.handles = make(map[*handle]struct{})
	}
	n.handles[h] = struct{}{}
}

func (n *node) removeHandle(h *handle) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.handles, h)
}

func (t attrTarget) chmod(perm uint32) error {
	if t.f != nil {
		return t.f.Chmod(perm)
	}
	return t.fs.Chmod(t.name, perm)
}

func (t attrTarget) chown(uid, gid int) error {
	if t.f != nil {
		return t.f.Chown(uid, gid)
	}
	return t.fs.Chown(t.name, uid, gid)
}

func (t attrTarget) utimens(atime, mtime *unix.Timespec) error {
	if t.f != nil {
		return t.f.Utimens(atime, mtime)
	}
	return t.fs.Utimens(t.name, atime, mtime)
}

func (t attrTarget) getxattr(attr string, dest []byte) (int, error) {
	if t.f != nil {
		return t.f.Getxattr(attr, dest)
	}
	return t.fs.Getxattr(t.name, attr, dest)
}

func (t attrTarget) setxattr(attr string, data []byte, flags int) error {
	if t.f != nil {
		return t.f.Setxattr(attr, data, flags)
	}
	return t.fs.Setxattr(t.name, attr, data, flags)
}

func (t attrTarget) listxattr(dest []byte) (int, error) {
	if t.f != nil {
		return t.f.Listxattr(dest)
	}
	return t.fs.Listxattr(t.name, dest)
}

func (t attrTarget) removexattr(attr string) error {
	if t.f != nil {
		return t.f.Removexattr(attr)
	}
	return t.fs.Removexattr(t.name, attr)
}
