package local

import (
	"sort"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// Reading ahead across files.
//
// The host reads ahead within a file, never across files, so a reader
// that opens the files of a directory one after another (cat, grep -r,
// tar c, a build reading its sources, find | xargs) waits on the disk
// once per file. Through the mount that wait comes on top of the OPEN
// and RELEASE round trips instead of overlapping anything.
//
// So when the opens for reading of a directory's files go forward
// through its listing, in the order the directory lists them (a tree
// walk) or in name order (a shell glob, a sorted file list), the files
// after the latest one get the host's readahead (POSIX_FADV_WILLNEED of
// their start), and their data is on its way while the reader is still
// on this one. Like the warmer, this only fills the host's page cache:
// the daemon caches nothing, so every interop mode stays as coherent as
// without it.
const (
	// siblingsAhead is how many files are read ahead of the reader, and
	// how far past the previous open the next may land to count as going
	// forward (a reader that skips some files still reads in order).
	siblingsAhead = 8
	// siblingBytes is how much of each file is read ahead: the kernel's
	// first readahead window, all of a small file.
	siblingBytes = 128 << 10
	// maxSiblingDirs is how many directories are followed at once.
	maxSiblingDirs = 8
	// maxSiblingNames: a larger directory is not followed, which bounds
	// the memory and the search for a name in its listing.
	maxSiblingNames = 4096
	// maxSiblingQueue bounds the opens waiting to be looked at.
	maxSiblingQueue = 256
)

// siblings follows the opens for reading of a Root. Its goroutine owns
// dirs.
type siblings struct {
	q hintQueue
	// dirs are the directories followed, the most recently used last.
	dirs []*dirReader
	// readAhead, when set, is called for each file read ahead (tests).
	readAhead func(name string)
}

// dirReader is the reader of one directory as its opens show it, in each
// of the orders a reader may follow.
type dirReader struct {
	dir    string
	orders [2]fileOrder // as listed, and by name
}

// fileOrder is one order of a directory's regular files and where the
// reader is in it.
type fileOrder struct {
	names []string
	// last is the index of the latest file opened, -1 before any.
	last int
	// streak counts the opens in a row that went forward.
	streak int
	// ahead is the index of the first file not yet read ahead.
	ahead int
}

var _ backend.SiblingPrefetcher = (*Root)(nil)

// OpenedForRead queues the open of name for the siblings' goroutine. It
// does not block.
func (r *Root) OpenedForRead(name string) {
	if r.siblings.q.push(maxSiblingQueue, name) {
		go r.siblings.q.work(true, r.followOpen)
	}
}

// followOpen looks at one open and, when it is the second or later in a
// row to go forward in one of its directory's orders, reads ahead the
// files after it in that order.
func (r *Root) followOpen(name string) {
	dir, base, err := splitName(name)
	if err != nil {
		return
	}
	d := r.siblings.reader(dir, r.listFiles)
	// Every order follows every open, so that each knows where the
	// reader is; the files come from the first that has some.
	var next []string
	for k := range d.orders {
		if more := d.orders[k].step(base); len(next) == 0 {
			next = more
		}
	}
	for _, n := range next {
		if r.siblings.q.isClosed() {
			return
		}
		r.readAheadFile(joinName(dir, n))
	}
}

// step moves the reader to name and returns the files to read ahead now.
func (o *fileOrder) step(name string) []string {
	i := o.index(name)
	if i < 0 {
		return nil
	}
	if i > o.last && i-o.last <= siblingsAhead {
		o.streak++
	} else {
		o.streak = 0
	}
	o.last = i
	if o.streak < 2 {
		// One open says little about order; two in a row going
		// forward make a reader worth reading ahead of.
		return nil
	}
	start, end := max(i+1, o.ahead), min(i+1+siblingsAhead, len(o.names))
	if start >= end {
		return nil
	}
	o.ahead = end
	return o.names[start:end]
}

// index returns the index of name, looking after the latest open first
// (where a reader going forward opens next), or -1.
func (o *fileOrder) index(name string) int {
	for i := o.last + 1; i < len(o.names); i++ {
		if o.names[i] == name {
			return i
		}
	}
	for i := 0; i <= o.last && i < len(o.names); i++ {
		if o.names[i] == name {
			return i
		}
	}
	return -1
}

// reader returns the reader of dir, listing the directory with list when
// it is new, makes it the most recently used, and forgets the least
// recently used beyond maxSiblingDirs.
func (s *siblings) reader(dir string, list func(string) []string) *dirReader {
	for i, d := range s.dirs {
		if d.dir == dir {
			copy(s.dirs[i:], s.dirs[i+1:])
			s.dirs[len(s.dirs)-1] = d
			return d
		}
	}
	if len(s.dirs) == maxSiblingDirs {
		s.dirs = append(s.dirs[:0], s.dirs[1:]...)
	}
	listed := list(dir)
	sorted := append([]string(nil), listed...)
	sort.Strings(sorted)
	d := &dirReader{dir: dir, orders: [2]fileOrder{{names: listed, last: -1}, {names: sorted, last: -1}}}
	s.dirs = append(s.dirs, d)
	return d
}

// listFiles returns the names of the directory name's regular files in
// the order it lists them, or nil if it cannot be read or holds too many.
func (r *Root) listFiles(name string) []string {
	entries, err := r.ReadDir(name)
	if err != nil || len(entries) > maxSiblingNames {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.Mode&unix.S_IFMT == unix.S_IFREG {
			names = append(names, e.Name)
		}
	}
	return names
}

// readAheadFile starts the host's readahead of the start of the file
// name, if it is a regular file. The name was a regular file when it was
// listed, but may be anything by now, and opening a device or a FIFO can
// have effects of its own: so the name is opened by path only, checked,
// and only then opened for reading, through that descriptor.
func (r *Root) readAheadFile(name string) {
	err := r.atNode(name, func(fd int, procPath string) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return unix.EINVAL
		}
		rfd, err := unix.Open(procPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.Fadvise(rfd, 0, siblingBytes, unix.FADV_WILLNEED)
		return unix.Close(rfd)
	})
	if f := r.siblings.readAhead; f != nil && err == nil {
		f(name)
	}
}

// joinName joins a directory name from splitName and a base name.
func joinName(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}
