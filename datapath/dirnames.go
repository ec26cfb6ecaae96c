package datapath

import (
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// On an exclusive volume nobody else changes the remote, so a directory
// the volume made itself holds exactly the entries made in it through the
// volume since. Keeping their names lets the lookup of any other name
// fail at once instead of asking the server: an untar or a build looks up
// every name it is about to create, and over a network each lookup is a
// round trip.
//
// The names are a cache of the remote's state, never a replacement: a
// name in the set is still looked up on the remote. Any error of a change
// in the directory (the server may or may not have applied it) makes the
// directory's names unknown again, as does the kernel forgetting the
// directory (its node goes).

// startEmpty records that n is a directory the volume has just made, with
// attributes a (its entries change them, and the volume makes every
// change: see dirChangedLocked).
func (n *node) startEmpty(a *backend.Attr) {
	if n.vol.opts.Mode != Exclusive {
		return
	}
	n.mu.Lock()
	n.names = make(map[string]struct{})
	n.attr, n.attrOK = *a, true
	n.mu.Unlock()
}

// knownAbsent reports whether n is known to have no entry called name.
func (n *node) knownAbsent(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil {
		return false
	}
	_, ok := n.names[name]
	return !ok
}

// entryChanged records the outcome of a change of n's entry name: it is
// there now (present) or gone; isDir says it is, or may be, a directory.
// err != nil makes n's entries and attributes unknown.
func (n *node) entryChanged(name string, present, isDir bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil {
		return
	}
	if err != nil {
		n.names, n.attrOK = nil, false
		return
	}
	if present {
		n.names[name] = struct{}{}
	} else {
		delete(n.names, name)
	}
	n.dirChangedLocked(isDir)
}

// dirChangedLocked updates the remembered attributes of directory n after
// a change of its entries: mtime and ctime are now, on the client's clock
// like every time of an exclusive volume. A subdirectory's going (or
// coming by a rename) changes nlink too; rather than count, n then
// forgets them (a mkdir counts: subdirAdded). The
// size is left as it was (a directory's size is the server's own
// business).
//
// Preconditions: n.mu is locked.
func (n *node) dirChangedLocked(isDir bool) {
	if !n.attrOK {
		return
	}
	if isDir {
		n.attrOK = false
		return
	}
	now := unix.NsecToTimespec(time.Now().UnixNano())
	n.attr.Mtim, n.attr.Ctim = now, now
}

// subdirAdded records that a subdirectory was made in n, which adds one
// to n's link count (its ".."). A server whose directories do not count
// their subdirectories (link count 1, as on btrfs) makes n forget its
// attributes instead.
func (n *node) subdirAdded() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.attrOK {
		return
	}
	if n.attr.Nlink < 2 {
		n.attrOK = false
		return
	}
	n.attr.Nlink++
}

// childIsDir tells whether n's child name is, or may be, a directory.
func (n *node) childIsDir(name string) bool {
	c := n.GetChild(name)
	return c == nil || c.StableAttr().Mode&unix.S_IFMT == unix.S_IFDIR
}
