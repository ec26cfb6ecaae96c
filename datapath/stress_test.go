package datapath

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var stressSeed = flag.Uint64("stress.seed", 0, "seed of the random stress run (0: a fresh one, printed)")

// stressOps is the number of operations per stress run and variant.
const stressOps = 3000

// TestDataIntegrityStress drives random mixes of pwrite, pread, truncate,
// mmap writes, msync and fsync on several files through a real mount,
// checks every read against a model, and after unmount checks the backing
// files against it. It runs once with a fixed seed and once with a fresh
// one, which a failure prints so it can be replayed with -stress.seed.
func TestDataIntegrityStress(t *testing.T) {
	seeds := []uint64{1, *stressSeed}
	if seeds[1] == 0 {
		seeds[1] = uint64(time.Now().UnixNano())
	}
	for _, v := range allVariants() {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", v.name, seed), func(t *testing.T) {
				runStress(t, v.opts, seed)
			})
		}
	}
}

// mmapAllowed tells whether the variant allows MAP_SHARED writable
// mappings (M1-M3).
func mmapAllowed(o Options) bool {
	return o.Mode == Exclusive || !o.ForcePageCache
}

type stressFile struct {
	f     *os.File
	model []byte
}

func runStress(t *testing.T, opts Options, seed uint64) {
	tv := mountTest(t, opts)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with -stress.seed=%d): %s", seed, seed, fmt.Sprintf(format, args...))
	}
	const nfiles, maxSize = 4, 256 << 10
	files := make([]*stressFile, nfiles)
	for i := range files {
		files[i] = &stressFile{f: createT(t, tv.path(fmt.Sprintf("f%d", i)), 0)}
	}
	for op := 0; op < stressOps; op++ {
		sf := files[rng.IntN(nfiles)]
		fd := int(sf.f.Fd())
		switch k := rng.IntN(100); {
		case k < 40: // pwrite
			off, n := rng.IntN(maxSize), 1+rng.IntN(16<<10)
			buf := randBytes(rng, n)
			if _, err := unix.Pwrite(fd, buf, int64(off)); err != nil {
				fail("op %d pwrite(%d, %d): %v", op, off, n, err)
			}
			sf.model = writeModel(sf.model, buf, off)
		case k < 70: // pread, compared with the model
			off, n := rng.IntN(maxSize), 1+rng.IntN(32<<10)
			buf := make([]byte, n)
			got, err := unix.Pread(fd, buf, int64(off))
			if err != nil {
				fail("op %d pread(%d, %d): %v", op, off, n, err)
			}
			if want := readModel(sf.model, off, n); !bytes.Equal(buf[:got], want) {
				fail("op %d pread(%d, %d) = %d bytes, model has %d; first difference at %d",
					op, off, n, got, len(want), firstDiff(buf[:got], want))
			}
		case k < 80: // truncate
			size := rng.IntN(maxSize)
			if err := unix.Ftruncate(fd, int64(size)); err != nil {
				fail("op %d ftruncate(%d): %v", op, size, err)
			}
			sf.model = truncateModel(sf.model, size)
		case k < 90: // write through a shared mapping, then msync
			if !mmapAllowed(opts) || len(sf.model) == 0 {
				continue
			}
			off := rng.IntN(len(sf.model))
			buf := randBytes(rng, 1+rng.IntN(min(8<<10, len(sf.model)-off)))
			if err := mmapWrite(fd, len(sf.model), off, buf); err != nil {
				fail("op %d mmap write(%d, %d): %v", op, off, len(buf), err)
			}
			sf.model = writeModel(sf.model, buf, off)
		default:
			if err := unix.Fsync(fd); err != nil {
				fail("op %d fsync: %v", op, err)
			}
		}
	}
	for _, sf := range files {
		sf.f.Close()
	}
	if err := tv.vol.Unmount(); err != nil {
		fail("unmount: %v", err)
	}
	for i, sf := range files {
		got, err := os.ReadFile(tv.remote(fmt.Sprintf("f%d", i)))
		if err != nil {
			fail("%v", err)
		}
		if !bytes.Equal(got, sf.model) {
			fail("backing file f%d has %d bytes, model %d; first difference at %d",
				i, len(got), len(sf.model), firstDiff(got, sf.model))
		}
	}
}

func mmapWrite(fd, size, off int, buf []byte) error {
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	err = copyToMapping(m, off, buf)
	if err == nil {
		err = unix.Msync(m, unix.MS_SYNC)
	}
	if uerr := unix.Munmap(m); err == nil {
		err = uerr
	}
	return err
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func writeModel(model, buf []byte, off int) []byte {
	if end := off + len(buf); end > len(model) {
		model = append(model, make([]byte, end-len(model))...)
	}
	copy(model[off:], buf)
	return model
}

func readModel(model []byte, off, n int) []byte {
	if off >= len(model) {
		return nil
	}
	return model[off:min(off+n, len(model))]
}

func truncateModel(model []byte, size int) []byte {
	if size <= len(model) {
		return model[:size]
	}
	return append(model, make([]byte, size-len(model))...)
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
