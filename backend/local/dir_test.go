package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLocal_DirLooksUpOnlyItsOwnEntries checks the handle READDIRPLUS uses:
// it lists the directory, stats an entry (a symlink itself, never its
// target), and refuses any name that is not a single component.
func TestLocal_DirLooksUpOnlyItsOwnEntries(t *testing.T) {
	r, base := fixture(t)
	d, err := r.OpenDir("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	entries, err := d.ReadDir()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 { // a, inside, evil, evilrel, lnk, lnkin
		t.Fatalf("ReadDir listed %d entries, want 6: %v", len(entries), entries)
	}
	a, err := d.Lstat("lnk")
	if err != nil || a.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("Lstat(lnk) = %#o, %v; want the symlink itself", a.Mode, err)
	}
	want, err := r.Lstat("inside")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Lstat("inside"); err != nil || got.Ino != want.Ino || got.Gen != want.Gen {
		t.Fatalf("Lstat(inside) = ino %d gen %d, %v; want ino %d gen %d", got.Ino, got.Gen, err, want.Ino, want.Gen)
	}
	for _, n := range []string{"", ".", "..", "../x", "a/../../x", "evil/passwd", filepath.Join(base, "x"), "x\x00"} {
		if _, err := d.Lstat(n); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Lstat(%q) = %v, want EINVAL", n, err)
		}
	}
	// A second listing starts from the beginning and sees new entries.
	if err := os.WriteFile(filepath.Join(base, "vol", "new"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if again, err := d.ReadDir(); err != nil || len(again) != 7 {
		t.Fatalf("second ReadDir: %d entries, %v; want 7", len(again), err)
	}
	if _, err := r.OpenDir("evil"); err == nil {
		t.Fatal("OpenDir followed a symlink out of the root")
	}
}

// TestLocal_DirStatAfterRmdir: an open directory answers Stat after its
// name is gone, as fstat(2) of its descriptor does.
func TestLocal_DirStatAfterRmdir(t *testing.T) {
	r, base := fixture(t)
	if err := os.Mkdir(filepath.Join(base, "vol", "gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	want, err := r.Lstat("gone")
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.OpenDir("gone")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := r.Rmdir("gone"); err != nil {
		t.Fatal(err)
	}
	a, err := d.Stat()
	if err != nil {
		t.Fatalf("Stat of a removed directory: %v", err)
	}
	if a.Ino != want.Ino || a.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("Stat = ino %d mode %#o; want ino %d, a directory", a.Ino, a.Mode, want.Ino)
	}
}

// BenchmarkLookupEntries compares looking up every entry of a directory
// four levels down by full name (resolved from the root each time) with
// looking them up through one handle of the directory, as READDIRPLUS does.
func BenchmarkLookupEntries(b *testing.B) {
	base := b.TempDir()
	deep := filepath.Join(base, "a", "b", "c", "d")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		b.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(deep, fmt.Sprint("f", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	r, err := Open(base)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.Run("by-name", func(b *testing.B) {
		for range b.N {
			entries, err := r.ReadDir("a/b/c/d")
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range entries {
				if _, err := r.Lstat("a/b/c/d/" + e.Name); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("dir-handle", func(b *testing.B) {
		for range b.N {
			d, err := r.OpenDir("a/b/c/d")
			if err != nil {
				b.Fatal(err)
			}
			entries, err := d.ReadDir()
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range entries {
				if _, err := d.Lstat(e.Name); err != nil {
					b.Fatal(err)
				}
			}
			d.Close()
		}
	})
}
