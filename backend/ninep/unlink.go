package ninep

import (
	"errors"
	"syscall"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// remover is the client library's Tremove, which its File interface
// leaves out.
type remover interface{ Remove() error }

// unlink removes the entry parts (whose parent's fid is dir) like
// unlinkat(2) with flags (0 or AT_REMOVEDIR).
func (s *session) unlink(dir p9.File, parts []string, flags uint32) error {
	if !s.noUnlinkat.Load() {
		err := dir.UnlinkAt(parts[len(parts)-1], flags)
		e := mapErr(err)
		if !errors.Is(e, syscall.EOPNOTSUPP) && !errors.Is(e, syscall.ENOSYS) {
			return err
		}
		s.noUnlinkat.Store(true)
	}
	// Tremove removes whatever the name holds; check the type first so
	// unlink of a directory is EISDIR and rmdir of a file ENOTDIR. A
	// replacement of the entry in between is not detected.
	f, qid, _, _, err := s.walkStat(parts)
	if err != nil {
		return err
	}
	isDir := qid.Type&p9.TypeDir != 0
	switch {
	case flags&unix.AT_REMOVEDIR != 0 && !isDir:
		clunk(f)
		return syscall.ENOTDIR
	case flags&unix.AT_REMOVEDIR == 0 && isDir:
		clunk(f)
		return syscall.EISDIR
	}
	r, ok := f.(remover)
	if !ok {
		clunk(f)
		return syscall.EOPNOTSUPP
	}
	// Tremove releases the fid whatever the outcome.
	return r.Remove()
}
