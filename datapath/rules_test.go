package datapath

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// Tests named after the rules of shared/design/interop-modes.md that hold
// with a host FD (passthrough) and without one (forcePageCache, where the
// daemon serves I/O).

func TestRule_R1_NegativeReadOffsetIsEINVAL(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), "data")
		f := openT(t, tv.path("f"), os.O_RDWR)
		if _, err := f.ReadAt(make([]byte, 1), -1); err == nil {
			t.Fatal("read at -1 succeeded")
		}
		if _, err := unix.Pread(int(f.Fd()), make([]byte, 1), -1); err != unix.EINVAL {
			t.Fatalf("pread at -1: %v, want EINVAL", err)
		}
		if _, err := unix.Pwrite(int(f.Fd()), []byte("x"), -1); err != unix.EINVAL {
			t.Fatalf("pwrite at -1: %v, want EINVAL (W1)", err)
		}
	})
}

func TestRule_R3_HostFDUsesPassthrough(t *testing.T) {
	requirePassthroughKernel(t)
	for _, m := range Modes {
		tv := mountTest(t, Options{Mode: m})
		if !tv.vol.Passthrough() {
			t.Errorf("%s: kernel >= 6.9 as root, but passthrough is off", m)
		}
		forced := mountTest(t, Options{Mode: m, ForcePageCache: true})
		if forced.vol.Passthrough() {
			t.Errorf("%s: forcePageCache, but passthrough is on", m)
		}
	}
}

func TestRule_R3_N1_SharedSeesRemoteChangesAtOnce(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.remote("f"), "old")
		if got := readFile(t, tv.path("f")); got != "old" {
			t.Fatalf("read %q, want old", got)
		}
		f := openT(t, tv.path("f"), os.O_RDONLY)
		// Another writer changes the remote: same size, then longer.
		writeFile(t, tv.remote("f"), "new")
		if got := readAllAt(t, f); got != "new" {
			t.Fatalf("open file reads %q after a remote change, want new", got)
		}
		writeFile(t, tv.remote("f"), "newer data")
		if got := readFile(t, tv.path("f")); got != "newer data" {
			t.Fatalf("read %q after the remote grew, want %q", got, "newer data")
		}
		if got := readAllAt(t, f); got != "newer data" {
			t.Fatalf("open file reads %q after the remote grew", got)
		}
		// Names created and removed remotely (N1).
		writeFile(t, tv.remote("g"), "g")
		if got := readFile(t, tv.path("g")); got != "g" {
			t.Fatalf("new remote file reads %q", got)
		}
		if err := os.Remove(tv.remote("g")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(tv.path("g")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat of a remotely removed file: %v, want ENOENT", err)
		}
	}, Shared)
}

func TestRule_S1_SharedSeekEndRefreshesSize(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), "1234")
		f := openT(t, tv.path("f"), os.O_RDONLY)
		writeFile(t, tv.remote("f"), "123456789")
		end, err := f.Seek(0, 2)
		if err != nil || end != 9 {
			t.Fatalf("SEEK_END = %d, %v; want 9 (the remote's size)", end, err)
		}
	}, Shared)
}

func TestRule_S2_SeekDataHolePastSizeIsENXIO(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), "12345678")
		f := openT(t, tv.path("f"), os.O_RDONLY)
		fd := int(f.Fd())
		if off, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil || off != 0 {
			t.Fatalf("SEEK_DATA 0 = %d, %v; want 0", off, err)
		}
		if off, err := unix.Seek(fd, 0, unix.SEEK_HOLE); err != nil || off != 8 {
			t.Fatalf("SEEK_HOLE 0 = %d, %v; want 8", off, err)
		}
		for _, whence := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
			if _, err := unix.Seek(fd, 8, whence); err != unix.ENXIO {
				t.Fatalf("whence %d at size: %v, want ENXIO", whence, err)
			}
		}
	})
}

func TestRule_S3_BadSeekIsEINVAL(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), "1234")
		fd := int(openT(t, tv.path("f"), os.O_RDONLY).Fd())
		if _, err := unix.Seek(fd, 0, 42); err != unix.EINVAL {
			t.Fatalf("unknown whence: %v, want EINVAL", err)
		}
		if _, err := unix.Seek(fd, -10, unix.SEEK_SET); err != unix.EINVAL {
			t.Fatalf("negative result: %v, want EINVAL", err)
		}
	})
}

func TestRule_S4_FsyncReachesRemote(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		f := createT(t, tv.path("f"), 0)
		if _, err := f.Write([]byte("synced")); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		if got := readFile(t, tv.remote("f")); got != "synced" {
			t.Fatalf("remote has %q after fsync, want synced", got)
		}
	})
}

func TestRule_W4_W7_WriteReachesRemoteBeforeReturn(t *testing.T) {
	check := func(t *testing.T, tv *testVolume) {
		f := createT(t, tv.path("f"), 0)
		want := ""
		for _, chunk := range []string{"a", "bb", "ccc"} {
			if _, err := f.Write([]byte(chunk)); err != nil {
				t.Fatal(err)
			}
			want += chunk
			if got := readFile(t, tv.remote("f")); got != want {
				t.Fatalf("remote has %q right after write(2), want %q", got, want)
			}
		}
	}
	forEachVariant(t, check, WriteThrough, Shared)
	// With a host FD the kernel writes the backing file itself (W4), in
	// every mode.
	t.Run("exclusive-hostFD", func(t *testing.T) {
		requirePassthroughKernel(t)
		check(t, mountTest(t, Options{Mode: Exclusive}))
	})
}

