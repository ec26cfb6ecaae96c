package datapath

import (
	"errors"
	"fmt"
	"sync"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// The daemon's page cache serves a regular file's data when the kernel
// cannot do I/O on the backing file itself (no host FD, or ForcePageCache)
// and the mode caches data (exclusive, writethrough). One cache.File per
// inode is shared by all of its open handles, so every pod on the node
// sees the same pages.

var (
	defaultBudgetOnce sync.Once
	defaultBudget     *cache.Budget
)

// DefaultBudget returns the process-wide page cache budget, created on
// first use with cache.DefaultBudgetBytes. All volumes of a node plugin
// share it unless Options.Budget says otherwise.
func DefaultBudget() *cache.Budget {
	defaultBudgetOnce.Do(func() {
		defaultBudget = NewBudget(cache.DefaultBudgetBytes())
	})
	return defaultBudget
}

// NewBudget returns a page cache budget of limit bytes whose eviction
// writeback errors are logged (C1: the data stays dirty and cached).
func NewBudget(limit int64) *cache.Budget {
	return cache.NewBudget(limit, func(err error) {
		klog.ErrorS(err, "Page cache writeback on eviction failed; the data stays dirty")
	})
}

// nodeCache is the page cache of one inode and the remote file it reads
// and writes through.
type nodeCache struct {
	file   *cache.File
	remote backend.File
	cr     *cacheRemote // remote as the cache sees it

	// mu serializes closing with the volume's syncs, which may run while
	// the kernel forgets the inode.
	mu     sync.Mutex
	closed bool // guarded by mu
}

// sync writes back and syncs the cache, unless it was closed.
func (c *nodeCache) sync() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.file.Sync()
}

// close writes back and drops the cache, then closes its remote file. On a
// writeback error it stays open, with its dirty data.
func (c *nodeCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if err := c.file.Close(); err != nil {
		return err
	}
	c.closed = true
	return c.remote.Close()
}

// usesCache tells whether opens of regular files go through the daemon's
// page cache on this volume.
func (v *Volume) usesCache(h *handle) bool {
	return h.host < 0 && v.opts.Mode != Shared && h.node.isRegular()
}

// fileCache returns the node's page cache, creating it on first use from
// the remote file called name (a new node is not in the tree until its
// Create returns, so the caller names it). If the caller's own open of the
// file, f, is readable and writable, the cache shares it rather than
// opening the file again (two round trips on a network remote), and a
// known size (>= 0) spares it asking the remote.
func (n *node) fileCache(name string, f backend.File, rdwr bool, size int64) (*cache.File, backend.File, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cache != nil {
		return n.cache.file, f, nil
	}
	var remote backend.File
	if rdwr {
		f, remote = share(f)
	} else {
		// The cache writes back whatever any handle wrote, so it needs
		// its own read-write descriptor, independent of the handles'
		// lifetimes.
		var err error
		remote, err = n.vol.fs.Open(name, unix.O_RDWR, 0)
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EPERM) {
			remote, err = n.vol.fs.Open(name, unix.O_RDONLY, 0)
		}
		if err != nil {
			return nil, f, err
		}
		size = -1 // the size may have changed since the caller's stat
	}
	opts := cache.Options{
		Counters: &n.vol.cacheCounters,
		// An exclusive write returns once the data is in the cache:
		// whole pages the kernel writes back stay dirty here until
		// writeback succeeds, instead of failing the kernel's writeback
		// (which drops them) when the remote is away (C1).
		BufferGapWrites: n.vol.opts.Mode == Exclusive,
		AsyncReadahead:  true,
	}
	cr := &cacheRemote{f: remote}
	var cremote cache.Remote = cr
	if v, ok := vectorReaderOf(remote); ok {
		cremote = vectorRemote{cr, v}
	}
	var cf *cache.File
	var err error
	if size >= 0 {
		cf, err = cache.NewFileOfSize(cremote, n.vol.budget, size, opts)
	} else {
		cf, err = cache.NewFile(cremote, n.vol.budget, opts)
	}
	if err != nil {
		remote.Close()
		return nil, f, err
	}
	n.cache = &nodeCache{file: cf, remote: remote, cr: cr}
	n.vol.trackCache(n.cache)
	return cf, f, nil
}

// cachedFile returns the node's page cache if it has one.
func (n *node) cachedFile() *cache.File {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cache == nil {
		return nil
	}
	return n.cache.file
}

var _ fs.NodeOnForgetter = (*node)(nil)

// OnForget drops the page cache once the kernel forgets the inode: no
// handle or lookup can reach it any more. Dirty data is written back first
// (C2); if that fails the cache stays with the volume, which retries at
// the next sync and at unmount, so nothing is dropped.
func (n *node) OnForget() {
	n.mu.Lock()
	c := n.cache
	n.cache = nil
	n.mu.Unlock()
	if c != nil {
		n.vol.closeCache(c)
	}
}

func (v *Volume) trackCache(c *nodeCache) {
	v.cachesMu.Lock()
	defer v.cachesMu.Unlock()
	v.caches[c] = struct{}{}
}

// closeCache writes back and drops c; on failure it keeps c tracked.
func (v *Volume) closeCache(c *nodeCache) {
	if err := c.close(); err != nil {
		klog.ErrorS(err, "Writeback of a forgotten file failed; retrying at the next sync", "mountpoint", v.mountpoint)
		return
	}
	v.cachesMu.Lock()
	delete(v.caches, c)
	v.cachesMu.Unlock()
}

// syncParallel bounds the files syncCaches writes back at once.
const syncParallel = 8

// syncCaches writes back every dirty page of the volume and syncs the
// remote files (C2). It tries every file and reports every failure.
func (v *Volume) syncCaches() error {
	v.cachesMu.Lock()
	caches := make([]*nodeCache, 0, len(v.caches))
	for c := range v.caches {
		caches = append(caches, c)
	}
	v.cachesMu.Unlock()
	// Files are written back side by side: over a network each one's
	// writes and fsync wait for replies, and the connection carries
	// several requests at once.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan *nodeCache)
	)
	for range min(syncParallel, len(caches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if err := c.sync(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range caches {
		next <- c
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("write back %d of %d cached files: %w", len(errs), len(caches), errors.Join(errs...))
	}
	return nil
}

// settleRemote waits until a remote that sends changes in the background
// (backend.Settler) has sent all of them, and returns the first it
// refused since the last call.
func (v *Volume) settleRemote() error {
	if s, ok := v.fs.(backend.Settler); ok {
		return s.Settle()
	}
	return nil
}

// dropCaches releases every cache after the session ended; Unmount has
// written them back.
func (v *Volume) dropCaches() {
	v.cachesMu.Lock()
	defer v.cachesMu.Unlock()
	for c := range v.caches {
		if err := c.close(); err != nil {
			klog.ErrorS(err, "Dirty data left in the page cache of an unmounted volume", "mountpoint", v.mountpoint)
		}
		delete(v.caches, c)
	}
}
