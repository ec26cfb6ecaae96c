package local

import (
	"strings"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

func (r *Root) ReadDir(name string) ([]backend.DirEntry, error) {
	d, err := r.OpenDir(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir()
}

var _ backend.DirOpener = (*Root)(nil)

// OpenDir opens the directory name beneath the root. Its entries are then
// looked up relative to that descriptor: a single component cannot leave
// the directory, so this is as confined as resolving each full name.
func (r *Root) OpenDir(name string) (backend.Dir, error) {
	fd, err := openBeneath(r.fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &dir{fd: fd}, nil
}

// dir is an open directory of a Root.
type dir struct{ fd int }

func (d *dir) ReadDir() ([]backend.DirEntry, error) {
	if _, err := unix.Seek(d.fd, 0, 0); err != nil {
		return nil, err
	}
	var entries []backend.DirEntry
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(d.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return entries, nil
		}
		entries = parseDirents(buf[:n], entries)
	}
}

func (d *dir) Lstat(base string) (backend.Attr, error) {
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") {
		return backend.Attr{}, unix.EINVAL
	}
	var stx unix.Statx_t
	if err := unix.Statx(d.fd, base, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx); err != nil {
		return backend.Attr{}, err
	}
	return attrFromStatx(&stx), nil
}

func (d *dir) Stat() (backend.Attr, error) {
	var stx unix.Statx_t
	if err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH, statxMask, &stx); err != nil {
		return backend.Attr{}, err
	}
	return attrFromStatx(&stx), nil
}

func (d *dir) Sync() error { return unix.Fsync(d.fd) }

func (d *dir) Close() error { return unix.Close(d.fd) }

// parseDirents appends the linux_dirent64 records in buf to entries,
// skipping "." and "..", which the FUSE layer supplies itself.
func parseDirents(buf []byte, entries []backend.DirEntry) []backend.DirEntry {
	for len(buf) >= 19 {
		ino := le64(buf[0:8])
		reclen := int(uint16(buf[16]) | uint16(buf[17])<<8)
		typ := buf[18]
		if reclen < 19 || reclen > len(buf) {
			break
		}
		nameBytes := buf[19:reclen]
		for i, c := range nameBytes {
			if c == 0 {
				nameBytes = nameBytes[:i]
				break
			}
		}
		buf = buf[reclen:]
		name := string(nameBytes)
		if name == "." || name == ".." {
			continue
		}
		entries = append(entries, backend.DirEntry{Name: name, Ino: ino, Mode: uint32(typ) << 12})
	}
	return entries
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
