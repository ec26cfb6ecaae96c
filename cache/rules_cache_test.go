package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
)

func TestRule_M5_FaultFillsWithReadahead(t *testing.T) {
	data := pattern(1, 256*kib)
	f, r, b := newTestFile(t, data, 1<<20, Options{})
	if err := f.Fault(0, 1, false); err != nil {
		t.Fatal(err)
	}
	if got := f.CachedBytes(); got != 64*kib {
		t.Errorf("CachedBytes after a one-page fault = %d, want the 64 KiB window", got)
	}
	mustCheck(t, b, f, r)
}

func TestRule_M5_FaultPastEOFIsBeyondEOF(t *testing.T) {
	f, _, _ := newTestFile(t, pattern(1, 5000), 1<<20, Options{})
	if err := f.Fault(8192, 1, false); !errors.Is(err, ErrBeyondEOF) {
		t.Errorf("fault past the last page = %v, want ErrBeyondEOF", err)
	}
	// The last, partial page is inside the file; the one after is not.
	if err := f.Fault(0, 3*PageSize, false); !errors.Is(err, ErrBeyondEOF) {
		t.Errorf("fault across EOF = %v, want ErrBeyondEOF", err)
	}
	if got := f.CachedBytes(); got != 2*PageSize {
		t.Errorf("CachedBytes = %d, want the 2 pages before EOF", got)
	}
}

func TestRule_M5_WriteFaultKeepsDirtyWhileMapped(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	if err := f.Fault(0, PageSize, true); !errors.Is(err, ErrNotMapped) {
		t.Fatalf("write fault without a mapping = %v, want ErrNotMapped", err)
	}
	if err := f.AddMapping(0, 16*kib, true); err != nil {
		t.Fatal(err)
	}
	if err := f.Fault(PageSize, PageSize, true); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("via mapping"), PageSize)
	if err := f.WriteBackAll(); err != nil {
		t.Fatal(err)
	}
	if string(r.snapshot()[PageSize:][:11]) != "via mapping" {
		t.Error("writeback skipped a kept-dirty page")
	}
	if f.DirtyBytes() != PageSize {
		t.Error("writeback cleaned a page under a writable mapping")
	}
	if err := f.RemoveMapping(0, 16*kib, true); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteBackAll(); err != nil {
		t.Fatal(err)
	}
	if f.DirtyBytes() != 0 {
		t.Error("page still dirty after the mapping went and writeback ran")
	}
	if err := f.RemoveMapping(0, 16*kib, true); !errors.Is(err, ErrNotMapped) {
		t.Errorf("removing a missing mapping = %v, want ErrNotMapped", err)
	}
	mustCheck(t, b, f, r)
}

func TestRule_M6_MappedPagesAreNeverEvicted(t *testing.T) {
	data := pattern(1, 1<<20)
	f, r, b := newTestFile(t, data, 128*kib, Options{})
	if err := f.AddMapping(0, 64*kib, false); err != nil {
		t.Fatal(err)
	}
	if err := f.Fault(0, 64*kib, false); err != nil {
		t.Fatal(err)
	}
	// Stream the rest of the file through the remaining budget.
	for off := 64 * kib; off < 1<<20; off += 64 * kib {
		mustRead(t, f, off, 64*kib, nil)
	}
	if err := f.Evict(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := f.CachedBytes(); got != 64*kib {
		t.Errorf("CachedBytes = %d, want the 64 KiB mapped", got)
	}
	if err := f.RemoveMapping(0, 64*kib, false); err != nil {
		t.Fatal(err)
	}
	if err := f.Evict(0, 1<<20); err != nil || f.CachedBytes() != 0 {
		t.Errorf("after unmapping, Evict = %v and %d bytes stay", err, f.CachedBytes())
	}
	mustCheck(t, b, f, r)
}

func TestRule_C1_EvictionWritesBackDirtyFirst(t *testing.T) {
	const page = PageSize
	data := pattern(1, 64*page)
	f, r, b := newTestFile(t, data, 8*page, Options{MinReadahead: page})
	mustRead(t, f, 0, 8*page, nil)
	mustWrite(t, f, []byte("must survive"), 0)
	// Fill the budget with other pages until page 0 is evicted.
	for off := 8 * page; off < 64*page; off += page {
		mustRead(t, f, off, page, nil)
	}
	if _, ok := f.pages.Find(0); ok {
		t.Fatal("page 0 was not evicted")
	}
	if string(r.snapshot()[:12]) != "must survive" {
		t.Error("evicted dirty page was not written back")
	}
	mustCheck(t, b, f, r)
}

func TestRule_C1_WritebackErrorKeepsDirty(t *testing.T) {
	const page = PageSize
	var reported []error
	r := newFakeRemote(pattern(1, 64*page))
	b := NewBudget(8*page, func(err error) { reported = append(reported, err) })
	f, err := NewFile(r, b, Options{MinReadahead: page})
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, f, 0, 8*page, nil)
	mustWrite(t, f, []byte("must survive"), 0)
	r.setInject(func(op string) fault {
		if op == "write" {
			return faultENOSPC
		}
		return noFault
	})
	for off := 8 * page; off < 64*page; off += page {
		mustRead(t, f, off, page, nil)
	}
	if err := f.Evict(0, page); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Evict = %v, want ENOSPC", err)
	}
	if len(reported) == 0 || !errors.Is(reported[0], syscall.ENOSPC) {
		t.Errorf("reported errors = %v, want ENOSPC", reported)
	}
	if got := mustRead(t, f, 0, 12, nil); string(got) != "must survive" {
		t.Errorf("dirty data lost: read %q", got)
	}
	if f.DirtyBytes() != page {
		t.Errorf("DirtyBytes = %d, want the page that failed", f.DirtyBytes())
	}
	mustCheck(t, b, f, r)
	r.setInject(nil)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if string(r.snapshot()[:12]) != "must survive" {
		t.Error("retried writeback did not reach the remote")
	}
}

