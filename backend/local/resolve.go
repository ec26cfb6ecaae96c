package local

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveBeneath confines every lookup to the volume directory: no ".."
// above the root, no symbolic links at all (the kernel resolves symlinks of
// a FUSE mount itself, in the caller's namespace, so the daemon never needs
// to follow one), no magic /proc links. Because the kernel enforces it at
// each step, a directory swapped for a symlink by a concurrent rename fails
// with ELOOP or EXDEV instead of leading outside.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens name relative to dirfd with resolveBeneath.
func openBeneath(dirfd int, name string, flags int, perm uint32) (int, error) {
	if name == "" {
		name = "."
	}
	for {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Mode:    uint64(perm),
			Resolve: resolveBeneath,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a concurrent rename raced the kernel's lookup;
			// openat2 asks us to retry.
			continue
		}
		return fd, err
	}
}

// splitName splits a volume-relative name into its directory and its final
// component, rejecting names that are not plain paths.
func splitName(name string) (dir, base string, err error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", "", unix.EINVAL
	}
	dir, base = path.Split(name)
	if base == "" || base == "." || base == ".." {
		return "", "", unix.EINVAL
	}
	return strings.TrimSuffix(dir, "/"), base, nil
}

// atParent calls fn with a descriptor of name's parent directory and name's
// final component, so that fn can use a *at(2) call that does not follow
// the final component.
func (r *Root) atParent(name string, fn func(dirfd int, base string) error) error {
	dir, base, err := splitName(name)
	if err != nil {
		return err
	}
	if dir == "" {
		return fn(r.fd, base)
	}
	dfd, err := openBeneath(r.fd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return fn(dfd, base)
}

// atNode calls fn with an O_PATH descriptor of name itself (a symlink is
// not followed) and its /proc/self/fd path. The /proc path lets calls
// without an AT_EMPTY_PATH form (chmod, utimensat, xattrs) act on exactly
// that inode.
func (r *Root) atNode(name string, fn func(fd int, procPath string) error) error {
	fd, err := openBeneath(r.fd, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd, procFdPath(fd))
}

func procFdPath(fd int) string {
	return "/proc/self/fd/" + itoa(fd)
}

func itoa(v int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
