package datapath

import (
	"sync"

	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pinnedResult answers a READ from cached pages with no copy in the
// daemon: go-fuse sees Slices and writes the reply with one writev(2) from
// the pages themselves, then calls Done, which unpins them. A warm re-read
// without a host FD then costs one copy (the kernel's, into the reader's
// buffer) instead of two; a cold one from a local remote costs two (the
// read into the cache's pages, and the kernel's) instead of four, as the
// fill reads straight into the pages (cache.VectorReader).
type pinnedResult struct {
	p cache.Pinned
}

var pinnedPool = sync.Pool{New: func() any { return new(pinnedResult) }}

// pinnedRead returns the bytes of [off, off+n) as a pinned read result,
// cached already or filled first, or false when they could not all be
// cached and pinned.
func pinnedRead(c *cache.File, off int64, n int, ra *cache.Readahead) (fuse.ReadResult, bool) {
	r := pinnedPool.Get().(*pinnedResult)
	if _, ok := c.ReadPinned(&r.p, off, n, ra); ok {
		return r, true
	}
	if _, ok := c.FillPinned(&r.p, off, n, ra); ok {
		return r, true
	}
	pinnedPool.Put(r)
	return nil, false
}

func (r *pinnedResult) Size() int { return r.p.Len() }

// Slices implements go-fuse's vectored read result.
func (r *pinnedResult) Slices() ([][]byte, fuse.Status) { return r.p.Slices(), fuse.OK }

// Bytes copies the pinned bytes into buf, for a transport that cannot
// write vectors.
func (r *pinnedResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if cap(buf) < r.p.Len() {
		buf = make([]byte, r.p.Len())
	}
	buf = buf[:0]
	for _, s := range r.p.Slices() {
		buf = append(buf, s...)
	}
	return buf, fuse.OK
}

// Done unpins the pages; go-fuse calls it once the reply is written.
func (r *pinnedResult) Done() {
	r.p.Release()
	pinnedPool.Put(r)
}
