package ninep

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// On an exclusive FS whose server makes files as asked (create.go), a
// regular file is created in the background too: Open with O_CREAT
// returns at once, and the create waits in the file's queue of deferred
// changes, ahead of its attribute changes and its close (deferred.go).
// An untar then waits for no round trip per file at all.
//
// The file's inode number cannot wait for the server's reply, so the FS
// gives it one of its own ("local": the top bit set, which inode numbers
// of real file systems do not use) and, once the server has answered,
// reports the server's number for that file as the local one, and its
// generation as 1 (local numbers are never reused). Hard links and later
// lookups of the file so keep the number the kernel was first told. The
// map of server numbers to local ones lasts as long as the FS, so it is
// bounded (maxLocalInos).
//
// What waits for the create: a call that reads or writes the file's data
// or asks for its attributes (the file's own calls wait for its queue); a
// call by name that reads, moves or removes the name or the directory
// above it, and a listing of that directory (settleName(s)). A create the
// server refuses (no space left, say) is reported by the next barrier,
// like any deferred change, and by every later call on the file.

// localInoBit marks inode numbers the FS made up.
const localInoBit = 1 << 63

// maxLocalInos bounds the files created in the background over an FS's
// life (the map of their numbers takes some 40 bytes each): after that,
// creates wait for the server again (one round trip each).
const maxLocalInos = 1 << 18

// createReq is a deferred create.
type createReq struct {
	dir   []string // the parent directory's components
	base  string
	flags int
	perm  uint32
}

// createLater opens a file to be created in the background, or returns
// nil when this create must be sent now: the FS is not exclusive, the
// server has not shown it makes files as asked, or the directory is not
// known to be plain (not set-group-ID).
func (fsys *FS) createLater(name string, dir []string, base string, flags int, perm uint32) *file {
	if !fsys.cfg.Exclusive {
		return nil
	}
	compute, _, _, blksize := fsys.newFiles.computed()
	if !compute {
		return nil
	}
	fsys.mu.Lock()
	s := fsys.cur
	fsys.mu.Unlock()
	if s == nil {
		return nil
	}
	mode, ok := s.dirs.modeOf(dir)
	if !ok || mode&unix.S_ISGID != 0 {
		return nil
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.nextLocal >= maxLocalInos {
		return nil
	}
	fsys.waitRoomLocked(0)
	fsys.nextLocal++
	ino := localInoBit | fsys.nextLocal
	f := &file{fsys: fsys, name: name, flags: flags, ino: ino, created: make(chan struct{})}
	a := fsys.computedAttr(p9.QID{Path: ino}, unix.S_IFREG|perm&07777, 1, 0, 0, blksize)
	a.Gen = 1
	f.fresh = a
	fsys.trackLocked(f)
	fsys.queueLocked(change{f: f, what: "create", create: &createReq{dir: dir, base: base, flags: flags, perm: perm}})
	return f
}

// sendCreate sends a deferred create, again while the server cannot be
// reached. A create that may have been applied before the connection
// broke and then finds the name taken opens what it made.
func (fsys *FS) sendCreate(c change) error {
	f, r := c.f, c.create
	err := fsys.sendRetrying(c, func(retried bool) error {
		return fsys.do(false, func(s *session) error {
			fid, _, err := s.dirFid(r.dir)
			if err != nil {
				return err
			}
			nf, qid, _, err := fid.Create(r.base, toWire(r.flags), p9.FileMode(r.perm&07777), createUID, createGID)
			if err != nil {
				clunk(fid)
				if !retried || !errors.Is(mapErr(err), syscall.EEXIST) {
					return err
				}
				return fsys.openCreated(s, f, r)
			}
			fsys.bindIno(qid.Path, f.ino)
			f.setFid(s, nf)
			return nil
		})
	})
	f.createDone(err)
	return err
}

// openCreated opens the file an earlier attempt of a create made.
func (fsys *FS) openCreated(s *session, f *file, r *createReq) error {
	parts := append(append([]string(nil), r.dir...), r.base)
	fid, err := s.walk(parts)
	if err != nil {
		return err
	}
	qid, _, err := fid.Open(toWire(r.flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)))
	if err != nil {
		clunk(fid)
		return err
	}
	fsys.bindIno(qid.Path, f.ino)
	f.setFid(s, fid)
	return nil
}

// createDone records the outcome of f's create and wakes its waiters.
func (f *file) createDone(err error) {
	if err != nil {
		f.createErr = fmt.Errorf("create %s: %w", f.name, err)
	}
	close(f.created)
}

