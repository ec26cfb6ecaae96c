package ninep

import (
	"errors"
	"syscall"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/hugelgupf/p9/p9"
)

var _ backend.DirSyncer = (*FS)(nil)

// SyncDir makes the entries of directory name durable: it opens a fid of
// the directory for reading and sends Tfsync on it, which the gofer (an
// fsync(2) of the directory) and diod both accept.
//
// On an exclusive FS it is first a barrier of the deferred changes (rule
// N3), of the whole FS, as syncfs is: a database that fsyncs its
// directory after a create or rename relies on every change it made
// beneath it being on the server, and the queues do not know which
// changes a directory's durability depends on (a file created in it and
// then renamed into another, say). It returns the first failure of a
// deferred change since the last barrier, like Settle.
//
// A directory that no longer exists has no entries left to make durable
// (its removal is its parent's to sync): that is not an error, as on
// Linux, where fsync of a removed directory succeeds.
func (fsys *FS) SyncDir(name string) error {
	parts, err := components(name)
	if err != nil {
		return err
	}
	if err := fsys.Settle(); err != nil {
		return err
	}
	err = fsys.do(true, func(s *session) error {
		d, err := s.walk(parts)
		if err != nil {
			return err
		}
		defer clunk(d)
		if _, _, err := d.Open(p9.ReadOnly); err != nil {
			return err
		}
		return d.FSync()
	})
	if errors.Is(mapErr(err), syscall.ENOENT) {
		return nil
	}
	return err
}
