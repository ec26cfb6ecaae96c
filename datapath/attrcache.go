package datapath

import (
	"errors"
	"syscall"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// On an exclusive volume nobody else changes the remote, so the attributes
// a node last got from the remote stay true until the volume changes them
// itself. A SETATTR's reply is then those attributes with the change
// applied, rather than a getattr after the change, and a GETATTR is
// answered from them: over a network each saves a round trip, and an
// untar sends several of each per file.
//
// Regular files of volumes with the kernel's writeback cache (every
// exclusive volume without passthrough) qualify: their size and times are
// the kernel's own, and their data reaches the remote through the daemon
// (a passthrough file's change with every write the kernel does itself).
// So do directories the volume made, which it follows (dirnames.go).
//
// What the volume changes in other ways (links, unlinks, renames, which
// change nlink and ctime; fallocate, which changes blocks) makes the node
// forget them. Set-ID bits, which the server may clear on chown or
// truncate by its own rules, make the reply come from the remote too.

// rememberAttr keeps a, just read from the remote, where it may be used:
// regular files as above, and directories whose entries the volume knows
// (dirnames.go), since every change of them goes through the volume.
// Every node keeps them as its last known attributes (goneAttr).
func (n *node) rememberAttr(a *backend.Attr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.attr = *a
	switch a.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if !n.vol.writebackCache {
			return
		}
	case unix.S_IFDIR:
		if n.names == nil {
			return
		}
	default:
		return
	}
	n.attrOK = true
}

// forgetAttr drops the remembered attributes.
func (n *node) forgetAttr() {
	n.mu.Lock()
	n.attrOK = false
	n.mu.Unlock()
}

// setattrResult applies in (which the remote has just applied) to the
// remembered attributes, remembers the result and returns it; false when
// there is nothing to apply it to or the server's result is not certain.
func (n *node) setattrResult(in *fuse.SetAttrIn) (backend.Attr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.attrOK {
		return backend.Attr{}, false
	}
	a := n.attr
	if a.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		n.attrOK = false
		return backend.Attr{}, false
	}
	if uid, ok := in.GetUID(); ok {
		a.Uid = uid
	}
	if gid, ok := in.GetGID(); ok {
		a.Gid = gid
	}
	if mode, ok := in.GetMode(); ok {
		a.Mode = a.Mode&unix.S_IFMT | mode&07777
		if mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			n.attrOK = false
			return backend.Attr{}, false
		}
	}
	if size, ok := in.GetSize(); ok {
		a.Size = int64(size)
	}
	now := time.Now()
	if t, ok := in.GetATime(); ok {
		a.Atim = unix.NsecToTimespec(t.UnixNano())
	}
	if t, ok := in.GetMTime(); ok {
		a.Mtim = unix.NsecToTimespec(t.UnixNano())
	}
	// Every change sets ctime, on the client's clock like the other
	// times of an exclusive volume (W2).
	a.Ctim = unix.NsecToTimespec(now.UnixNano())
	n.attr = a
	return a, true
}

// hasOwner reports whether the remembered attributes already have owner
// uid and group gid (-1: any): tar gives every file the owner it already
// has, and the request would change nothing. A file with set-ID bits,
// which a chown clears, never qualifies.
func (n *node) hasOwner(uid, gid int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := &n.attr
	return n.attrOK && a.Mode&(unix.S_ISUID|unix.S_ISGID) == 0 &&
		(uid == -1 || a.Uid == uint32(uid)) && (gid == -1 || a.Gid == uint32(gid))
}

// hasPerm reports whether the remembered attributes already have the
// permission bits perm.
func (n *node) hasPerm(perm uint32) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attrOK && n.attr.Mode&07777 == perm
}

// knownAttr returns the remembered attributes for a GETATTR, with blocks
// at least what the cached size needs (data may still sit in the page
// cache, not yet on the remote). The kernel asks for them after every
// chown (to see set-ID bits to clear) and after writes under its
// writeback cache.
func (n *node) knownAttr() (backend.Attr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.attrOK {
		return backend.Attr{}, false
	}
	a := n.attr
	if n.cache != nil {
		a.Size = n.cache.file.Size()
	}
	a.Blocks = max(a.Blocks, (a.Size+4095)/4096*8)
	return a, true
}

// openAttr answers a GETATTR made through an open file or directory of n:
// from the remembered attributes if they may be used, else from stat (of
// the open descriptor where the remote has one, with the size of the
// page cache, which may run ahead of the remote), else, when the remote
// has lost the removed file, from goneAttr.
func (n *node) openAttr(out *fuse.AttrOut, stat func() (backend.Attr, error)) syscall.Errno {
	if a, ok := n.knownAttr(); ok {
		fillAttr(&out.Attr, &a)
		return 0
	}
	a, err := stat()
	if err != nil {
		// Some remotes stat by path, which a removed file lacks.
		if a, err = n.goneAttr(err); err != nil {
			return n.errno(err)
		}
	} else {
		n.rememberAttr(&a)
	}
	fillAttr(&out.Attr, &a)
	n.cachedSize(&out.Attr)
	return 0
}

// goneAttr answers a GETATTR of an open file or directory whose remote
// file is gone from under the request, err being the remote's answer: a
// removed file stays usable through its open descriptors, and fstat(2) of
// one must not fail. A remote that cannot reach a removed file (a 9P
// server that stats by path, or a directory a 9P remote has no open fid
// of) answers ENOENT; the node then answers with its last known
// attributes, with no links left. Any other error, or a node that never
// saw its attributes, returns err.
func (n *node) goneAttr(err error) (backend.Attr, error) {
	if !errors.Is(err, syscall.ENOENT) {
		return backend.Attr{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attr.Mode == 0 { // never read: every file has a type
		return backend.Attr{}, err
	}
	a := n.attr
	a.Nlink = 0
	return a, nil
}
