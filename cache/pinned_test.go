package cache

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadPinnedHoldsPages checks R5's zero-copy form: a fully cached
// range comes back as the cache's own pages, a write to them waits until
// the pin is released, and a range with a gap is refused.
func TestReadPinnedHoldsPages(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*PageSize/16)
	f, err := NewFile(newFakeRemote(data), NewBudget(1<<20, nil), Options{MinReadahead: PageSize, MaxReadahead: PageSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.ReadPinned(nil, 0, 100, nil); ok {
		t.Fatal("ReadPinned succeeded on an empty cache")
	}
	buf := make([]byte, 2*PageSize)
	if _, err := f.Read(buf, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.ReadPinned(nil, PageSize, 2*PageSize, nil); ok {
		t.Fatal("ReadPinned succeeded on a range with an uncached page")
	}
	p, ok := f.ReadPinned(nil, 100, 2*PageSize-200, nil)
	if !ok {
		t.Fatal("ReadPinned failed on a cached range")
	}
	if got := bytes.Join(p.Slices(), nil); !bytes.Equal(got, data[100:2*PageSize-100]) || p.Len() != len(got) {
		t.Fatalf("pinned bytes differ from the file (%d bytes, Len %d)", len(got), p.Len())
	}
	var wrote atomic.Bool
	done := make(chan error)
	go func() {
		_, err := f.Write([]byte("X"), 200)
		wrote.Store(true)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // give the write a chance to run early
	if wrote.Load() {
		t.Fatal("a write to pinned pages went ahead before Release")
	}
	if got := p.Slices()[0][100]; got != data[200] {
		t.Fatalf("pinned byte changed to %q while pinned", got)
	}
	p.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, ok := f.ReadPinned(p, 200, 1, nil); !ok || p.Slices()[0][0] != 'X' {
		t.Fatal("the write after Release is not visible to a pinned read")
	} else {
		p.Release()
	}
	if _, ok := f.ReadPinned(nil, int64(len(data)), 10, nil); ok {
		t.Fatal("ReadPinned succeeded at the end of the file")
	}
}

// TestRule_R5_FillPinnedServesAMissFromItsPages: a cold read fills the
// cache (R5, with readahead: R6) and comes back pinned, as one miss; a
// read the budget cannot hold is refused, so the caller reads by copy.
func TestRule_R5_FillPinnedServesAMissFromItsPages(t *testing.T) {
	data := pattern(4, 256*kib+100)
	f, r, b := newTestFile(t, data, 1<<20, Options{MinReadahead: 64 * kib})
	var ra Readahead
	p, ok := f.FillPinned(nil, 5000, 20000, &ra)
	if !ok {
		t.Fatal("FillPinned failed on a cold range")
	}
	if got := bytes.Join(p.Slices(), nil); !bytes.Equal(got, data[5000:25000]) || p.Len() != len(got) {
		t.Fatalf("pinned bytes differ from the file (%d bytes, Len %d)", len(got), p.Len())
	}
	p.Release()
	if st := f.counters.Stats(); st.Misses != 1 || st.Hits != 0 {
		t.Errorf("Stats = %d hits, %d misses; want 0, 1", st.Hits, st.Misses)
	}
	if got := f.CachedBytes(); got != 64*kib {
		t.Errorf("CachedBytes = %d, want the 64 KiB readahead window", got)
	}
	// At the end of the file: the bytes up to the size.
	p, ok = f.FillPinned(p, int64(len(data)-50), 4096, &ra)
	if !ok || !bytes.Equal(bytes.Join(p.Slices(), nil), data[len(data)-50:]) {
		t.Fatal("FillPinned at the end of the file did not pin the file's tail")
	}
	p.Release()
	if _, ok := f.FillPinned(nil, int64(len(data)), 10, &ra); ok {
		t.Error("FillPinned succeeded at the size")
	}
	mustCheck(t, b, f, r)

	tiny, r2, b2 := newTestFile(t, data, 0, Options{})
	if _, ok := tiny.FillPinned(nil, 0, 4096, nil); ok {
		t.Error("FillPinned succeeded with no budget")
	}
	if got := mustRead(t, tiny, 0, 4096, nil); !bytes.Equal(got, data[:4096]) {
		t.Error("Read after a refused FillPinned returned wrong data")
	}
	mustCheck(t, b2, tiny, r2)
}
