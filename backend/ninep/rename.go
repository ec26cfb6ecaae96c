package ninep

import (
	"errors"
	"syscall"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// Rename renames oldName to newName. 9P2000.L's renameat has no flags, so:
//
//   - RENAME_NOREPLACE of a non-directory is a link to the new name (which
//     fails with EEXIST if the name exists, atomically on the server) and
//     an unlink of the old one. For a directory (no hard links) it is a
//     check that the new name is absent followed by the rename: another
//     client creating the name in between is not detected.
//   - RENAME_EXCHANGE is EINVAL, as for Linux file systems without it.
func (fsys *FS) Rename(oldName, newName string, flags uint32) error {
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL
	}
	oldDir, oldBase, err := splitParent(oldName)
	if err != nil {
		return err
	}
	newDir, newBase, err := splitParent(newName)
	if err != nil {
		return err
	}
	if err := fsys.settleNames(oldName, newName); err != nil {
		return err
	}
	fsys.forgetDirs(oldName, newName)
	fsys.forgetNewDir()
	err = fsys.do(false, func(s *session) error {
		od, releaseOld, err := s.walkTo(oldDir)
		if err != nil {
			return err
		}
		defer releaseOld()
		nd, releaseNew, err := s.walkTo(newDir)
		if err != nil {
			return err
		}
		defer releaseNew()
		if flags&unix.RENAME_NOREPLACE != 0 {
			return renameNoReplace(s, od, oldBase, nd, newBase, append(oldDir, oldBase), append(newDir, newBase))
		}
		return s.renameAt(od, append(oldDir, oldBase), nd, newBase)
	})
	if err == nil {
		fsys.renamed(oldName, newName)
	}
	return err
}

func renameNoReplace(s *session, od p9.File, oldBase string, nd p9.File, newBase string, oldParts, newParts []string) error {
	f, qid, _, _, err := s.walkStat(oldParts)
	if err != nil {
		return err
	}
	defer clunk(f)
	if qid.Type&p9.TypeDir == 0 {
		err := nd.Link(f, newBase)
		if err == nil {
			return s.unlink(od, oldParts, 0)
		}
		if !isReply(err) || errors.Is(mapErr(err), syscall.EEXIST) {
			return err
		}
		// The server cannot link (EPERM, ENOSYS, ...): fall back to
		// the check below.
	}
	g, err := s.walk(newParts)
	if err == nil {
		clunk(g)
		return syscall.EEXIST
	}
	if !errors.Is(mapErr(err), syscall.ENOENT) {
		return err
	}
	return s.renameAt(od, oldParts, nd, newBase)
}

// renameAt renames the entry oldParts (whose parent's fid is od) to
// newBase in nd. Servers without Trenameat (diod) get Trename, which
// renames the file a fid walked to, as the Linux 9P client does.
func (s *session) renameAt(od p9.File, oldParts []string, nd p9.File, newBase string) error {
	if !s.noRenameat.Load() {
		err := od.RenameAt(oldParts[len(oldParts)-1], nd, newBase)
		e := mapErr(err)
		if !errors.Is(e, syscall.EOPNOTSUPP) && !errors.Is(e, syscall.ENOSYS) {
			return err
		}
		s.noRenameat.Store(true)
	}
	f, err := s.walk(oldParts)
	if err != nil {
		return err
	}
	defer clunk(f)
	return f.Rename(nd, newBase)
}
