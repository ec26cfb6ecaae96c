package cache

import (
	"bytes"
	"testing"
	"time"
)

// asyncOpts makes streams reach their largest window after three reads.
var asyncOpts = Options{MinReadahead: 64 * kib, MaxReadahead: 256 * kib, AsyncReadahead: true}

func TestRule_R6_SequentialStreamFillsTheNextWindowInTheBackground(t *testing.T) {
	const size = 4 << 20
	data := pattern(3, size)
	f, r, b := newTestFile(t, data, 16<<20, asyncOpts)
	var ra Readahead
	off := 0
	for ; off < 1<<20; off += 128 * kib {
		if got := mustRead(t, f, off, 128*kib, &ra); !bytes.Equal(got, data[off:off+128*kib]) {
			t.Fatalf("wrong data at %d", off)
		}
	}
	f.waitAhead(false)
	// The stream read 1 MiB; the background fill took the window after
	// the last synchronous fill, past what was read.
	if got := f.CachedBytes(); got <= int64(off) {
		t.Fatalf("CachedBytes = %d after a 1 MiB stream, want more: nothing was filled ahead", got)
	}
	if f.counters.Stats().ReadaheadBytes == 0 {
		t.Error("ReadaheadBytes = 0: the background fill was not counted")
	}
	// The next read is served from the window filled ahead.
	hits := f.counters.Stats().Hits
	if got := mustRead(t, f, off, 128*kib, &ra); !bytes.Equal(got, data[off:off+128*kib]) {
		t.Fatalf("wrong data at %d", off)
	}
	if f.counters.Stats().Hits != hits+1 {
		t.Error("the read after the stream missed the cache")
	}
	for off += 128 * kib; off < size; off += 128 * kib {
		if got := mustRead(t, f, off, 128*kib, &ra); !bytes.Equal(got, data[off:off+128*kib]) {
			t.Fatalf("wrong data at %d", off)
		}
	}
	f.waitAhead(false)
	mustCheck(t, b, f, r)
}

func TestRule_R6_JumpsFillNothingInTheBackground(t *testing.T) {
	data := pattern(4, 4<<20)
	f, r, b := newTestFile(t, data, 16<<20, asyncOpts)
	var ra Readahead
	for i, off := range []int{3 << 20, 0, 2 << 20, 1 << 20} {
		if got := mustRead(t, f, off, 4*kib, &ra); !bytes.Equal(got, data[off:off+4*kib]) {
			t.Fatalf("read %d: wrong data", i)
		}
	}
	f.waitAhead(false)
	// Four reads, each a jump: four fills of the 64 KiB minimum window.
	if got := f.CachedBytes(); got != 4*64*kib {
		t.Errorf("CachedBytes = %d, want %d: a jump filled ahead", got, 4*64*kib)
	}
	mustCheck(t, b, f, r)
}

func TestRule_R6_BackgroundFillStaysWithinBudget(t *testing.T) {
	const size = 4 << 20
	data := pattern(5, size)
	const limit = 512 * kib
	f, r, b := newTestFile(t, data, limit, asyncOpts)
	var ra Readahead
	for off := 0; off < size; off += 128 * kib {
		if got := mustRead(t, f, off, 128*kib, &ra); !bytes.Equal(got, data[off:off+128*kib]) {
			t.Fatalf("wrong data at %d", off)
		}
		if st := b.Stats(); st.Used > limit {
			t.Fatalf("budget used %d > limit %d", st.Used, limit)
		}
	}
	f.waitAhead(false)
	if st := b.Stats(); st.Peak > limit {
		t.Errorf("budget peak %d > limit %d", st.Peak, limit)
	}
	mustCheck(t, b, f, r)
}

// gatedRemote holds every ReadAt until the test lets it go, once armed.
type gatedRemote struct {
	*fakeRemote
	armed   chan struct{} // closed to arm the gate
	entered chan struct{} // receives when a ReadAt waits at the gate
	release chan struct{} // closed to let reads through
}

func (g *gatedRemote) ReadAt(p []byte, off int64) (int, error) {
	select {
	case <-g.armed:
		g.entered <- struct{}{}
		<-g.release
	default:
	}
	return g.fakeRemote.ReadAt(p, off)
}

func TestRule_C2_CloseWaitsForAndStopsBackgroundFills(t *testing.T) {
	data := pattern(6, 4<<20)
	g := &gatedRemote{newFakeRemote(data), make(chan struct{}), make(chan struct{}, 64), make(chan struct{})}
	f, err := NewFile(g, NewBudget(16<<20, nil), asyncOpts)
	if err != nil {
		t.Fatal(err)
	}
	var ra Readahead
	off := 0
	for ; ra.window < uint64(asyncOpts.MaxReadahead); off += 64 * kib {
		mustRead(t, f, off, 64*kib, &ra)
		f.waitAhead(false)
	}
	// The next read is served from the window filled ahead and starts a
	// background fill of the one after, which waits at the gate.
	close(g.armed)
	hits := f.counters.Stats().Hits
	mustRead(t, f, off, 64*kib, &ra)
	if f.counters.Stats().Hits != hits+1 {
		t.Fatal("the read missed the cache; the test's stream is off")
	}
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no background fill started")
	}
	closed := make(chan error)
	go func() { closed <- f.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a background fill was reading the remote", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// After Close, reads still work but start nothing in the background:
	// the caller may have closed the remote.
	before, _ := g.counts()
	for o := 0; o < 1<<20; o += 64 * kib {
		mustRead(t, f, o, 64*kib, &ra)
	}
	f.ahead.mu.Lock()
	running := f.ahead.done != nil
	f.ahead.mu.Unlock()
	if running {
		t.Error("a background fill started after Close")
	}
	after, _ := g.counts()
	if after == before {
		t.Error("no remote reads after Close: the reads were not served")
	}
}
