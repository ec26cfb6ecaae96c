package datapath

import (
	"sync/atomic"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
)

// sharedFile is one of two uses of a remote file: the handle of an open
// and the inode's page cache, which outlives it. Each use closes its own;
// the last close closes the file. Sharing the open's file spares the cache
// its own open, two round trips on a network remote for every file
// created or opened for writing.
type sharedFile struct {
	backend.File
	refs   *atomic.Int32
	closed atomic.Bool
}

// share returns two uses of f.
func share(f backend.File) (*sharedFile, *sharedFile) {
	refs := new(atomic.Int32)
	refs.Store(2)
	return &sharedFile{File: f, refs: refs}, &sharedFile{File: f, refs: refs}
}

func (s *sharedFile) Close() error {
	if s.closed.Swap(true) {
		return syscall.EBADF
	}
	if s.refs.Add(-1) == 0 {
		return s.File.Close()
	}
	return nil
}

// Prefetch keeps the file's readahead (backend.Prefetcher), which
// embedding the interface would hide.
func (s *sharedFile) Prefetch(off, length int64) {
	if p, ok := s.File.(backend.Prefetcher); ok {
		p.Prefetch(off, length)
	}
}

var _ backend.Prefetcher = (*sharedFile)(nil)
