package cache

import (
	"bytes"
	"testing"
)

// TestAllocateDropsPagesOverTheRange checks that a remote change made
// behind the cache (a punched hole) is neither read back from cached
// pages nor overwritten by a later writeback of dirty ones.
func TestAllocateDropsPagesOverTheRange(t *testing.T) {
	data := bytes.Repeat([]byte("a"), 4*PageSize)
	r := newFakeRemote(data)
	f, err := NewFile(r, NewBudget(1<<20, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4*PageSize)
	if _, err := f.Read(buf, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("d"), PageSize), PageSize); err != nil { // dirty
		t.Fatal(err)
	}
	punch := func() error {
		r.mu.Lock()
		clear(r.data[PageSize : 3*PageSize])
		r.mu.Unlock()
		return nil
	}
	if err := f.Allocate(PageSize, 2*PageSize, true, punch); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(buf, 0, nil); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte("a"), PageSize), make([]byte, 2*PageSize)...), bytes.Repeat([]byte("a"), PageSize)...)
	if !bytes.Equal(buf, want) {
		t.Fatal("read after Allocate shows the cached bytes, not the hole")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.snapshot(), want) {
		t.Fatal("writeback after Allocate restored bytes over the hole")
	}
	if err := f.Allocate(0, 8*PageSize, false, func() error { return nil }); err != nil || f.Size() != 8*PageSize {
		t.Fatalf("Allocate past the end: size %d, %v; want %d", f.Size(), err, 8*PageSize)
	}
}
