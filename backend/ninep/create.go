package ninep

import (
	"sync"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// The data path answers a create with the new file's attributes, which
// costs a getattr after the create: a second round trip per file. On an
// exclusive FS they are computed instead, once the server has shown that
// it makes files the way it is asked to:
//   - the inode number is the create's QID path, and the generation its
//     QID version when the server puts birth times there (the gofer does;
//     see birthVersion) or 1 when the server reports no birth time (diod);
//   - mode, owner and group are those the create asked for (the daemon's
//     uid and gid), in a directory known not to be set-group-ID;
//   - one link, no data, the client's clock for the times (as for the
//     directories the volume makes; see docs/9p.md).
//
// The first create in a known directory asks the server and compares; if
// anything differs (a server that applies a umask, creates as another
// user, or versions files otherwise), every later create asks too.

// newAttrs is what an FS learned about how its server makes files (or
// directories).
type newAttrs struct {
	mu      sync.Mutex
	state   int   // undecided, deciding (the first is compared) or decided
	compute bool  // decided: attributes can be computed
	size    int64 // the size of a new one (a directory's)
	blocks  int64 // the blocks it takes
	blksize int64 // the server's block size for new ones
}

const (
	undecided = iota
	deciding
	decided
)

// resolve returns the attributes of a new file: computed by compute
// (from the size, blocks and block size of new ones) once the server is
// known to make them as asked, else asked for by ask (nil if that
// fails). The first one asked for decides, by comparing the two.
func (na *newAttrs) resolve(compute func(size, blocks, blksize int64) *backend.Attr, ask func() *backend.Attr) *backend.Attr {
	na.mu.Lock()
	state, ok, size, blocks, blksize := na.state, na.compute, na.size, na.blocks, na.blksize
	if state == undecided {
		na.state = deciding
	}
	na.mu.Unlock()
	if state == decided && ok {
		return compute(size, blocks, blksize)
	}
	asked := ask()
	if state == undecided {
		na.decide(asked, compute)
	}
	return asked
}

// computed reports whether attributes can be computed, and the size,
// blocks and block size of a new one.
func (na *newAttrs) computed() (ok bool, size, blocks, blksize int64) {
	na.mu.Lock()
	defer na.mu.Unlock()
	return na.state == decided && na.compute, na.size, na.blocks, na.blksize
}

// decide records whether asked, the attributes the server reported for
// the first one, matches what compute makes of them. Without an answer
// the next one decides.
func (na *newAttrs) decide(asked *backend.Attr, compute func(size, blocks, blksize int64) *backend.Attr) {
	na.mu.Lock()
	defer na.mu.Unlock()
	if asked == nil {
		na.state = undecided
		return
	}
	computed := compute(asked.Size, asked.Blocks, asked.Blksize)
	na.compute = asked.Ino == computed.Ino && asked.Gen == computed.Gen &&
		asked.Mode == computed.Mode && asked.Uid == computed.Uid &&
		asked.Gid == computed.Gid && asked.Nlink == computed.Nlink &&
		asked.Size == computed.Size
	na.size, na.blocks, na.blksize = asked.Size, asked.Blocks, asked.Blksize
	na.state = decided
}

// create makes and opens a regular file. The server creates exclusively
// when asked to (O_EXCL is sent along); the data path always asks.
func (fsys *FS) create(name string, flags int, perm uint32) (backend.File, error) {
	dir, base, err := splitParent(name)
	if err != nil {
		return nil, err
	}
	if f := fsys.createLater(name, dir, base, flags, perm); f != nil {
		return f, nil
	}
	f := &file{fsys: fsys, name: name, flags: flags}
	err = fsys.do(false, func(s *session) error {
		// Tlcreate turns the directory's fid into the new file's, so
		// it must be a fid of our own, never the root's.
		fid, plainDir, err := s.dirFid(dir)
		if err != nil {
			return err
		}
		nf, qid, _, err := fid.Create(base, toWire(flags), p9.FileMode(perm&07777), createUID, createGID)
		if err != nil {
			clunk(fid)
			return err
		}
		f.ino = qid.Path
		f.setFid(s, nf)
		if fsys.cfg.Exclusive && plainDir {
			f.fresh = fsys.newFileAttr(nf, qid, perm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fsys.track(f)
	return f, nil
}

// newFileAttr returns the attributes of a file just created in a
// directory that is not set-group-ID, computed when the server is known
// to make files as asked, else asked for (nil if that fails: the caller's
// Stat asks again).
func (fsys *FS) newFileAttr(fid p9.File, qid p9.QID, perm uint32) *backend.Attr {
	return fsys.newFiles.resolve(func(_, _, blksize int64) *backend.Attr {
		return fsys.computedAttr(qid, unix.S_IFREG|perm&07777, 1, 0, 0, blksize)
	}, func() *backend.Attr { return fsys.askAttr(fid) })
}

// newDirAttr is a directory the FS made and its attributes.
type newDirAttr struct {
	name string
	attr backend.Attr
}

// newDir records the attributes of the directory name just made in a
// directory that is not set-group-ID, for the Lstat that follows
// (takeNewDir): computed when the server is known to make directories as
// asked, else asked for.
func (fsys *FS) newDir(s *session, name string, qid p9.QID, perm uint32) {
	a := fsys.newDirs.resolve(func(size, blocks, blksize int64) *backend.Attr {
		return fsys.computedAttr(qid, unix.S_IFDIR|perm&07777, 2, size, blocks, blksize)
	}, func() *backend.Attr {
		parts, _ := components(name)
		f, aq, valid, attr, err := s.walkStat(parts)
		if err != nil {
			return nil
		}
		clunk(f)
		b := fsys.toAttr(aq, valid, attr)
		return &b
	})
	if a == nil {
		return
	}
	fsys.mu.Lock()
	fsys.lastDir = &newDirAttr{name: name, attr: *a}
	fsys.mu.Unlock()
}

// takeNewDir returns the attributes newDir recorded for name, once.
func (fsys *FS) takeNewDir(name string) (backend.Attr, bool) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	d := fsys.lastDir
	if d == nil || d.name != name {
		return backend.Attr{}, false
	}
	fsys.lastDir = nil
	return d.attr, true
}

// forgetNewDir drops what newDir recorded: a change by name may have
// changed it.
func (fsys *FS) forgetNewDir() {
	fsys.mu.Lock()
	fsys.lastDir = nil
	fsys.mu.Unlock()
}

// computedAttr is what a new file's attributes are when the server makes
// it as asked.
func (fsys *FS) computedAttr(qid p9.QID, mode uint32, nlink uint64, size, blocks, blksize int64) *backend.Attr {
	now := unix.NsecToTimespec(time.Now().UnixNano())
	gen := uint64(1)
	if fsys.genIsVersion {
		gen = uint64(qid.Version)
	}
	a := &backend.Attr{Gen: gen}
	a.Ino = qid.Path
	a.Mode = mode
	a.Uid, a.Gid = uint32(createUID), uint32(createGID)
	a.Nlink = nlink
	a.Size = size
	a.Blocks = blocks
	a.Blksize = blksize
	a.Atim, a.Mtim, a.Ctim = now, now, now
	return a
}

// askAttr asks the server for an open fid's attributes, nil on failure.
func (fsys *FS) askAttr(fid p9.File) *backend.Attr {
	qid, valid, attr, err := fid.GetAttr(p9.AttrMaskAll)
	if err != nil {
		return nil
	}
	a := fsys.toAttr(qid, valid, attr)
	return &a
}
