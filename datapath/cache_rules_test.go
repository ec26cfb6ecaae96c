package datapath

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// Real-mount tests of the rules that the daemon's page cache implements,
// on volumes without a host FD (forcePageCache).

// faultyFS counts remote reads and can make remote writes fail.
type faultyFS struct {
	backend.FS
	reads     atomic.Int64
	failWrite atomic.Pointer[error]
}

type faultyFile struct {
	backend.File
	fs *faultyFS
}

func (c *faultyFS) Open(name string, flags int, perm uint32) (backend.File, error) {
	f, err := c.FS.Open(name, flags, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: f, fs: c}, nil
}

func (f *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.reads.Add(1)
	return f.File.ReadAt(p, off)
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.failWrite.Load(); err != nil {
		return 0, *err
	}
	return f.File.WriteAt(p, off)
}

func mountFaulty(t *testing.T, opts Options) (*testVolume, *faultyFS) {
	var ffs *faultyFS
	tv := mountTestFS(t, opts, func(be backend.FS) backend.FS {
		ffs = &faultyFS{FS: be}
		return ffs
	})
	return tv, ffs
}

func TestRule_R5_R6_CachedReadsDoNotAskRemote(t *testing.T) {
	// A writethrough file opened read-write without a host FD uses
	// direct I/O, so every read reaches the daemon: what the remote sees
	// is what the cache did.
	tv, ffs := mountFaulty(t, Options{Mode: WriteThrough, ForcePageCache: true})
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	writeFile(t, tv.remote("f"), string(data))
	f := openT(t, tv.path("f"), os.O_RDWR)
	buf := make([]byte, 4096)
	for off := 0; off < len(data); off += len(buf) {
		if _, err := f.ReadAt(buf, int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	cold := ffs.reads.Load()
	// 256 sequential 4 KiB reads: readahead (at least 64 KiB, growing)
	// needs at most 16 remote reads.
	if cold > 16 {
		t.Errorf("cold sequential read of 1 MiB took %d remote reads; readahead should need <= 16", cold)
	}
	for off := 0; off < len(data); off += len(buf) {
		n, err := f.ReadAt(buf, int64(off))
		if err != nil || !bytes.Equal(buf[:n], data[off:off+n]) {
			t.Fatalf("warm read at %d: %v", off, err)
		}
	}
	if warm := ffs.reads.Load() - cold; warm != 0 {
		t.Errorf("warm re-read asked the remote %d times, want 0", warm)
	}
}

// TestRule_R5_WarmReReadsStayInTheKernel checks the opens whose reads the
// kernel caches without a host FD (exclusive, and writethrough read-only):
// once a file has been read, reading it again sends the daemon no READ.
func TestRule_R5_WarmReReadsStayInTheKernel(t *testing.T) {
	for _, mode := range []Mode{Exclusive, WriteThrough} {
		t.Run(string(mode), func(t *testing.T) {
			ops := &opCounter{}
			tv := mountTest(t, Options{Mode: mode, ForcePageCache: true, Observer: ops})
			data := bytes.Repeat([]byte("warm"), 1<<18) // 1 MiB
			writeFile(t, tv.remote("f"), string(data))
			f := openT(t, tv.path("f"), os.O_RDONLY)
			buf := make([]byte, len(data))
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			cold := ops.count(OpRead)
			if cold == 0 {
				t.Fatal("the cold read sent no READ: the observer is not counting")
			}
			for range 3 {
				if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
					t.Fatalf("warm read: %v", err)
				}
			}
			if warm := ops.count(OpRead) - cold; warm != 0 {
				t.Fatalf("warm re-reads sent the daemon %d READs, want 0", warm)
			}
		})
	}
}

func TestRule_C1_FailedWritebackKeepsDataDirty(t *testing.T) {
	for _, mode := range []Mode{Exclusive, WriteThrough} {
		t.Run(string(mode), func(t *testing.T) {
			tv, ffs := mountFaulty(t, Options{Mode: mode, ForcePageCache: true})
			writeFile(t, tv.remote("f"), string(make([]byte, 8192)))
			f := openT(t, tv.path("f"), os.O_RDWR)
			readAllAt(t, f) // cache the pages, so the write lands in them
			enospc := error(unix.ENOSPC)
			ffs.failWrite.Store(&enospc)
			_, werr := f.WriteAt([]byte("precious"), 100)
			serr := f.Sync()
			if mode == WriteThrough && !errors.Is(werr, unix.ENOSPC) {
				t.Fatalf("writethrough write with a failing remote: %v, want ENOSPC (W7)", werr)
			}
			if mode == Exclusive && (werr != nil || !errors.Is(serr, unix.ENOSPC)) {
				t.Fatalf("exclusive: write %v, fsync %v; want a buffered write and ENOSPC at fsync", werr, serr)
			}
			ffs.failWrite.Store(nil)
			if mode == WriteThrough {
				return // W7: the failed write did not happen
			}
			// The data stayed dirty: the next fsync writes it.
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync after the remote recovered: %v", err)
			}
			if got := readFile(t, tv.remote("f"))[100:108]; got != "precious" {
				t.Fatalf("remote has %q, want the write that once failed to write back", got)
			}
		})
	}
}

func TestRule_C3_BudgetBoundsCacheOnRealMount(t *testing.T) {
	const limit = 1 << 20
	budget := NewBudget(limit)
	tv := mountTest(t, Options{Mode: WriteThrough, ForcePageCache: true, Budget: budget})
	data := bytes.Repeat([]byte("x"), 8<<20)
	writeFile(t, tv.remote("f"), string(data))
	for range 2 {
		if got := readFile(t, tv.path("f")); got != string(data) {
			t.Fatal("read through a cache 8x smaller than the file returned wrong data")
		}
	}
	st := budget.Stats()
	if st.Peak > limit {
		t.Fatalf("cache peaked at %d bytes with a budget of %d", st.Peak, limit)
	}
	if st.Evictions == 0 {
		t.Fatal("reading 8x the budget evicted nothing")
	}
}

func TestRule_R2_ReadPastSizeDoesNotAskRemote(t *testing.T) {
	tv, ffs := mountFaulty(t, Options{Mode: WriteThrough, ForcePageCache: true})
	writeFile(t, tv.remote("f"), "short")
	f := openT(t, tv.path("f"), os.O_RDONLY)
	readAllAt(t, f)
	before := ffs.reads.Load()
	for _, off := range []int64{5, 6, 4096, 1 << 20} {
		n, err := unix.Pread(int(f.Fd()), make([]byte, 64), off)
		if n != 0 || err != nil {
			t.Fatalf("read at %d past the size: %d, %v; want 0 (EOF)", off, n, err)
		}
	}
	if asked := ffs.reads.Load() - before; asked != 0 {
		t.Fatalf("reads past the cached size asked the remote %d times", asked)
	}
}

func TestRule_W6_ExtendingWriteRunsAheadOfRemote(t *testing.T) {
	tv := mountTest(t, Options{Mode: Exclusive, ForcePageCache: true})
	writeFile(t, tv.path("f"), "1234")
	f := openT(t, tv.path("f"), os.O_RDWR)
	if _, err := f.WriteAt([]byte("5678"), 4); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(tv.path("f")); err != nil || st.Size() != 8 {
		t.Fatalf("size through the mount: %v, %v; want 8 at once", st, err)
	}
	// Exclusive mode buffers: the remote follows at writeback.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tv.remote("f")); got != "12345678" {
		t.Fatalf("remote has %q after fsync, want 12345678", got)
	}
}
