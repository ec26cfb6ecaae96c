package datapath

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func openT(t testing.TB, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func createT(t testing.TB, path string, extra int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|extra, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readAllAt reads an open file from offset 0 without moving its offset.
func readAllAt(t testing.TB, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// alignedBuf returns a page-aligned buffer, as O_DIRECT needs.
func alignedBuf(t testing.TB, size int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// requirePassthroughKernel skips on kernels without FUSE passthrough
// (before 6.9); the tests that need it then cannot observe it.
func requirePassthroughKernel(t testing.TB) {
	t.Helper()
	requireFUSE(t)
	if *remoteFlag != "" {
		t.Skipf("the %s remote has no host FD, so there is no passthrough", *remoteFlag)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(release, ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major < 6 || (major == 6 && minor < 9) {
		t.Skipf("kernel %s has no FUSE passthrough (needs 6.9+)", release)
	}
}

// The process that serves a FUSE mount must not fault on a mapping of it in
// Go code: a fault blocks its thread outside any syscall, so a garbage
// collection stop-the-world waits for it while it waits for the stopped
// FUSE server. These helpers touch mappings only inside a syscall (the
// kernel copies through a memfd), where the runtime does not wait.

// copyToMapping copies data into the mapping m at off.
func copyToMapping(m []byte, off int, data []byte) error {
	fd, err := unix.MemfdCreate("mapping-src", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, data, 0); err != nil {
		return err
	}
	_, err = unix.Pread(fd, m[off:off+len(data)], 0)
	return err
}

// copyFromMapping returns a copy of m[off:off+n].
func copyFromMapping(m []byte, off, n int) ([]byte, error) {
	fd, err := unix.MemfdCreate("mapping-dst", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, m[off:off+n], 0); err != nil {
		return nil, err
	}
	out := make([]byte, n)
	_, err = unix.Pread(fd, out, 0)
	return out, err
}
