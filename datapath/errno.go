package datapath

import (
	"errors"
	"io"
	"syscall"

	"k8s.io/klog/v2"
)

// toErrno maps an error from a backend or the cache to the errno FUSE
// returns. It is the one place where that mapping happens: errors that
// carry an errno keep it; anything else is logged and becomes EIO, so a
// surprise is visible in the logs and never mistaken for success.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return syscall.EIO
	}
	klog.ErrorS(err, "Unmapped data path error, returning EIO")
	return syscall.EIO
}
