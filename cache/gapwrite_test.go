package cache

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// TestRule_W5_BufferGapWrites_KeepsDataWhileRemoteFails: with BufferGapWrites, a
// write to uncached pages whose other bytes lie past the remote size
// (whole pages, a hole, an extension) stays dirty in the cache while every
// remote call fails, and reaches the remote at the next writeback (C1).
func TestRule_W5_BufferGapWrites_KeepsDataWhileRemoteFails(t *testing.T) {
	data := pattern(1, 64*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{BufferGapWrites: true})
	r.setInject(func(string) fault { return faultEIO })
	want := append([]byte(nil), data...)
	for _, w := range []struct{ off, n int }{
		{8 * kib, 16 * kib},    // whole pages over remote data
		{100 * kib, 3 * kib},   // past the size: a hole before it
		{96*kib + 10, 100},     // part of a page in that hole
		{103 * kib, 5*kib + 7}, // extends the file, ending mid-page
	} {
		p := pattern(byte(w.off), w.n)
		mustWrite(t, f, p, w.off)
		if end := w.off + w.n; end > len(want) {
			want = append(want, make([]byte, end-len(want))...)
		}
		copy(want[w.off:], p)
	}
	if _, writes := r.counts(); writes != 0 {
		t.Errorf("remote writes = %d, want 0: the writes need no remote", writes)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing remote = %v, want EIO", err)
	}
	r.setInject(nil)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := r.snapshot(); !bytes.Equal(got, want) {
		t.Errorf("the remote differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
	mustCheck(t, b, f, r)
}

// TestRule_W5_BufferGapWrites_PartialPageOverRemoteDataGoesToRemote: a write to
// part of an uncached page that holds remote data cannot be cached
// without a read-modify-write (W5), so it goes to the remote; the whole
// pages after it are still buffered.
func TestRule_W5_BufferGapWrites_PartialPageOverRemoteDataGoesToRemote(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{BufferGapWrites: true})
	mustWrite(t, f, pattern(2, 3*PageSize), 100)
	if _, writes := r.counts(); writes != 2 {
		t.Errorf("remote writes = %d, want 2 (the head and the tail pages)", writes)
	}
	if got := f.DirtyBytes(); got != 2*PageSize {
		t.Errorf("DirtyBytes = %d, want the 2 whole pages", got)
	}
	if got := mustRead(t, f, 100, 3*PageSize, nil); !bytes.Equal(got, pattern(2, 3*PageSize)) {
		t.Error("a read does not see the write")
	}
	mustCheck(t, b, f, r)
}

// TestRule_W5_BufferGapWrites_FallsBackToRemoteWhenBudgetIsFull: pages the
// budget cannot take go to the remote, as without the option (C3).
func TestRule_W5_BufferGapWrites_FallsBackToRemoteWhenBudgetIsFull(t *testing.T) {
	f, r, b := newTestFile(t, nil, 2*PageSize, Options{BufferGapWrites: true})
	mustWrite(t, f, pattern(3, 4*PageSize), 0)
	if got := r.snapshot(); !bytes.Equal(got, pattern(3, 4*PageSize)) {
		t.Errorf("the remote has %d bytes, want the whole write", len(got))
	}
	mustCheck(t, b, f, r)
}
