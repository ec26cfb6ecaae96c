package cache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// concurrentRemote holds every ReadAt until want of them are in flight at once,
// or until a liveness bound passes, and records the most in flight.
type concurrentRemote struct {
	*fakeRemote
	want int

	mu       sync.Mutex
	inflight int
	most     int
	all      chan struct{} // closed when want reads are in flight
}

func (g *concurrentRemote) ReadAt(p []byte, off int64) (int, error) {
	g.mu.Lock()
	g.inflight++
	g.most = max(g.most, g.inflight)
	if g.inflight == g.want {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(5 * time.Second):
		// Only a bound so that a cache that fills one at a time fails
		// the test instead of hanging it.
	}
	defer func() {
		g.mu.Lock()
		g.inflight--
		g.mu.Unlock()
	}()
	return g.fakeRemote.ReadAt(p, off)
}

func TestRule_R5_ReadersOfOneFileFillAtOnce(t *testing.T) {
	data := pattern(7, 4<<20)
	g := &concurrentRemote{fakeRemote: newFakeRemote(data), want: 2, all: make(chan struct{})}
	b := NewBudget(8<<20, nil)
	f, err := NewFile(g, b, Options{MinReadahead: 64 * kib, MaxReadahead: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			off := i * (2 << 20)
			p := make([]byte, 256*kib)
			n, err := f.Read(p, int64(off), nil)
			if err != nil || !bytes.Equal(p[:n], data[off:off+len(p)]) {
				t.Errorf("Read at %d = %d, %v, or wrong data", off, n, err)
			}
		})
	}
	wg.Wait()
	if g.most != 2 {
		t.Errorf("at most %d fills of one file in flight, want 2", g.most)
	}
	mustCheck(t, b, f, g.fakeRemote)
}

// TestRule_R5_ConcurrentFillsReadEachByteOnce has many readers of one file
// race over overlapping ranges: each must get the file's bytes, and no
// byte may be read from the remote twice (a reader that needs a range
// another is filling waits for that fill instead of reading it again).
func TestRule_R5_ConcurrentFillsReadEachByteOnce(t *testing.T) {
	const size = 2 << 20
	data := pattern(9, size)
	f, r, b := newTestFile(t, data, 4*size, Options{MinReadahead: 16 * kib, MaxReadahead: 256 * kib})
	r.latency = 20 * time.Microsecond
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 5))
			var ra Readahead
			for range 100 {
				off := rng.IntN(size)
				n := 1 + rng.IntN(96*kib)
				if rng.IntN(3) == 0 {
					off = (g*size/8 + off/16) % size // a sequential-ish stream
				}
				got := mustReadT(t, f, off, n, &ra)
				if !bytes.Equal(got, data[off:min(off+n, size)]) {
					t.Errorf("Read(%d, %d) returned wrong data", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	read := r.readBytes
	r.mu.Unlock()
	if cached := f.CachedBytes(); read != cached {
		t.Errorf("remote read %d bytes for %d cached: some were read twice", read, cached)
	}
	mustCheck(t, b, f, r)
}

// mustReadT is mustRead for goroutines other than the test's: it reports
// with Errorf.
func mustReadT(t *testing.T, f *File, off, n int, ra *Readahead) []byte {
	p := make([]byte, n)
	got, err := f.Read(p, int64(off), ra)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("Read(%d, %d): %v", off, n, err)
	}
	return p[:got]
}