func TestRule_C2_CloseWritesBackThenDrops(t *testing.T) {
	f, r, b := newTestFile(t, pattern(1, 64*kib), 1<<20, Options{})
	mustRead(t, f, 0, 64*kib, nil)
	mustWrite(t, f, []byte("unmount"), 500)
	r.setInject(func(string) fault { return faultEIO })
	if err := f.Close(); !errors.Is(err, syscall.EIO) || f.DirtyBytes() == 0 {
		t.Fatalf("Close with a failing remote = %v; dirty %d", err, f.DirtyBytes())
	}
	r.setInject(nil)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.CachedBytes() != 0 || b.Stats().Used != 0 {
		t.Error("Close left pages cached")
	}
	if string(r.snapshot()[500:507]) != "unmount" {
		t.Error("Close did not write back")
	}
}

func TestRule_C3_BudgetNeverExceededByMoreThanOneWindow(t *testing.T) {
	const (
		limit  = 256 * kib
		window = 128 * kib
		files  = 4
	)
	b := NewBudget(limit, nil)
	var fs []*File
	for i := range files {
		f, err := NewFile(newFakeRemote(pattern(byte(i), 2<<20)), b,
			Options{MinReadahead: 16 * kib, MaxReadahead: window})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var ra Readahead
			p := make([]byte, 32*kib)
			off := 0
			for range 300 {
				f := fs[rng.IntN(files)]
				if rng.IntN(4) == 0 {
					off = rng.IntN(2 << 20)
				}
				n, _ := f.Read(p[:1+rng.IntN(len(p)-1)], int64(off), &ra)
				off += n
				if rng.IntN(8) == 0 {
					f.Write(p[:100], int64(rng.IntN(2<<20)))
				}
				if used := b.Stats().Used; used > limit+window {
					t.Errorf("budget used %d > limit %d + one window", used, limit)
				}
			}
		})
	}
	wg.Wait()
	st := b.Stats()
	// The design guarantees more than C3 asks: charges never exceed limit.
	if st.Peak > limit {
		t.Errorf("peak %d > limit %d", st.Peak, limit)
	}
	if st.Evictions == 0 {
		t.Error("no evictions: the test did not press on the budget")
	}
	if err := checkBudget(b, fs...); err != nil {
		t.Error(err)
	}
}

func TestBudgetEvictsLeastRecentlyUsed(t *testing.T) {
	const page = PageSize
	f, _, _ := newTestFile(t, pattern(1, 64*page), 3*page, Options{MinReadahead: page})
	for _, p := range []int{0, 1, 2} {
		mustRead(t, f, p*page, page, nil)
	}
	mustRead(t, f, 0, page, nil) // page 0 is now the most recently used
	mustRead(t, f, 3*page, page, nil)
	for p, want := range []bool{true, false, true, true} {
		if _, ok := f.pages.Find(uint64(p * page)); ok != want {
			t.Errorf("page %d cached = %v, want %v", p, ok, want)
		}
	}
}

