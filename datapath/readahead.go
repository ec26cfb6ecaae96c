package datapath

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// kernelReadahead is how far the kernel reads ahead on a FUSE mount that
// uses its page cache (exclusive volumes without a host FD). The kernel
// starts every FUSE mount at 128 KiB (the bdi default) whatever the
// server's max_readahead says, which holds cold sequential reads to a
// fraction of the disk; 1 MiB matches the largest request (maxRequest).
const kernelReadahead = maxRequest

// setKernelReadahead raises the readahead of the FUSE mount at mountpoint
// through its backing device info in sysfs. It is best effort: a machine
// without a writable /sys keeps the kernel's default, and says so.
func setKernelReadahead(mountpoint string) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(path, []byte(strconv.Itoa(kernelReadahead>>10)), 0); err != nil {
		klog.V(2).InfoS("Cannot raise the kernel's readahead; keeping its default", "path", path, "err", err)
	}
}
