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