// waitCreated waits until f's deferred create is done, for at most
// Config.Timeout, and returns its failure.
func (f *file) waitCreated() error {
	if f.created == nil {
		return nil
	}
	select {
	case <-f.created:
		return f.createErr
	default:
	}
	timer := time.NewTimer(f.fsys.cfg.Timeout)
	defer timer.Stop()
	select {
	case <-f.created:
		return f.createErr
	case <-timer.C:
		return &transportError{fmt.Sprintf("9P server %s: create of %s not sent for %v", f.fsys.cfg.Server, f.name, f.fsys.cfg.Timeout)}
	}
}

// createFailed reports whether f's deferred create is done and failed:
// the file never existed, and its name is not its.
func (f *file) createFailed() bool {
	if f.created == nil {
		return false
	}
	select {
	case <-f.created:
		return f.createErr != nil
	default:
		return false
	}
}

// bindIno makes the server's inode number ino report as local from now on.
func (fsys *FS) bindIno(ino, local uint64) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.inos == nil {
		fsys.inos = make(map[uint64]uint64)
	}
	fsys.inos[ino] = local
}

// localIno returns the number the FS reports for the server's inode
// number ino.
func (fsys *FS) localIno(ino uint64) uint64 {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if l, ok := fsys.inos[ino]; ok {
		return l
	}
	return ino
}

// mapAttr reports a's file by its local number, if it has one.
func (fsys *FS) mapAttr(a *backend.Attr) {
	if l := fsys.localIno(a.Ino); l != a.Ino {
		a.Ino, a.Gen = l, 1
	}
}

// The attribute changes an untar makes to the directories it made (their
// mode and times, set after their entries) are deferred too: they wait,
// in the background, for the creates queued beneath the directory, so
// that the server's directory times are the ones asked for, not those of
// the creates that land after them.

// madeDir is a directory the FS made: its inode number, and the file
// that stands for it in the queues of deferred changes.
type madeDir struct {
	ino uint64
	f   *file
}

// maxMadeDirs bounds the directories remembered.
const maxMadeDirs = 1 << 16

// rememberDir records that the FS made directory name with mode perm
// (on an exclusive FS). A set-group-ID directory is not remembered: the
// group of what is created in it depends on the order of the changes,
// which must then reach the server as they are made.
func (fsys *FS) rememberDir(name string, ino uint64, perm uint32) {
	if perm&unix.S_ISGID != 0 {
		return
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.madeDirs == nil {
		fsys.madeDirs = make(map[string]madeDir)
	}
	if len(fsys.madeDirs) >= maxMadeDirs {
		return
	}
	fsys.madeDirs[name] = madeDir{ino: ino, f: &file{fsys: fsys, name: name, ino: ino}}
}

// dirsRenamedLocked keeps the made directories' names current after a
// rename (a directory the rename replaced, empty, is gone).
//
// Preconditions: fsys.mu is held.
func (fsys *FS) dirsRenamedLocked(oldName, newName string) {
	var moved []madeDir
	for name, d := range fsys.madeDirs {
		switch {
		case hasPrefixPath(name, oldName):
			moved = append(moved, d)
			delete(fsys.madeDirs, name)
		case name == newName:
			delete(fsys.madeDirs, name)
		}
	}
	for _, d := range moved {
		d.f.name = newName + d.f.name[len(oldName):]
		fsys.madeDirs[d.f.name] = d
	}
}

// madeDirNamed returns the made directory name, if the setattr of mask
// and attr may be deferred for it. One that makes it set-group-ID may
// not, and the directory is forgotten (see rememberDir).
func (fsys *FS) madeDirNamed(name string, mask p9.SetAttrMask, attr p9.SetAttr) (madeDir, bool) {
	if !fsys.cfg.Exclusive {
		return madeDir{}, false
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	d, ok := fsys.madeDirs[name]
	if ok && mask.Permissions && uint32(attr.Permissions)&unix.S_ISGID != 0 {
		delete(fsys.madeDirs, name)
		return madeDir{}, false
	}
	return d, ok
}

// deferDirSetAttr queues a setattr of a directory the FS made, by name.
func (fsys *FS) deferDirSetAttr(d madeDir, what string, mask p9.SetAttrMask, attr p9.SetAttr) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fsys.waitRoomLocked(d.ino)
	fsys.queueLocked(change{f: d.f, what: what, mask: mask, attr: attr, byName: true})
}

// sendByName sends a deferred setattr of a directory, once nothing is
// queued beneath it.
func (fsys *FS) sendByName(c change) error {
	fsys.mu.Lock()
	dir := c.f.name
	fsys.mu.Unlock()
	err := fsys.waitDeferred(func() bool {
		for _, q := range fsys.deferred.queues {
			for _, o := range q {
				if strings.HasPrefix(o.f.name, dir+"/") {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return fsys.withFid(true, dir, func(_ *session, f p9.File) error {
		return f.SetAttr(c.mask, c.attr)
	})
}
