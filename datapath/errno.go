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

// errno is toErrno for a FUSE reply of v: it also counts the errors that
// mean the remote failed (RemoteErrnos) for Stats.
func (v *Volume) errno(err error) syscall.Errno {
	e := toErrno(err)
	if e != 0 {
		if i := remoteErrorIndex(e); i >= 0 {
			v.remoteErrors[i].Add(1)
		}
	}
	return e
}

func (n *node) errno(err error) syscall.Errno { return n.vol.errno(err) }

func (h *handle) errno(err error) syscall.Errno { return h.node.vol.errno(err) }
