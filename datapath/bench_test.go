package datapath

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// Benchmarks of the read and write paths on real mounts. hack/bench-cache.sh
// runs them and prints the ratios the rules' targets are stated in; no test
// asserts on time.

func benchSize() int {
	if testing.Short() {
		return 8 << 20
	}
	return 64 << 20
}

// BenchmarkWarmReRead reads a file that is already cached, 1 MiB at a time:
// with a host FD the kernel reads the backing file's page cache; without
// one, exclusive volumes and read-only writethrough opens hit the kernel's
// cache of the FUSE file, and read-write writethrough opens (direct I/O)
// the daemon's page cache, whose pages go to the kernel without a copy.
func BenchmarkWarmReRead(b *testing.B) {
	for _, v := range []struct {
		variant
		flag int
	}{
		{variant{"passthrough", Options{Mode: Exclusive}}, os.O_RDONLY},
		{variant{"pagecache-exclusive", Options{Mode: Exclusive, ForcePageCache: true}}, os.O_RDONLY},
		{variant{"pagecache-writethrough", Options{Mode: WriteThrough, ForcePageCache: true}}, os.O_RDONLY},
		{variant{"daemoncache-writethrough-rw", Options{Mode: WriteThrough, ForcePageCache: true}}, os.O_RDWR},
	} {
		b.Run(v.name, func(b *testing.B) {
			tv := mountTest(b, v.opts)
			size := benchSize()
			writeFile(b, tv.remote("f"), string(bytes.Repeat([]byte{7}, size)))
			f := openT(b, tv.path("f"), v.flag)
			buf := make([]byte, 1<<20)
			readAll := func() {
				for off := 0; off < size; off += len(buf) {
					if _, err := f.ReadAt(buf, int64(off)); err != nil {
						b.Fatal(err)
					}
				}
			}
			readAll() // warm every cache
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				readAll()
			}
		})
	}
}

// slowFS adds a fixed latency to every remote read and write, standing in
// for a network round trip.
type slowFS struct {
	backend.FS
	delay time.Duration
}

type slowFile struct {
	backend.File
	delay time.Duration
}

func (s slowFS) Open(name string, flags int, perm uint32) (backend.File, error) {
	f, err := s.FS.Open(name, flags, perm)
	if err != nil {
		return nil, err
	}
	return slowFile{f, s.delay}, nil
}

func (f slowFile) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(f.delay)
	return f.File.ReadAt(p, off)
}

func (f slowFile) WriteAt(p []byte, off int64) (int, error) {
	time.Sleep(f.delay)
	return f.File.WriteAt(p, off)
}

// remoteRTT is the latency slowFS adds: a round trip on a fast network.
const remoteRTT = 200 * time.Microsecond

// BenchmarkColdSequentialRead reads, 1 MiB at a time, a file that neither
// the kernel nor the daemon has cached, through the daemon's page cache:
// from the local remote (whose own page cache has the file, so the
// daemon's work is what is timed) and from one that answers each read
// after remoteRTT. Each round reads a new file. cpu-s/GiB is the CPU time
// of the process (the daemon, and the reads' own system calls) per GiB
// read: on a machine whose cores are busy, what the throughput comes to.
func BenchmarkColdSequentialRead(b *testing.B) {
	for _, v := range []struct {
		variant
		wrap func(backend.FS) backend.FS
	}{
		{variant{"local", Options{Mode: Exclusive, ForcePageCache: true}}, nil},
		{variant{"rtt", Options{Mode: Exclusive, ForcePageCache: true}}, func(be backend.FS) backend.FS { return slowFS{be, remoteRTT} }},
	} {
		b.Run(v.name, func(b *testing.B) {
			tv := mountTestFS(b, v.opts, v.wrap)
			size := benchSize()
			data := bytes.Repeat([]byte{7}, size)
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(size))
			var cpu time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				name := fmt.Sprintf("f%d", i)
				if err := os.WriteFile(tv.remote(name), data, 0o644); err != nil {
					b.Fatal(err)
				}
				f := openT(b, tv.path(name), os.O_RDONLY)
				cpu -= processCPU(b)
				b.StartTimer()
				for off := 0; off < size; off += len(buf) {
					if _, err := f.ReadAt(buf, int64(off)); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cpu += processCPU(b)
				f.Close()
				os.Remove(tv.remote(name))
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*float64(size)/(1<<30)), "cpu-s/GiB")
		})
	}
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRandomWrite4K writes 4 KiB blocks at random aligned offsets of a
// 4 MiB file whose remote answers after remoteRTT: exclusive volumes
// buffer the writes, shared volumes send each one to the remote.
func BenchmarkRandomWrite4K(b *testing.B) {
	for _, v := range []variant{
		{"exclusive", Options{Mode: Exclusive, ForcePageCache: true}},
		{"writethrough", Options{Mode: WriteThrough, ForcePageCache: true}},
		{"shared", Options{Mode: Shared, ForcePageCache: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			tv := mountTestFS(b, v.opts, func(be backend.FS) backend.FS { return slowFS{be, remoteRTT} })
			const size = 4 << 20
			writeFile(b, tv.remote("f"), string(make([]byte, size)))
			f := openT(b, tv.path("f"), os.O_RDWR)
			readAllAt(b, f) // cached pages take buffered writes (W5)
			rng := rand.New(rand.NewPCG(1, 2))
			block := bytes.Repeat([]byte{1}, 4096)
			b.SetBytes(int64(len(block)))
			b.ResetTimer()
			for range b.N {
				off := int64(rng.IntN(size/4096)) * 4096
				if _, err := unix.Pwrite(int(f.Fd()), block, off); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkCacheWorkingSet4x reads, through a writethrough volume without
// a host FD, a working set four times the page cache budget and reports
// the cache's peak use against its budget (target: <= 1).
func BenchmarkCacheWorkingSet4x(b *testing.B) {
	const limit = 4 << 20
	budget := NewBudget(limit)
	tv := mountTest(b, Options{Mode: WriteThrough, ForcePageCache: true, Budget: budget})
	writeFile(b, tv.remote("f"), string(bytes.Repeat([]byte{3}, 4*limit)))
	f := openT(b, tv.path("f"), os.O_RDONLY)
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		off := int64(rng.IntN(4*limit/len(buf))) * int64(len(buf))
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := budget.Stats()
	b.ReportMetric(float64(st.Peak)/float64(limit), "peak/budget")
	b.ReportMetric(float64(st.Evictions)/float64(b.N), "evictions/op")
}
