package datapath

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// abortSession kills the kernel side of the volume's FUSE connection, as a
// crash of the daemon would.
func abortSession(t *testing.T, mnt string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	const fusectl = "/sys/fs/fuse/connections"
	ctl := fmt.Sprintf("%s/%d/abort", fusectl, unix.Minor(st.Dev))
	if _, err := os.Stat(ctl); errors.Is(err, os.ErrNotExist) {
		// Not every machine mounts the FUSE control file system.
		if err := unix.Mount("fusectl", fusectl, "fusectl", 0, ""); err != nil && err != unix.EBUSY {
			t.Skipf("requires the kernel FUSE control file system at %s; mounting it failed: %v", fusectl, err)
		}
	}
	if err := os.WriteFile(ctl, []byte("1"), 0); err != nil {
		t.Skipf("requires the kernel FUSE control file system at /sys/fs/fuse/connections: %v", err)
	}
}

func TestVolume_CheckReportsDeadSessionAndUnmountCleansUp(t *testing.T) {
	tv := mountTest(t, Options{Mode: Shared})
	if err := tv.vol.Check(); err != nil {
		t.Fatalf("Check on a live session: %v", err)
	}
	abortSession(t, tv.mnt)
	tv.vol.Wait()
	if err := tv.vol.Check(); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Check after abort: %v, want ErrSessionEnded", err)
	}
	if _, err := os.Stat(tv.path("x")); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("stat through a dead session: %v, want ENOTCONN", err)
	}
	if err := tv.vol.Unmount(); err != nil {
		t.Fatalf("Unmount of a dead session: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(tv.mnt, &st); err != nil {
		t.Fatalf("mount point still broken after Unmount: %v", err)
	}
}

func TestVolume_UnmountRefusesWhileFilesAreOpen(t *testing.T) {
	tv := mountTest(t, Options{Mode: Exclusive})
	f := createT(t, tv.path("open"), 0)
	if err := tv.vol.Unmount(); err == nil {
		t.Fatal("Unmount succeeded with a file open; it must refuse (EBUSY)")
	}
	if _, err := f.Write([]byte("still served")); err != nil {
		t.Fatalf("write after a refused unmount: %v", err)
	}
	f.Close()
}

func TestMount_RejectsBadInput(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	if _, err := Mount(dir+"/missing", dir, Options{}); err == nil {
		t.Error("mount of a missing directory succeeded")
	}
	writeFile(t, dir+"/file", "x")
	if _, err := Mount(dir+"/file", dir, Options{}); err == nil {
		t.Error("mount of a regular file succeeded")
	}
	if _, err := Mount(dir, dir+"/mnt-missing", Options{Mode: "bogus"}); err == nil {
		t.Error("mount with an unknown mode succeeded")
	}
}

// TestMount_RaisesKernelReadahead: the kernel starts FUSE mounts at 128 KiB
// of readahead; cold sequential reads through its page cache need more.
func TestMount_RaisesKernelReadahead(t *testing.T) {
	tv := mountTest(t, Options{Mode: Exclusive, ForcePageCache: true})
	var st unix.Stat_t
	if err := unix.Stat(tv.mnt, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Skipf("requires sysfs /sys/class/bdi to read the kernel readahead: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != fmt.Sprint(kernelReadahead>>10) {
		t.Fatalf("read_ahead_kb = %s, want %d", got, kernelReadahead>>10)
	}
}
