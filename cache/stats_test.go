package cache

import (
	"testing"
)

// Counters shared by two Files add up their hits, misses, fills,
// readahead, writeback and evictions, each counted where it happens.
func TestCountersAccumulateActivity(t *testing.T) {
	const page = PageSize
	var c Counters
	b := NewBudget(8*page, nil)
	r1, r2 := newFakeRemote(pattern(1, 64*page)), newFakeRemote(pattern(2, 64*page))
	f1, err := NewFile(r1, b, Options{MinReadahead: 4 * page, MaxReadahead: 4 * page, Counters: &c})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := NewFile(r2, b, Options{MinReadahead: page, Counters: &c})
	if err != nil {
		t.Fatal(err)
	}

	mustRead(t, f1, 0, page, nil) // miss: fills 4 pages, 3 of them readahead
	mustRead(t, f1, page, page, nil)
	want := Stats{Hits: 1, Misses: 1, Fills: 1, FilledBytes: 4 * page, ReadaheadBytes: 3 * page}
	if got := c.Stats(); got != want {
		t.Fatalf("after a miss and a hit: %+v, want %+v", got, want)
	}

	mustWrite(t, f1, []byte("dirty"), 0)
	if err := f1.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().WritebackBytes; got != page {
		t.Errorf("WritebackBytes = %d, want one page", got)
	}

	// f2 fills the 8-page budget past its limit: f1's pages make room.
	for off := 0; off < 8*page; off += page {
		mustRead(t, f2, off, page, nil)
	}
	if got := c.Stats().Evictions; got < 4 {
		t.Errorf("Evictions = %d, want f1's 4 pages evicted", got)
	}

	mustRead(t, f2, 20*page, page, nil)
	mustWrite(t, f2, []byte("lost?"), 20*page)
	r2.setInject(func(op string) fault {
		if op == "write" {
			return faultEIO
		}
		return noFault
	})
	if err := f2.WriteBackAll(); err == nil {
		t.Fatal("WriteBackAll with a failing remote succeeded")
	}
	if got := c.Stats().WritebackErrors; got != 1 {
		t.Errorf("WritebackErrors = %d, want 1", got)
	}
}

// Without Counters in Options a File still counts, privately: nothing
// needs a nil check.
func TestNilCountersIsAllowed(t *testing.T) {
	f, _, _ := newTestFile(t, pattern(1, 16*kib), 1<<20, Options{})
	mustRead(t, f, 0, 100, nil)
	if got := f.counters.Stats().Misses; got != 1 {
		t.Errorf("Misses = %d, want 1", got)
	}
}
