package datapath

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// opCounter is an OpObserver that counts operations.
type opCounter struct{ n [NumOps]atomic.Int64 }

func (c *opCounter) ObserveOp(op Op, d time.Duration) {
	if d < 0 {
		panic("negative latency")
	}
	c.n[op].Add(1)
}

func (c *opCounter) count(op Op) int64 { return c.n[op].Load() }

// Stats and the OpObserver see what a writethrough volume without a host
// FD does: every read and write reaches the daemon (direct I/O), so each
// is counted, and the page cache's fills, hits and writebacks show.
func TestStatsCountOperationsCacheAndRemoteErrors(t *testing.T) {
	ops := &opCounter{}
	tv, ffs := mountFaulty(t, Options{Mode: WriteThrough, ForcePageCache: true, Observer: ops})
	writeFile(t, tv.remote("f"), string(make([]byte, 64<<10)))

	f := openT(t, tv.path("f"), os.O_RDWR)
	readAllAt(t, f) // cold: fills the cache
	readAllAt(t, f) // warm: hits
	s := tv.vol.Stats()
	if s.Cache.Misses == 0 || s.Cache.Fills == 0 || s.Cache.FilledBytes < 64<<10 || s.Cache.Hits == 0 {
		t.Errorf("after a cold and a warm read: %+v; want misses, fills of the 64 KiB file and hits", s.Cache)
	}
	if s.CachedBytes != 64<<10 {
		t.Errorf("CachedBytes = %d, want the 64 KiB file", s.CachedBytes)
	}

	if _, err := f.WriteAt([]byte("written through"), 100); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	s = tv.vol.Stats()
	if s.Cache.WritebackBytes == 0 || s.DirtyBytes != 0 {
		t.Errorf("after a writethrough write and fsync: writeback %d bytes, dirty %d; want > 0 and 0",
			s.Cache.WritebackBytes, s.DirtyBytes)
	}

	if _, err := os.Stat(tv.path("missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing file: %v", err)
	}
	if n := sum(tv.vol.Stats().RemoteErrors); n != 0 {
		t.Errorf("remote errors after ENOENT only: %d, want 0: ENOENT is an answer", n)
	}
	eio := error(unix.EIO)
	ffs.failWrite.Store(&eio)
	if _, err := f.WriteAt([]byte("fails"), 0); !errors.Is(err, unix.EIO) {
		t.Fatalf("write with a failing remote: %v, want EIO", err)
	}
	ffs.failWrite.Store(nil)
	s = tv.vol.Stats()
	if s.RemoteErrors[unix.EIO] != 1 || s.Cache.WritebackErrors != 1 {
		t.Errorf("after one failed writethrough write: remote EIO %d, writeback errors %d; want 1 and 1",
			s.RemoteErrors[unix.EIO], s.Cache.WritebackErrors)
	}

	for _, op := range []Op{OpLookup, OpOpen, OpRead, OpWrite, OpFsync} {
		if ops.count(op) == 0 {
			t.Errorf("no %s observed", op)
		}
	}
}

func sum(m map[unix.Errno]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func TestOpNames(t *testing.T) {
	for op := Op(0); op < NumOps; op++ {
		if op.String() == "" || op.String() == "unknown" {
			t.Errorf("Op %d has no name", op)
		}
	}
	if got := Op(NumOps).String(); got != "unknown" {
		t.Errorf("Op(NumOps) = %q, want unknown", got)
	}
}
