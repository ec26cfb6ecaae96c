package datapath

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The daemon creates remote files as root, but they belong to the caller.
// Giving a file away after creating it under its final name would leave a
// window in which another writer of the remote (shared mode) may replace
// the name with a file of its own, which a chown by name would then hand
// to the caller. So when the owner must change, the entry is made under a
// random temporary name in the same directory (same file system, same
// set-group-ID inheritance), given to the caller there, and renamed into
// place with RENAME_NOREPLACE: the name never shows a file of the wrong
// owner, and a file someone else made under it is never touched.

// tempName returns an unguessable name next to name.
func tempName(parent *node) string {
	var b [12]byte
	rand.Read(b[:])
	return parent.childName(".goferfs-new-" + hex.EncodeToString(b[:]))
}

// daemonUID and daemonGID are who the daemon creates files as; they do not
// change while it runs, so creates need not ask the kernel each time.
var daemonUID, daemonGID = uint32(unix.Geteuid()), uint32(unix.Getegid())

// owner is who a new file must belong to.
type owner struct {
	uid, gid int // gid -1: keep what the kernel chose (set-group-ID parent)
}

// ownerFor returns the owner for a file the caller asked for in parent,
// and false when the daemon's own uid and gid are already right.
func (v *Volume) ownerFor(ctx context.Context, parent *node) (owner, bool, error) {
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return owner{}, false, nil
	}
	if caller.Uid == daemonUID && caller.Gid == daemonGID {
		return owner{}, false, nil
	}
	o := owner{uid: int(caller.Uid), gid: int(caller.Gid)}
	if caller.Gid != daemonGID {
		pa, err := v.fs.Lstat(parent.name())
		if err != nil {
			return owner{}, false, err
		}
		if pa.Mode&unix.S_ISGID != 0 {
			o.gid = -1 // inherited from the directory
		}
	}
	return o, true, nil
}

// createOwned makes the entry name in parent with mk (which creates at the
// name it is given, with the mode it is given, and may return an open file
// of it) and gives it to the caller. mode is what the caller asked for. It
// returns the new entry's attributes and mk's file, if any. An existing
// name is EEXIST.
//
// A file the caller asked set-user-ID or set-group-ID is made without
// those bits and given them after the chown, which would clear them: the
// daemon never makes a set-ID file of its own, not even for a moment, and
// if giving the file away fails it never gets them.
func (v *Volume) createOwned(ctx context.Context, parent *node, name string, mode uint32,
	mk func(at string, mode uint32) (backend.File, error)) (backend.Attr, backend.File, error) {
	o, chown, err := v.ownerFor(ctx, parent)
	if err != nil {
		return backend.Attr{}, nil, err
	}
	if !chown {
		f, err := mk(name, mode)
		if err != nil {
			return backend.Attr{}, nil, err
		}
		return statNew(v.fs, f, name)
	}
	setID := mode & (unix.S_ISUID | unix.S_ISGID)
	tmp := tempName(parent)
	f, err := mk(tmp, mode&^setID)
	if err != nil {
		return backend.Attr{}, nil, err
	}
	undo := func(err error) (backend.Attr, backend.File, error) {
		if f != nil {
			f.Close()
		}
		if rerr := v.fs.Unlink(tmp); errors.Is(rerr, syscall.EISDIR) {
			v.fs.Rmdir(tmp)
		}
		return backend.Attr{}, nil, err
	}
	if f != nil {
		err = f.Chown(o.uid, o.gid)
	} else {
		err = v.fs.Chown(tmp, o.uid, o.gid)
	}
	if err != nil {
		return undo(err)
	}
	if setID != 0 {
		if f != nil {
			err = f.Chmod(mode & 07777)
		} else {
			err = v.fs.Chmod(tmp, mode&07777)
		}
		if err != nil {
			return undo(err)
		}
	}
	if err := v.fs.Rename(tmp, name, unix.RENAME_NOREPLACE); err != nil {
		return undo(err)
	}
	return statNew(v.fs, f, name)
}

// statNew returns the attributes of a new entry and its open file, closing
// the file if the entry cannot be stat'ed.
func statNew(fsys backend.FS, f backend.File, name string) (backend.Attr, backend.File, error) {
	var a backend.Attr
	var err error
	if f != nil {
		a, err = f.Stat()
	} else {
		a, err = fsys.Lstat(name)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return backend.Attr{}, nil, err
	}
	return a, f, nil
}
