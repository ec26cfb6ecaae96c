package datapath

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWritethroughReadOnlyOpenSeesWrites checks the kernel page cache that
// read-only writethrough opens use without a host FD: a write through
// another open file, and a punched hole, are visible to the next read of
// the read-only file, which must not serve its cached pages.
func TestWritethroughReadOnlyOpenSeesWrites(t *testing.T) {
	tv := mountTest(t, Options{Mode: WriteThrough, ForcePageCache: true})
	writeFile(t, tv.path("f"), string(bytes.Repeat([]byte("a"), 3*4096)))
	r := openT(t, tv.path("f"), os.O_RDONLY)
	defer r.Close()
	buf := make([]byte, 3*4096)
	if _, err := r.ReadAt(buf, 0); err != nil { // now in the kernel's cache
		t.Fatal(err)
	}
	w := openT(t, tv.path("f"), os.O_RDWR)
	defer w.Close()
	if _, err := w.WriteAt([]byte("bbbb"), 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if string(buf[4096:4100]) != "bbbb" {
		t.Fatalf("read-only open reads %q after a write, want bbbb", buf[4096:4100])
	}
	if got := readFile(t, tv.remote("f")); got[4096:4100] != "bbbb" {
		t.Fatalf("remote has %q, want bbbb (W7)", got[4096:4100])
	}
	if err := unix.Fallocate(int(w.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 2*4096); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:2*4096], make([]byte, 2*4096)) || buf[2*4096] != 'a' {
		t.Fatalf("read-only open does not see the punched hole: %q...", buf[4090:4100])
	}
}

// TestFallocateDropsCachedPages checks every mode without a host FD: pages
// cached (and dirty) before a hole is punched are neither read back nor
// written back over the hole.
func TestFallocateDropsCachedPages(t *testing.T) {
	for _, v := range allVariants() {
		if !v.opts.ForcePageCache {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			tv := mountTest(t, v.opts)
			f := createT(t, tv.path("f"), 0)
			defer f.Close()
			if _, err := f.Write(bytes.Repeat([]byte("x"), 4*4096)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4*4096)
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 2*4096); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte("x"), make([]byte, 2*4096)...), 'x')
			if got := append(buf[4095:4096:4096], buf[4096:3*4096+1]...); !bytes.Equal(got, want) {
				t.Fatalf("read after punching a hole does not show it")
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, tv.remote("f")); got[4096:3*4096] != string(make([]byte, 2*4096)) || got[0] != 'x' {
				t.Fatal("the remote lost the hole after fsync: cached pages were written back over it")
			}
		})
	}
}
