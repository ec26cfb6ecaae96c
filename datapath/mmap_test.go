package datapath

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// mmapShared maps the first page of path MAP_SHARED with prot.
func mmapShared(t *testing.T, path string, prot int) ([]byte, error) {
	t.Helper()
	flag := os.O_RDONLY
	if prot&unix.PROT_WRITE != 0 {
		flag = os.O_RDWR
	}
	f := openT(t, path, flag)
	return unix.Mmap(int(f.Fd()), 0, 4096, prot, unix.MAP_SHARED)
}

func mmapPrivate(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	f := openT(t, path, os.O_RDONLY)
	return unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
}

// sharedWriteReachesRemote writes through a MAP_SHARED mapping and checks
// that msync put the bytes in the backing file.
func sharedWriteReachesRemote(t *testing.T, tv *testVolume) {
	writeFile(t, tv.path("f"), string(make([]byte, 4096)))
	m, err := mmapShared(t, tv.path("f"), unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		t.Fatalf("MAP_SHARED writable: %v", err)
	}
	defer unix.Munmap(m)
	if err := copyToMapping(m, 0, []byte("mapped write")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatalf("msync: %v", err)
	}
	if got := readFile(t, tv.remote("f"))[:12]; got != "mapped write" {
		t.Fatalf("remote has %q after msync, want the mapped write", got)
	}
}

func TestRule_M1_ExclusiveAllowsEveryMapping(t *testing.T) {
	forEachVariant(t, sharedWriteReachesRemote, Exclusive)
}

func TestRule_M7_HostFDMappingsAreCoherentWithRemote(t *testing.T) {
	requirePassthroughKernel(t)
	for _, m := range Modes {
		t.Run(string(m), func(t *testing.T) {
			tv := mountTest(t, Options{Mode: m})
			sharedWriteReachesRemote(t, tv)
			// A remote change is visible in the mapping at once: the
			// kernel maps the backing file itself.
			mp, err := mmapShared(t, tv.path("f"), unix.PROT_READ)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(mp)
			rf := openT(t, tv.remote("f"), os.O_RDWR)
			if _, err := rf.WriteAt([]byte("REMOTE"), 0); err != nil {
				t.Fatal(err)
			}
			got, err := copyFromMapping(mp, 0, 6)
			if err != nil || string(got) != "REMOTE" {
				t.Fatalf("mapping shows %q (%v) after a remote write", got, err)
			}
		})
	}
}

func TestRule_M2_WritethroughRefusesSharedWritableMappingWithoutHostFD(t *testing.T) {
	tv := mountTest(t, Options{Mode: WriteThrough, ForcePageCache: true})
	writeFile(t, tv.path("f"), string(make([]byte, 4096)))
	if _, err := mmapShared(t, tv.path("f"), unix.PROT_READ|unix.PROT_WRITE); err != unix.ENODEV {
		t.Fatalf("MAP_SHARED writable: %v, want ENODEV", err)
	}
	// A read-only shared mapping of a file opened read-only is allowed,
	// and it sees a write made through another open file at once.
	ro, err := mmapShared(t, tv.path("f"), unix.PROT_READ)
	if err != nil {
		t.Fatalf("MAP_SHARED read-only of a read-only open: %v, want allowed", err)
	}
	defer unix.Munmap(ro)
	if got, err := copyFromMapping(ro, 0, 4); err != nil || string(got) != "\x00\x00\x00\x00" {
		t.Fatalf("mapping shows %q (%v), want zeros", got, err)
	}
	w := openT(t, tv.path("f"), os.O_RDWR)
	if _, err := w.WriteAt([]byte("NEW!"), 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got, err := copyFromMapping(ro, 0, 4); err != nil || string(got) != "NEW!" {
		t.Fatalf("read-only mapping shows %q (%v) after a write through another file, want NEW!", got, err)
	}
	m, err := mmapPrivate(t, tv.path("f"))
	if err != nil {
		t.Fatalf("MAP_PRIVATE: %v, want allowed", err)
	}
	unix.Munmap(m)
	// With a host FD every mapping is allowed.
	requirePassthroughKernel(t)
	sharedWriteReachesRemote(t, mountTest(t, Options{Mode: WriteThrough}))
}

func TestRule_M3_SharedRefusesSharedMappingsWithoutHostFD(t *testing.T) {
	tv := mountTest(t, Options{Mode: Shared, ForcePageCache: true})
	writeFile(t, tv.path("f"), string(make([]byte, 4096)))
	for _, prot := range []int{unix.PROT_READ, unix.PROT_READ | unix.PROT_WRITE} {
		if _, err := mmapShared(t, tv.path("f"), prot); err != unix.ENODEV {
			t.Fatalf("MAP_SHARED prot %d: %v, want ENODEV", prot, err)
		}
	}
	// M4: FUSE cannot refuse a private mapping of a direct-I/O file; it is
	// a private copy, so it cannot break coherence.
	m, err := mmapPrivate(t, tv.path("f"))
	if err != nil {
		t.Fatalf("MAP_PRIVATE: %v", err)
	}
	unix.Munmap(m)
}
