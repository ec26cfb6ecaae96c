package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
)

// TestRule_C1_NinepExclusiveWritesDuringOutageReachTheExport writes
// several MiB to an exclusive volume while its 9P server is down: whole
// pages past everything the daemon has cached (with a hole before them),
// overwrites of written pages, a partial page inside the hole, and
// appends that extend the file. An fsync meanwhile makes the kernel hand
// every page to the daemon and fails with EIO; once the server is back,
// an fsync succeeds and the export holds every byte (C1: dirty data is
// never dropped, it waits for the remote).
func TestRule_C1_NinepExclusiveWritesDuringOutageReachTheExport(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		m := mountNinep(t, srv, Options{Mode: Exclusive}, 300*time.Millisecond)
		name := filepath.Join(m.mnt, "f")
		f := openT(t, name, os.O_RDWR|os.O_CREATE)
		var want []byte
		write := func(f *os.File, p []byte, off int64) {
			t.Helper()
			if _, err := f.WriteAt(p, off); err != nil {
				t.Fatalf("write %d bytes at %d: %v", len(p), off, err)
			}
			if end := off + int64(len(p)); end > int64(len(want)) {
				want = append(want, make([]byte, end-int64(len(want)))...)
			}
			copy(want[off:], p)
		}
		write(f, fill(1, 256<<10), 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}

		// Opens reach the server: open the appending file before.
		af := openT(t, name, os.O_WRONLY|os.O_APPEND)
		srv.Stop()
		write(f, fill(2, 3<<20), 1<<20)      // whole pages past the size; a hole before them
		write(f, fill(3, 128<<10), 64<<10)   // whole pages over written data
		write(f, fill(4, 100), 512<<10+10)   // part of a page in the hole
		write(f, fill(5, 3000), 200<<10+100) // part of a page of written data
		for i, n := range []int{1<<20 + 100, 5000, 70000} {
			p := fill(byte(6+i), n)
			if _, err := af.Write(p); err != nil {
				t.Fatalf("append %d bytes: %v", n, err)
			}
			want = append(want, p...)
		}
		if err := f.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("fsync while the server is away: %v, want EIO", err)
		}

		srv.Restart(t)
		// A namespace change succeeds once the client has reconnected.
		probe := 0
		waitFor(t, func() bool {
			probe++
			return writeSync(filepath.Join(m.mnt, fmt.Sprintf("probe%d", probe)), nil) == nil
		})
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync after the server came back: %v", err)
		}
		got, err := os.ReadFile(filepath.Join(srv.Dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("the export has %d bytes, want %d", len(got), len(want))
		}
		if i := firstDiff(got, want); i < min(len(got), len(want)) {
			t.Fatalf("the export differs from what was written from byte %d on (page %d)", i, i/4096)
		}
	})
}

// fill returns n bytes of a pattern that differs per seed and per page, so
// that a page written at the wrong offset or lost is told apart.
func fill(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed*31 + byte(i/4096)*7 + byte(i%251)
	}
	return p
}
