package local

import "golang.org/x/sys/unix"

// The xattr calls go through /proc/self/fd of an O_PATH descriptor: the
// l*xattr forms would act on the magic link, the plain forms on exactly
// the inode the descriptor holds, which is never a followed symlink.

func (r *Root) Getxattr(name, attr string, dest []byte) (int, error) {
	var n int
	err := r.atNode(name, func(_ int, proc string) (err error) {
		n, err = unix.Getxattr(proc, attr, dest)
		return err
	})
	return n, err
}

func (r *Root) Setxattr(name, attr string, data []byte, flags int) error {
	return r.atNode(name, func(_ int, proc string) error {
		return unix.Setxattr(proc, attr, data, flags)
	})
}

func (r *Root) Listxattr(name string, dest []byte) (int, error) {
	var n int
	err := r.atNode(name, func(_ int, proc string) (err error) {
		n, err = unix.Listxattr(proc, dest)
		return err
	})
	return n, err
}

func (r *Root) Removexattr(name, attr string) error {
	return r.atNode(name, func(_ int, proc string) error {
		return unix.Removexattr(proc, attr)
	})
}
