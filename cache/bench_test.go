package cache

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchSize picks n, or n/4 with -short, so that benchmarks stay quick.
func benchSize(n int) int {
	if testing.Short() {
		return n / 4
	}
	return n
}

func BenchmarkWarmRead(b *testing.B) {
	size := benchSize(16 << 20)
	data := pattern(1, size)
	for _, n := range []int{4 << 10, 1 << 20} {
		f, _, _ := newTestFile(b, data, int64(size), Options{})
		p := make([]byte, n)
		f.Read(make([]byte, size), 0, nil)
		if f.CachedBytes() != int64(size) {
			b.Fatalf("warm-up cached %d of %d bytes", f.CachedBytes(), size)
		}
		b.Run(fmt.Sprintf("cache-%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			off := 0
			for b.Loop() {
				if _, err := f.Read(p, int64(off), nil); err != nil {
					b.Fatal(err)
				}
				off = (off + n) % size
			}
		})
		// memcpy is the floor: what a read costs with no cache logic.
		b.Run(fmt.Sprintf("memcpy-%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			off := 0
			for b.Loop() {
				copy(p, data[off:off+n])
				off = (off + n) % size
			}
		})
	}
}

// slowRemote returns a fake remote that spins latency per call plus the
// transfer time at 1 GiB/s.
func slowRemote(data []byte, latency time.Duration) *fakeRemote {
	r := newFakeRemote(data)
	r.latency, r.perMiB = latency, time.Millisecond
	return r
}

func BenchmarkColdSequentialRead(b *testing.B) {
	size := benchSize(32 << 20)
	data := pattern(1, size)
	for _, maxRA := range []int64{64 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("max=%dKiB", maxRA>>10), func(b *testing.B) {
			r := slowRemote(data, 200*time.Microsecond)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			p := make([]byte, 128<<10)
			for b.Loop() {
				f, err := NewFile(r, NewBudget(64<<20, nil), Options{MaxReadahead: maxRA})
				if err != nil {
					b.Fatal(err)
				}
				var ra Readahead
				for off := 0; off < size; off += len(p) {
					if _, err := f.Read(p, int64(off), &ra); err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
			}
			reads, _ := r.counts()
			b.ReportMetric(float64(reads)/float64(b.N), "remote-calls/op")
		})
	}
}

func BenchmarkRandomWrite4KiB(b *testing.B) {
	size := benchSize(16 << 20)
	data := pattern(1, size)
	for _, mode := range []string{"buffered", "writethrough", "remote"} {
		b.Run(mode, func(b *testing.B) {
			r := slowRemote(data, 50*time.Microsecond)
			f, err := NewFile(r, NewBudget(int64(2*size), nil), Options{})
			if err != nil {
				b.Fatal(err)
			}
			if mode != "remote" {
				f.Read(make([]byte, size), 0, nil)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			p := pattern(9, 4<<10)
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				off := int64(rng.IntN(size/len(p)) * len(p))
				if _, err := f.Write(p, off); err != nil {
					b.Fatal(err)
				}
				if mode == "writethrough" {
					if err := f.WriteBack(off, int64(len(p))); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkMemoryVsBudget reads (and sometimes writes) a working set four
// times the budget at random, and reports the cache's memory against its
// budget: the peak of charged pages, and the heap the cache holds after
// GC (pages, page metadata, range sets and pooled buffers).
func BenchmarkMemoryVsBudget(b *testing.B) {
	budget := int64(benchSize(32 << 20))
	const files = 4
	per := int(budget) // files * per = 4x the budget
	bud := NewBudget(budget, nil)
	var fs []*File
	for i := range files {
		f, err := NewFile(newFakeRemote(pattern(byte(i), per)), bud, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fs = append(fs, f)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rng := rand.New(rand.NewPCG(3, 4))
	p := make([]byte, 64<<10)
	var ra Readahead
	op := func() {
		f := fs[rng.IntN(files)]
		off := int64(rng.IntN(per - len(p)))
		if rng.IntN(10) == 0 {
			f.Write(p[:4<<10], off)
		} else {
			f.Read(p, off, &ra)
		}
	}
	// Fill the budget first, so every measured read competes for it.
	for bud.Stats().Used < budget-budget/8 {
		op()
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := bud.Stats()
	b.ReportMetric(float64(st.Peak)/float64(budget), "peak/budget")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(budget), "heap/budget")
	b.ReportMetric(float64(st.Evictions)/float64(b.N), "evicted-pages/op")
}
