package ninep

import (
	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// toAttr converts a getattr reply the way the FS's server needs: the
// generation is the QID version when the server puts birth times there.
func (fsys *FS) toAttr(qid p9.QID, valid p9.AttrMask, a p9.Attr) backend.Attr {
	b := toAttr(qid, valid, a)
	if fsys.genIsVersion {
		b.Gen = uint64(qid.Version)
	}
	fsys.mapAttr(&b)
	return b
}

// toAttr converts a 9P2000.L getattr reply. The inode number is the QID
// path. Gen is the birth time when the server reports one (it tells two
// files apart that had the same inode number at different times) and 1
// otherwise; the QID version is not used, because some servers change it
// on every write, which would make the same file look like a new one.
func toAttr(qid p9.QID, valid p9.AttrMask, a p9.Attr) backend.Attr {
	var b backend.Attr
	b.Ino = qid.Path
	b.Mode = uint32(a.Mode)
	b.Uid = uint32(a.UID)
	b.Gid = uint32(a.GID)
	b.Nlink = uint64(a.NLink)
	b.Rdev = uint64(a.RDev)
	b.Size = int64(a.Size)
	b.Blksize = int64(a.BlockSize)
	b.Blocks = int64(a.Blocks)
	b.Atim = unix.Timespec{Sec: int64(a.ATimeSeconds), Nsec: int64(a.ATimeNanoSeconds)}
	b.Mtim = unix.Timespec{Sec: int64(a.MTimeSeconds), Nsec: int64(a.MTimeNanoSeconds)}
	b.Ctim = unix.Timespec{Sec: int64(a.CTimeSeconds), Nsec: int64(a.CTimeNanoSeconds)}
	b.Gen = 1
	if valid.BTime && (a.BTimeSeconds != 0 || a.BTimeNanoSeconds != 0) {
		b.Gen = a.BTimeSeconds*1e9 + a.BTimeNanoSeconds
	}
	return b
}

// The open(2) flags of 9P2000.L (P9_DOTL_*): the wire uses these values
// whatever the client's architecture.
const (
	dotlCreate    = 0o100
	dotlExcl      = 0o200
	dotlTrunc     = 0o1000
	dotlAppend    = 0o2000
	dotlNonblock  = 0o4000
	dotlDsync     = 0o10000
	dotlDirectory = 0o200000
	dotlNofollow  = 0o400000
	dotlNoatime   = 0o1000000
	dotlSync      = 0o4000000
)

var dotlFlags = []struct{ local, wire int }{
	{unix.O_CREAT, dotlCreate},
	{unix.O_EXCL, dotlExcl},
	{unix.O_TRUNC, dotlTrunc},
	{unix.O_APPEND, dotlAppend},
	{unix.O_NONBLOCK, dotlNonblock},
	{unix.O_DSYNC, dotlDsync},
	{unix.O_DIRECTORY, dotlDirectory},
	{unix.O_NOFOLLOW, dotlNofollow},
	{unix.O_NOATIME, dotlNoatime},
	{unix.O_SYNC &^ unix.O_DSYNC, dotlSync &^ dotlDsync},
}

// toWire converts open(2) flags to 9P2000.L flags. Flags that mean nothing
// to a remote file (O_CLOEXEC, O_DIRECT: the data path's own buffers are
// not aligned) are dropped.
func toWire(flags int) p9.OpenFlags {
	w := flags & unix.O_ACCMODE
	for _, f := range dotlFlags {
		if flags&f.local == f.local {
			w |= f.wire
		}
	}
	return p9.OpenFlags(w)
}

// fromWire is toWire's inverse, for the server.
func fromWire(o p9.OpenFlags) int {
	w := int(o)
	flags := w & unix.O_ACCMODE
	for _, f := range dotlFlags {
		if w&f.wire == f.wire {
			flags |= f.local
		}
	}
	return flags
}

// direntMode is the file type of a readdir entry. Servers disagree on the
// entry's type byte (diod and Linux send d_type, gVisor-derived servers a
// QID type), so directories and symlinks come from the QID, which every
// server fills, and the byte is used only when it is an unambiguous d_type.
func direntMode(d p9.Dirent) uint32 {
	switch {
	case d.QID.Type&p9.TypeDir != 0:
		return unix.S_IFDIR
	case d.QID.Type&p9.TypeSymlink != 0:
		return unix.S_IFLNK
	}
	switch d.Type {
	case unix.DT_FIFO, unix.DT_CHR, unix.DT_BLK, unix.DT_SOCK:
		return uint32(d.Type) << 12
	}
	return unix.S_IFREG
}

// dtype is the d_type byte of a file mode, for readdir replies.
func dtype(mode uint32) p9.QIDType {
	return p9.QIDType((mode & unix.S_IFMT) >> 12)
}

// qidOf builds the QID a server reports for a file. Its version is the
// file's birth time folded to 32 bits (see birthVersion).
func qidOf(a *backend.Attr) p9.QID {
	q := p9.QID{Type: p9.FileMode(a.Mode).QIDType(), Path: a.Ino}
	if a.Gen > 1 {
		q.Version = birthVersion(a.Gen)
	}
	return q
}

// birthVersion folds a birth time in nanoseconds into a QID version. The
// gofer puts it in every QID, so a client learns a new file's generation
// from the create's reply alone, without asking for its attributes. It is
// never zero, which some servers use for "no version".
func birthVersion(gen uint64) uint32 {
	v := uint32(gen ^ gen>>32)
	if v == 0 {
		v = 1
	}
	return v
}

// versionIsBirth reports whether a server's QIDs carry birthVersion, from
// the export root's QID and attributes: its version is the fold of the
// birth time the server reports. Servers whose versions count changes
// (and those that report no birth time, diod) do not pass.
func versionIsBirth(qid p9.QID, valid p9.AttrMask, a p9.Attr) bool {
	if !valid.BTime || a.BTimeSeconds == 0 && a.BTimeNanoSeconds == 0 {
		return false
	}
	return qid.Version == birthVersion(a.BTimeSeconds*1e9+a.BTimeNanoSeconds)
}
