package ninep

import (
	"strings"
	"sync"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// Creating a file costs a walk before the create: Tlcreate turns the fid
// it is sent on (the directory's) into the new file's, so every create
// needs a fresh fid of the directory, and getting one is a round trip.
// On an exclusive session the walks are made ahead: the session keeps a
// walked fid of each directory it recently created in, and a couple of
// clones of it ready ("spares"), made again in the background while the
// create that took one waits for its reply. An untar then waits for one
// request per file instead of two.
//
// Only an exclusive session does this: a spare names the directory it was
// walked to, even if another client renames the directory afterwards. The
// session's own renames and removals forget the directories they touch.

const (
	// maxDirFids bounds the directories with walked fids kept.
	maxDirFids = 64
	// sparesPerDir is how many clones are kept ready per directory.
	sparesPerDir = 4
)

// dirFids is a session's cache of directory fids.
type dirFids struct {
	s *session

	mu    sync.Mutex
	dirs  map[string]*dirFid // by volume-relative name
	clock uint64             // ticks on each use, for eviction
}

// dirFid is one directory's walked fid and its spares.
type dirFid struct {
	name    string
	fid     p9.File   // nil until the walk completed
	mode    uint32    // the directory's mode, once fid is set
	spares  []p9.File // clones of fid, each for one create
	filling bool      // a fill is under way
	used    uint64    // dirFids.clock at the last use
}

func newDirFids(s *session) *dirFids {
	return &dirFids{s: s, dirs: make(map[string]*dirFid)}
}

// take returns a fresh fid of the directory parts that the caller owns
// (to create through, or to clunk), or nil when none is ready; either
// way the directory gets spares for the next calls. With a fid it
// returns the directory's mode.
func (d *dirFids) take(parts []string) (p9.File, uint32) {
	if d == nil {
		return nil, 0
	}
	name := strings.Join(parts, "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clock++
	e := d.dirs[name]
	if e == nil {
		d.evictLocked()
		e = &dirFid{name: name}
		d.dirs[name] = e
	}
	e.used = d.clock
	var f p9.File
	if n := len(e.spares); n > 0 {
		f = e.spares[n-1]
		e.spares = e.spares[:n-1]
	}
	if !e.filling {
		e.filling = true
		go d.fill(e, parts)
	}
	return f, e.mode
}

// fill walks to the directory if needed and clones spares until there
// are enough. A failure (the directory is gone, the session broke) drops
// the entry; the next create walks itself.
func (d *dirFids) fill(e *dirFid, parts []string) {
	d.mu.Lock()
	base := e.fid
	d.mu.Unlock()
	if base == nil {
		f, _, _, attr, err := d.s.walkStat(parts)
		if err != nil {
			d.drop(e)
			return
		}
		d.mu.Lock()
		if !d.cachedLocked(e, f) {
			d.mu.Unlock()
			return
		}
		e.fid, e.mode, base = f, uint32(attr.Mode), f
		d.mu.Unlock()
	}
	for {
		d.mu.Lock()
		if d.dirs[e.name] != e || len(e.spares) >= sparesPerDir {
			e.filling = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		_, c, err := base.Walk(nil)
		if err != nil {
			d.drop(e)
			return
		}
		d.mu.Lock()
		if !d.cachedLocked(e, c) {
			d.mu.Unlock()
			return
		}
		e.spares = append(e.spares, c)
		d.mu.Unlock()
	}
}

// cachedLocked reports whether e is still cached; if not, it clunks f,
// which a fill made for e.
//
// Preconditions: d.mu is held.
func (d *dirFids) cachedLocked(e *dirFid, f p9.File) bool {
	if d.dirs[e.name] != e {
		clunk(f)
		return false
	}
	return true
}

// drop forgets e if it is still cached.
func (d *dirFids) drop(e *dirFid) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs[e.name] == e {
		delete(d.dirs, e.name)
	}
	e.releaseLocked()
}

// forget drops the directories at or beneath each of names: they were
// renamed or removed.
func (d *dirFids) forget(names ...string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, e := range d.dirs {
		for _, n := range names {
			if hasPrefixPath(name, n) || n == "" {
				delete(d.dirs, name)
				e.releaseLocked()
				break
			}
		}
	}
}

// evictLocked makes room for one more directory by dropping the least
// recently used.
//
// Preconditions: d.mu is held.
func (d *dirFids) evictLocked() {
	if len(d.dirs) < maxDirFids {
		return
	}
	var oldest *dirFid
	for _, e := range d.dirs {
		if oldest == nil || e.used < oldest.used {
			oldest = e
		}
	}
	delete(d.dirs, oldest.name)
	oldest.releaseLocked()
}

// releaseLocked clunks e's fids; a fill under way sees e is no longer
// cached and clunks what it makes.
//
// Preconditions: the dirFids' mu is held.
func (e *dirFid) releaseLocked() {
	for _, c := range e.spares {
		clunk(c)
	}
	e.spares = nil
	if e.fid != nil {
		clunk(e.fid)
		e.fid = nil
	}
}

// dirFid returns a fid of the directory parts that the caller owns: a
// spare when one is ready, or a new walk. plain reports that the
// directory is known not to be set-group-ID (its new entries then get
// the group they are created with).
func (s *session) dirFid(parts []string) (_ p9.File, plain bool, _ error) {
	if f, mode := s.dirs.take(parts); f != nil {
		return f, mode&unix.S_ISGID == 0, nil
	}
	f, err := s.walk(parts)
	return f, false, err
}

// forgetDirs drops the live session's directory fids at or beneath names,
// before they are renamed or removed.
func (fsys *FS) forgetDirs(names ...string) {
	fsys.mu.Lock()
	s := fsys.cur
	fsys.mu.Unlock()
	if s != nil {
		s.dirs.forget(names...)
	}
}

// parentFid returns a fid of the directory parts to make or remove an
// entry in (not to create through, which consumes the fid): a spare when
// one is ready, else the root's own fid or a new walk. release gives it
// back.
func (s *session) parentFid(parts []string) (p9.File, func(), error) {
	f, release, _, err := s.parentFidMode(parts)
	return f, release, err
}

// parentFidMode is parentFid that also reports whether the directory is
// known not to be set-group-ID.
func (s *session) parentFidMode(parts []string) (_ p9.File, release func(), plain bool, _ error) {
	if f, mode := s.dirs.take(parts); f != nil {
		return f, func() { clunk(f) }, mode&unix.S_ISGID == 0, nil
	}
	f, release, err := s.walkTo(parts)
	return f, release, false, err
}

// modeOf returns the mode of the directory parts if its fid is cached.
func (d *dirFids) modeOf(parts []string) (uint32, bool) {
	if d == nil {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.dirs[strings.Join(parts, "/")]
	if e == nil || e.fid == nil {
		return 0, false
	}
	return e.mode, true
}

// prepare starts walking to the directory parts (just made, say) so
// that creates in it find its fid and spares ready.
func (d *dirFids) prepare(parts []string) {
	if f, _ := d.take(parts); f != nil {
		d.mu.Lock()
		if e := d.dirs[strings.Join(parts, "/")]; e != nil {
			e.spares = append(e.spares, f)
		} else {
			clunk(f)
		}
		d.mu.Unlock()
	}
}
