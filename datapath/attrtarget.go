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
// the request named no open file).
func (n *node) attrTarget(fh fs.FileHandle) attrTarget {
	if h, ok := fh.(*handle); ok {
		return attrTarget{f: h.f}
	}
	if f := n.anyOpenFile(); f != nil {
		return attrTarget{f: f}
	}
	return attrTarget{fs: n.vol.fs, name: n.name()}
}

// anyOpenFile returns an open remote file of the node: its page cache's,
// or an open handle's. Nil when the node has none.
func (n *node) anyOpenFile() backend.File {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cache != nil {
		return n.cache.remote
	}
	for h := range n.handles {
		return h.f
	}
	return nil
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