func TestRule_W8_OSyncWriteReachesRemote(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		f := createT(t, tv.path("f"), os.O_SYNC)
		if _, err := f.Write([]byte("durable")); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, tv.remote("f")); got != "durable" {
			t.Fatalf("remote has %q after an O_SYNC write, want durable", got)
		}
	})
}

func TestRule_R4_ODirectReadWritesBackDirtyData(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		page := bytes.Repeat([]byte("d"), 4096)
		f := createT(t, tv.path("f"), 0)
		if _, err := f.Write(page); err != nil {
			t.Fatal(err)
		}
		// The buffered write may still be dirty in a cache; an O_DIRECT
		// read of the range must see it.
		d := openT(t, tv.path("f"), os.O_RDONLY|unix.O_DIRECT)
		buf := alignedBuf(t, 4096)
		n, err := d.ReadAt(buf, 0)
		if n != 4096 || !bytes.Equal(buf, page) {
			t.Fatalf("O_DIRECT read %d bytes (%v), data equal=%v", n, err, bytes.Equal(buf, page))
		}
		if got := readFile(t, tv.remote("f")); got != string(page) {
			t.Fatalf("remote has %d bytes after an O_DIRECT read, want the written page", len(got))
		}
	})
}

func TestRule_W3_ODirectWriteInvalidatesCachedPages(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), strings.Repeat("o", 4096))
		f := openT(t, tv.path("f"), os.O_RDONLY)
		if got := readAllAt(t, f); got[0] != 'o' {
			t.Fatal("setup read")
		}
		d := openT(t, tv.path("f"), os.O_WRONLY|unix.O_DIRECT)
		buf := alignedBuf(t, 4096)
		copy(buf, bytes.Repeat([]byte("n"), 4096))
		if _, err := d.WriteAt(buf, 0); err != nil {
			t.Fatalf("O_DIRECT write: %v", err)
		}
		if got := readFile(t, tv.remote("f")); got != string(buf) {
			t.Fatal("remote lacks the O_DIRECT write")
		}
		if got := readAllAt(t, f); got != string(buf) {
			t.Fatalf("buffered read after an O_DIRECT write sees stale data %q...", got[:8])
		}
	})
}

// countingFS counts remote handle flushes (what close(2) sends).
type countingFS struct {
	backend.FS
	flushes atomic.Int64
}

type countingFile struct {
	backend.File
	fs *countingFS
}

func (c *countingFS) Open(name string, flags int, perm uint32) (backend.File, error) {
	f, err := c.FS.Open(name, flags, perm)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c}, nil
}

func (f *countingFile) Flush() error {
	f.fs.flushes.Add(1)
	return f.File.Flush()
}

func TestRule_S5_CloseFlushesRemoteExceptExclusive(t *testing.T) {
	for _, v := range allVariants() {
		t.Run(v.name, func(t *testing.T) {
			var cfs *countingFS
			ops := &opCounter{}
			opts := v.opts
			opts.Observer = ops
			tv := mountTestFS(t, opts, func(be backend.FS) backend.FS {
				cfs = &countingFS{FS: be}
				return cfs
			})
			for i := 0; i < 3; i++ {
				writeFile(t, tv.path("f"), "x")
				readFile(t, tv.path("f"))
			}
			flushes := cfs.flushes.Load()
			if v.opts.Mode == Exclusive && flushes != 0 {
				t.Fatalf("exclusive close flushed the remote %d times, want 0", flushes)
			}
			// Exclusive opens say FOPEN_NOFLUSH, so close(2) costs no
			// round trip. The kernel ignores the flag under its
			// writeback cache, and sends one FLUSH, whose ENOSYS stops
			// the others.
			n := ops.count(OpFlush)
			if want := int64(0); v.opts.Mode == Exclusive && !tv.vol.writebackCache && n != want {
				t.Fatalf("the kernel sent %d FLUSH requests for 6 exclusive closes, want %d", n, want)
			}
			if want := int64(1); v.opts.Mode == Exclusive && tv.vol.writebackCache && n != want {
				t.Fatalf("the kernel sent %d FLUSH requests for 6 exclusive closes under its writeback cache, want %d", n, want)
			}
			if v.opts.Mode != Exclusive && flushes == 0 {
				t.Fatal("close did not flush the remote handle")
			}
		})
	}
}

func TestRule_C2_UnmountWritesBackBufferedData(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		f := createT(t, tv.path("f"), 0)
		if _, err := f.Write([]byte("buffered")); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := tv.vol.Unmount(); err != nil {
			t.Fatalf("unmount: %v", err)
		}
		if got := readFile(t, tv.remote("f")); got != "buffered" {
			t.Fatalf("remote has %q after unmount, want buffered", got)
		}
	})
}
