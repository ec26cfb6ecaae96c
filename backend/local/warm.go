package local

import (
	"sync"

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
// One goroutine per Root runs while directories are queued and exits when
// the queue is empty.
type warmer struct {
	mu sync.Mutex
	// queue holds directory names, the next to warm last (a walk goes
	// depth first, so the directory listed last is entered first).
	// Guarded by mu.
	queue []string
	// running is set while the goroutine runs. Guarded by mu.
	running bool
	// closed is set when the Root closes; nothing is queued after.
	// Guarded by mu.
	closed bool
	done   sync.WaitGroup // the goroutine, for Close
}

var _ backend.DirPrefetcher = (*Root)(nil)

// PrefetchDirs queues the directories names for warming, the first name
// to be warmed first. It does not block.
func (r *Root) PrefetchDirs(names []string) {
	if r.warm.push(names) {
		go r.warmLoop()
	}
}

// push queues names and tells whether the caller must start the
// goroutine (it was not running).
func (w *warmer) push(names []string) (start bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(names) == 0 {
		return false
	}
	for i := len(names) - 1; i >= 0; i-- {
		w.queue = append(w.queue, names[i])
	}
	if over := len(w.queue) - maxWarmQueue; over > 0 {
		w.queue = append(w.queue[:0], w.queue[over:]...)
	}
	if w.running {
		return false
	}
	w.running = true
	w.done.Add(1)
	return true
}

func (r *Root) warmLoop() {
	w := &r.warm
	defer w.done.Done()
	for {
		w.mu.Lock()
		n := len(w.queue)
		if n == 0 || w.closed {
			w.running = false
			w.mu.Unlock()
			return
		}
		name := w.queue[n-1]
		w.queue = w.queue[:n-1]
		w.mu.Unlock()
		r.warmDir(name)
	}
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
		if r.warmClosed() {
			return
		}
		unix.Statx(fd, e.Name, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx)
	}
}

func (r *Root) warmClosed() bool {
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	return r.warm.closed
}

// stopWarming drops the queue and waits for the goroutine, which uses the
// Root's descriptor.
func (r *Root) stopWarming() {
	r.warm.mu.Lock()
	r.warm.closed = true
	r.warm.queue = nil
	r.warm.mu.Unlock()
	r.warm.done.Wait()
}
