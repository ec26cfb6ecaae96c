package cache

import (
	"bytes"
	"errors"
	"slices"
	"syscall"
	"testing"
)

func mustWrite(t *testing.T, f *File, p []byte, off int) {
	t.Helper()
	if n, err := f.Write(p, int64(off)); n != len(p) || err != nil {
		t.Fatalf("Write(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
}

func TestRule_W3_DirectWriteWritesBackAndDropsPages(t *testing.T) {
	data := pattern(1, 64*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("buffered"), 4100)
	if n, err := f.WriteDirect([]byte("direct"), 4200); n != 6 || err != nil {
		t.Fatalf("WriteDirect = %d, %v", n, err)
	}
	remote := r.snapshot()
	if string(remote[4100:4108]) != "buffered" || string(remote[4200:4206]) != "direct" {
		t.Error("the remote lacks the written-back or the direct data")
	}
	if _, ok := f.pages.Find(4096); ok {
		t.Error("the touched page is still cached")
	}
	if _, ok := f.pages.Find(0); !ok {
		t.Error("an untouched page was dropped")
	}
	mustCheck(t, b, f, r)
}

func TestRule_W3_DropRangeKeepsDataWhenWritebackFails(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("dirty"), 0)
	r.setInject(func(string) fault { return faultEIO })
	if err := f.DropRange(0, 10); !errors.Is(err, syscall.EIO) {
		t.Fatalf("DropRange = %v, want EIO", err)
	}
	if f.DirtyBytes() != PageSize {
		t.Error("the dirty page was dropped after a failed writeback")
	}
	mustCheck(t, b, f, r)
}

func TestRule_W5_WriteToCachedPagesIsBuffered(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, pattern(7, 10000), 3000)
	if _, writes := r.counts(); writes != 0 {
		t.Errorf("remote writes = %d, want 0", writes)
	}
	if got := f.DirtyBytes(); got != 4*PageSize { // [3000, 13000)
		t.Errorf("DirtyBytes = %d, want 4 pages", got)
	}
	if got := mustRead(t, f, 3000, 10000, nil); !bytes.Equal(got, pattern(7, 10000)) {
		t.Error("read does not see the buffered write")
	}
	mustCheck(t, b, f, r)
}

func TestRule_W5_WriteToGapGoesToRemote(t *testing.T) {
	data := pattern(1, 64*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{MinReadahead: PageSize})
	mustRead(t, f, 8*kib, PageSize, nil) // cache page 2 only
	mustWrite(t, f, pattern(7, 3*PageSize), 4*kib)
	reads, writes := r.counts()
	if reads != 1 || writes != 2 {
		t.Errorf("remote reads, writes = %d, %d; want 1 (the fill), 2 (the gaps)", reads, writes)
	}
	if got := f.CachedBytes(); got != PageSize {
		t.Errorf("CachedBytes = %d: a write must not fill the cache", got)
	}
	remote := r.snapshot()
	if !bytes.Equal(remote[4*kib:8*kib], pattern(7, PageSize)) {
		t.Error("the gap's data is not on the remote")
	}
	mustCheck(t, b, f, r)
}

func TestRule_W6_WriteExtendsSizeRemoteFollowsAtWriteback(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 5000), 1<<20, Options{})
	mustRead(t, f, 0, 5000, nil)
	mustWrite(t, f, []byte("tail"), 6000)
	if f.Size() != 6004 || f.RemoteSize() != 5000 {
		t.Errorf("Size, RemoteSize = %d, %d; want 6004, 5000", f.Size(), f.RemoteSize())
	}
	if got := mustRead(t, f, 5000, 1004, nil); !bytes.Equal(got, append(make([]byte, 1000), "tail"...)) {
		t.Errorf("extended bytes read as %q", got)
	}
	if err := f.WriteBackAll(); err != nil {
		t.Fatal(err)
	}
	if f.RemoteSize() != 6004 || len(r.snapshot()) != 6004 {
		t.Errorf("remote size after writeback = %d", len(r.snapshot()))
	}
	mustCheck(t, b, f, r)
}

func TestRule_W7_WriteBackMakesRangeReachRemote(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("through"), 100)
	mustWrite(t, f, []byte("later"), 50000)
	if err := f.WriteBack(100, 7); err != nil {
		t.Fatal(err)
	}
	remote := r.snapshot()
	if string(remote[100:107]) != "through" || string(remote[50000:50005]) == "later" {
		t.Error("WriteBack wrote the wrong range")
	}
	mustCheck(t, b, f, r)
}

func TestRule_W8_SyncRangeWritesBackThenSyncs(t *testing.T) {
	f, r, _ := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("osync"), 100)
	r.ops()
	if err := f.SyncRange(100, 5); err != nil {
		t.Fatal(err)
	}
	if got := r.ops(); !slices.Equal(got, []string{"write", "sync"}) {
		t.Errorf("remote calls = %v, want [write sync]", got)
	}
}

func TestRule_S4_SyncWritesBackAllThenSyncsRemote(t *testing.T) {
	f, r, _ := newTestFile(t, pattern(1, 4<<20), 8<<20, Options{})
	mustRead(t, f, 0, 4<<20, nil)
	mustWrite(t, f, []byte("a"), 0)
	mustWrite(t, f, []byte("b"), 3<<20)
	r.ops()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := r.ops(); !slices.Equal(got, []string{"write", "write", "sync"}) {
		t.Errorf("remote calls = %v, want two writes then sync", got)
	}
	if f.DirtyBytes() != 0 {
		t.Error("dirty data left after Sync")
	}
}

func TestTruncateDropsPagesAndZeroesTail(t *testing.T) {
	data := pattern(4, 64*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("gone"), 40000)
	if err := f.Truncate(10000); err != nil {
		t.Fatal(err)
	}
	if got := f.CachedBytes(); got != 3*PageSize {
		t.Errorf("CachedBytes = %d, want 3 pages", got)
	}
	if f.DirtyBytes() != 0 {
		t.Error("dirty pages past the new size survived")
	}
	if err := f.Truncate(20000); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), data[:10000]...), make([]byte, 10000)...)
	if got := mustRead(t, f, 0, 20000, nil); !bytes.Equal(got, want) {
		t.Error("truncate down and up did not zero the tail")
	}
	mustCheck(t, b, f, r)
}

func TestTruncateKeepsCacheWhenRemoteFails(t *testing.T) {
	f, r, b := newTestFile(t, pattern(4, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	r.setInject(func(string) fault { return faultEIO })
	if err := f.Truncate(0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Truncate = %v, want EIO", err)
	}
	if f.Size() != 64*kib || f.CachedBytes() != 64*kib {
		t.Error("a failed truncate changed the cache")
	}
	mustCheck(t, b, f, r)
}

func TestWriteStopsAtFailedGapWrite(t *testing.T) {
	f, r, b := newTestFile(t, pattern(4, 16*kib), 1<<20, Options{})
	r.setInject(func(op string) fault {
		if op == "write" {
			return faultENOSPC
		}
		return noFault
	})
	n, err := f.Write(pattern(1, 8*kib), 12*kib)
	if !errors.Is(err, syscall.ENOSPC) || n != 4*kib {
		t.Fatalf("Write = %d, %v; want 4096, ENOSPC", n, err)
	}
	if f.Size() != 16*kib {
		t.Errorf("Size = %d, want the 16 KiB written up to", f.Size())
	}
	mustCheck(t, b, f, r)
}