func TestConcurrentReadersWritersAndWriteback(t *testing.T) {
	const size = 512 * kib
	data := pattern(3, size)
	f, r, b := newTestFile(t, data, 256*kib, Options{MinReadahead: 16 * kib})
	var wg sync.WaitGroup
	// Each writer owns a disjoint stripe, so the expected contents are
	// known however the goroutines interleave.
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 200 {
				off := w*size/4 + rng.IntN(size/4-100)
				buf := []byte(fmt.Sprintf("%d:%d", w, i))
				n, err := f.Write(buf, int64(off))
				if err != nil || n != len(buf) {
					t.Errorf("Write = %d, %v", n, err)
				}
				copy(data[off:], buf) // stripes are disjoint: no race on data
				switch i % 50 {
				case 10:
					f.WriteBack(int64(off), 100)
				case 20:
					f.Evict(int64(w*size/4), size/4)
				}
			}
		})
		wg.Go(func() {
			var ra Readahead
			p := make([]byte, 8*kib)
			for i := range 200 {
				f.Read(p, int64((i*8*kib+w*size/4)%size), &ra)
			}
		})
	}
	wg.Wait()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.snapshot(), data) {
		t.Error("remote differs from what was written")
	}
	mustCheck(t, b, f, r)
}

func TestDefaultBudgetBytes(t *testing.T) {
	if got := DefaultBudgetBytes(); got <= 0 {
		t.Errorf("DefaultBudgetBytes = %d", got)
	}
	meminfo := []byte("MemFree:  1 kB\nMemTotal:       16384 kB\n")
	if got := memTotal(meminfo); got != 16384<<10 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal([]byte("garbage")); got != 0 {
		t.Errorf("memTotal(garbage) = %d", got)
	}
}

// TestConcurrentMixedOperations runs every operation at once on files that
// share a small budget (so reads evict, and write back, each other's
// pages), then checks the invariants and that a final Sync leaves the
// remote equal to what readers see.
func TestConcurrentMixedOperations(t *testing.T) {
	const size = 256 * kib
	b := NewBudget(96*kib, nil)
	var fs []*File
	var rs []*fakeRemote
	for i := range 3 {
		r := newFakeRemote(pattern(byte(i), size))
		f, err := NewFile(r, b, Options{MinReadahead: 8 * kib, MaxReadahead: 64 * kib})
		if err != nil {
			t.Fatal(err)
		}
		fs, rs = append(fs, f), append(rs, r)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			var ra Readahead
			p := make([]byte, 24*kib)
			for range 300 {
				f := fs[rng.IntN(len(fs))]
				off, n := int64(rng.IntN(size)), int64(rng.IntN(len(p)))
				switch rng.IntN(12) {
				case 0, 1, 2:
					f.Read(p[:n], off, &ra)
				case 3, 4:
					f.Write(p[:n], off)
				case 5:
					f.WriteBack(off, n)
				case 6:
					f.Evict(off, n)
				case 7:
					f.WriteDirect(p[:n], off)
				case 8:
					f.Truncate(int64(size/2 + rng.IntN(size)))
				case 9:
					if f.AddMapping(off, n, true) == nil {
						f.Fault(off, n, true)
						f.RemoveMapping(off, n, true)
					}
				case 10:
					f.ReadDirect(p[:n], off)
				case 11:
					f.Sync()
				}
			}
		})
	}
	wg.Wait()
	for i, f := range fs {
		if err := f.checkInvariants(rs[i].snapshot()); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		view := f.view(rs[i].snapshot())
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rs[i].snapshot(), view) {
			t.Fatalf("file %d: remote after Sync differs from what readers saw", i)
		}
	}
	if err := checkBudget(b, fs...); err != nil {
		t.Fatal(err)
	}
}

func TestWarmReadDoesNotAllocate(t *testing.T) {
	f, _, _ := newTestFile(t, pattern(1, 1<<20), 2<<20, Options{})
	p := make([]byte, 64*kib)
	mustRead(t, f, 0, 1<<20, nil)
	var ra Readahead
	off := int64(0)
	allocs := testing.AllocsPerRun(100, func() {
		f.Read(p, off, &ra)
		off = (off + int64(len(p))) % (1 << 20)
	})
	if allocs != 0 {
		t.Errorf("warm read allocates %v times", allocs)
	}
}
