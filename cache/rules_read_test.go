package cache

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
)

const kib = 1 << 10

func newTestFile(t testing.TB, data []byte, limit int64, opts Options) (*File, *fakeRemote, *Budget) {
	t.Helper()
	r := newFakeRemote(data)
	b := NewBudget(limit, nil)
	f, err := NewFile(r, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, r, b
}

func mustRead(t *testing.T, f *File, off, n int, ra *Readahead) []byte {
	t.Helper()
	p := make([]byte, n)
	got, err := f.Read(p, int64(off), ra)
	if err != nil && err != io.EOF {
		t.Fatalf("Read(%d, %d): %v", off, n, err)
	}
	return p[:got]
}

func TestRule_R1_NegativeOffsetIsInvalid(t *testing.T) {
	f, _, _ := newTestFile(t, pattern(1, 100), 1<<20, Options{})
	if _, err := f.Read(make([]byte, 1), -1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read at -1: %v, want ErrInvalid", err)
	}
	if _, err := f.Write(make([]byte, 1), -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Write at -1: %v, want ErrInvalid", err)
	}
	if err := f.Truncate(-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Truncate(-1): %v, want ErrInvalid", err)
	}
}

func TestRule_R2_ReadPastSizeDoesNotAskRemote(t *testing.T) {
	f, r, _ := newTestFile(t, pattern(1, 10*kib), 1<<20, Options{})
	for _, off := range []int64{10 * kib, 10*kib + 1, 1 << 40} {
		n, err := f.Read(make([]byte, 100), off, nil)
		if n != 0 || err != io.EOF {
			t.Errorf("Read at %d = %d, %v; want 0, EOF", off, n, err)
		}
	}
	if reads, _ := r.counts(); reads != 0 {
		t.Errorf("remote reads = %d, want 0", reads)
	}
}

func TestRule_R4_DirectReadWritesBackOverlappingDirty(t *testing.T) {
	data := pattern(1, 64*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	if _, err := f.Write([]byte("dirty"), 8*kib); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("elsewhere"), 40*kib); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if _, err := f.ReadDirect(p, 8*kib); err != nil {
		t.Fatal(err)
	}
	if string(p[:5]) != "dirty" {
		t.Errorf("direct read got %q", p[:5])
	}
	if got := r.snapshot()[40*kib:][:9]; bytes.Equal(got, []byte("elsewhere")) {
		t.Error("direct read wrote back a page it does not overlap")
	}
	if f.DirtyBytes() != PageSize {
		t.Errorf("DirtyBytes = %d, want one page", f.DirtyBytes())
	}
	mustCheck(t, b, f, r)
}

func TestRule_R5_MissFillsCacheThenServesFromIt(t *testing.T) {
	data := pattern(3, 256*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{})
	if got := mustRead(t, f, 5000, 3000, nil); !bytes.Equal(got, data[5000:8000]) {
		t.Fatal("first read returned wrong data")
	}
	reads, _ := r.counts()
	if got := mustRead(t, f, 4096, 8000, nil); !bytes.Equal(got, data[4096:12096]) {
		t.Fatal("second read returned wrong data")
	}
	if again, _ := r.counts(); again != reads {
		t.Errorf("cached read asked the remote %d more times", again-reads)
	}
	mustCheck(t, b, f, r)
}

func TestRule_R5_OverBudgetReadsRemoteWithoutFilling(t *testing.T) {
	data := pattern(5, 64*kib)
	f, r, b := newTestFile(t, data, 0, Options{})
	if got := mustRead(t, f, 100, 20000, nil); !bytes.Equal(got, data[100:20100]) {
		t.Fatal("wrong data")
	}
	if f.CachedBytes() != 0 {
		t.Errorf("CachedBytes = %d with a zero budget", f.CachedBytes())
	}
	mustCheck(t, b, f, r)
}

func TestRule_R6_ReadaheadFillsSeedWindow(t *testing.T) {
	f, r, _ := newTestFile(t, pattern(1, 1<<20), 4<<20, Options{})
	mustRead(t, f, 0, 4*kib, nil)
	if got := f.CachedBytes(); got != 64*kib {
		t.Errorf("CachedBytes after a 4 KiB read = %d, want 64 KiB", got)
	}
	if reads, _ := r.counts(); reads != 1 {
		t.Errorf("remote reads = %d, want 1", reads)
	}
}

func TestRule_R6_SequentialReadsGrowWindowToMax(t *testing.T) {
	const size = 8 << 20
	data := pattern(1, size)
	opts := Options{MinReadahead: 64 * kib, MaxReadahead: 1 << 20}
	f, r, _ := newTestFile(t, data, 16<<20, opts)
	var ra Readahead
	for off := 0; off < size; off += 128 * kib {
		if got := mustRead(t, f, off, 128*kib, &ra); !bytes.Equal(got, data[off:off+128*kib]) {
			t.Fatalf("wrong data at %d", off)
		}
	}
	// With a fixed 64 KiB window this would take 128 calls; growing to 1
	// MiB takes a handful to ramp up and then one per MiB.
	if reads, _ := r.counts(); reads > 12 {
		t.Errorf("remote reads = %d, want at most 12", reads)
	}
	if ra.window != 1<<20 {
		t.Errorf("window = %d, want the 1 MiB maximum", ra.window)
	}
	// A jump resets the window to the minimum.
	mustRead(t, f, 0, 4*kib, &ra)
	if ra.window != 64*kib {
		t.Errorf("window after a jump = %d, want 64 KiB", ra.window)
	}
}

func TestRule_R6_WindowNeverShrinksBelowRequired(t *testing.T) {
	data := pattern(9, 4<<20)
	f, r, _ := newTestFile(t, data, 8<<20, Options{})
	if got := mustRead(t, f, 0, 2<<20, nil); !bytes.Equal(got, data[:2<<20]) {
		t.Fatal("wrong data")
	}
	if reads, _ := r.counts(); reads != 1 {
		t.Errorf("remote reads = %d, want 1 (the whole required range)", reads)
	}
	if got := f.CachedBytes(); got != 2<<20 {
		t.Errorf("CachedBytes = %d, want the 2 MiB required", got)
	}
}

func TestRule_R6_FillNeverExceedsBudget(t *testing.T) {
	data := pattern(9, 1<<20)
	f, r, b := newTestFile(t, data, 16*kib, Options{})
	if got := mustRead(t, f, 0, 8*kib, nil); !bytes.Equal(got, data[:8*kib]) {
		t.Fatal("wrong data")
	}
	if got := f.CachedBytes(); got != 8*kib {
		t.Errorf("CachedBytes = %d, want only the 8 KiB required", got)
	}
	mustCheck(t, b, f, r)
}

func TestRule_R7_ReadBoundedBySize(t *testing.T) {
	data := pattern(2, 10000)
	f, _, _ := newTestFile(t, data, 1<<20, Options{})
	p := make([]byte, 5000)
	n, err := f.Read(p, 8000, nil)
	if n != 2000 || err != io.EOF || !bytes.Equal(p[:n], data[8000:]) {
		t.Errorf("Read across EOF = %d, %v", n, err)
	}
}

func TestRule_R7_PartialRemoteReadStopsRead(t *testing.T) {
	data := pattern(2, 256*kib)
	for _, tc := range []struct {
		name  string
		fault fault
		want  error
	}{{"short", faultShort, nil}, {"EIO", faultEIO, syscall.EIO}} {
		t.Run(tc.name, func(t *testing.T) {
			f, r, b := newTestFile(t, data, 1<<20, Options{})
			r.setInject(func(string) fault { return tc.fault })
			p := make([]byte, 64*kib)
			n, err := f.Read(p, 0, nil)
			if !errors.Is(err, tc.want) || err == nil && tc.want != nil {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if n >= len(p) || !bytes.Equal(p[:n], data[:n]) {
				t.Errorf("n = %d; data matches: %v", n, bytes.Equal(p[:n], data[:n]))
			}
			if reads, _ := r.counts(); reads != 1 {
				t.Errorf("remote reads = %d, want 1: the read must stop", reads)
			}
			mustCheck(t, b, f, r)
		})
	}
}

// TestRule_R5_FillsStraightIntoPages: a remote that reads into several
// buffers fills pages without a staging buffer, with the same result: the
// bytes read, zeros past the remote's end, nothing past a short read.
func TestRule_R5_FillsStraightIntoPages(t *testing.T) {
	const size = 300*kib + 123 // not a whole page
	data := pattern(7, size)
	r := newFakeRemote(data)
	b := NewBudget(4<<20, nil)
	f, err := NewFile(vectorRemote{r}, b, Options{MinReadahead: 64 * kib, MaxReadahead: 128 * kib})
	if err != nil {
		t.Fatal(err)
	}
	var ra Readahead
	for off := 0; off < size; off += 40 * kib {
		n := min(40*kib, size-off)
		if got := mustRead(t, f, off, n, &ra); !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("wrong data at %d", off)
		}
	}
	// The last page holds the file's tail and zeros after it.
	if _, err := f.Write([]byte{1}, size+200); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, f, size-10, 211, nil)
	want := append(append([]byte(nil), data[size-10:]...), make([]byte, 200)...)
	want = append(want, 1)
	if !bytes.Equal(got, want) {
		t.Errorf("tail = %x, want %x", got, want)
	}
	mustCheck(t, b, f, r)
	// A short remote read stops the fill where it stopped.
	r2 := newFakeRemote(data)
	r2.inject = func(string) fault { return faultShort }
	f2, err := NewFile(vectorRemote{r2}, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got = mustRead(t, f2, 0, 64*kib, nil)
	if len(got) == 0 || len(got) >= 64*kib || !bytes.Equal(got, data[:len(got)]) {
		t.Errorf("short fill read %d bytes, want a correct prefix shorter than 64 KiB", len(got))
	}
	if err := f2.checkInvariants(r2.snapshot()); err != nil {
		t.Error(err)
	}
}
