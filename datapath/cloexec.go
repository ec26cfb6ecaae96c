package datapath

import (
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// mountMu serializes mounts, so that closeOnExecFUSE runs before another
// mount opens a descriptor of its own.
var mountMu sync.Mutex

// closeOnExecFUSE sets FD_CLOEXEC on every /dev/fuse descriptor of the
// process. go-fuse opens /dev/fuse without O_CLOEXEC when it mounts
// directly, so every child the daemon starts (mount-utils runs mount(8)
// for bind mounts) would inherit the FUSE connections; a child that
// outlived the daemon would keep a mount alive with nobody serving it,
// hanging its users instead of failing them with ENOTCONN.
func closeOnExecFUSE() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			unix.CloseOnExec(fd)
		}
	}
}
