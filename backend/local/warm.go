package local

import (
	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// maxWarmQueue bounds the directories waiting to be warmed. When a walk
// lists directories faster than they are warmed, the oldest are dropped:
// the walk has most likely passed them already.
const maxWarmQueue = 256

// warmer reads directories ahead of a tree walk, so that their listing
// and the statx of each entry, when the walk gets there, find the host's
// dentry, inode and directory block caches warm instead of going to disk.
//
// Why: listing a directory through the mount costs the daemon a getdents
// and one statx per entry (READDIRPLUS). With cold host caches that ext4
// work was 40% of the daemon's CPU during a stat of every file of the Go
// tree, all of it on the walker's critical path, while the second CPU
// idled. Warming only fills the host kernel's caches; the daemon caches
// nothing, so every interop mode stays as coherent as without it.
//
// The queue is taken newest first: a walk goes depth first, so the
// directories listed last are entered first.
type warmer struct{ q hintQueue }

var _ backend.DirPrefetcher = (*Root)(nil)

// PrefetchDirs queues the directories names for warming, the first name
// to be warmed first. It does not block.
func (r *Root) PrefetchDirs(names []string) {
	if r.warm.push(names) {
		go r.warm.q.work(false, r.warmDir)
	}
}

// push queues names, the first to be taken first, and tells whether the
// caller must start the goroutine.
func (w *warmer) push(names []string) (start bool) {
	rev := make([]string, len(names))
	for i, n := range names {
		rev[len(names)-1-i] = n
	}
	return w.q.push(maxWarmQueue, rev...)
}

// warmDir lists the directory name and stats each entry, discarding the
// results. Errors are ignored: the walk itself will meet and report them.
func (r *Root) warmDir(name string) {
	fd, err := openBeneath(r.fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	d := dir{fd: fd}
	entries, err := d.ReadDir()
	if err != nil {
		return
	}
	var stx unix.Statx_t
	for _, e := range entries {
		if r.warm.q.isClosed() {
			return
		}
		unix.Statx(fd, e.Name, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx)
	}
}
