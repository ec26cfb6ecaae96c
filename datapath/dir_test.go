package datapath

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
)

// TestDir_ListingMatchesRemote lists a directory larger than one
// READDIRPLUS reply and checks names and inode numbers against the remote,
// then rewinds: a second pass must show an entry made in between.
func TestDir_ListingMatchesRemote(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		if err := os.Mkdir(tv.remote("d"), 0o755); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 300 {
			name := fmt.Sprintf("entry-with-a-longish-name-%03d", i)
			writeFile(t, tv.remote("d/"+name), "")
			want = append(want, name)
		}
		d := openT(t, tv.path("d"), os.O_RDONLY)
		defer d.Close()
		got, err := d.Readdirnames(-1)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("listed %d names, want %d", len(got), len(want))
		}
		for _, name := range want[:10] {
			var viaMount, remote syscall.Stat_t
			if err := syscall.Lstat(tv.path("d/"+name), &viaMount); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Lstat(tv.remote("d/"+name), &remote); err != nil {
				t.Fatal(err)
			}
			if viaMount.Size != remote.Size || viaMount.Mode != remote.Mode {
				t.Fatalf("%s: mount says mode %#o size %d, remote %#o %d", name, viaMount.Mode, viaMount.Size, remote.Mode, remote.Size)
			}
		}
		writeFile(t, tv.path("d/late"), "")
		if _, err := d.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		again, err := d.Readdirnames(-1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(again, "late") || len(again) != len(want)+1 {
			t.Fatalf("after rewind: %d names, late listed: %v", len(again), slices.Contains(again, "late"))
		}
	})
}

// TestDir_FsyncDirectory checks that fsync(2) of a directory works, as
// databases do after creating or renaming a file in it.
func TestDir_FsyncDirectory(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("f"), "x")
		if err := os.Rename(tv.path("f"), tv.path("g")); err != nil {
			t.Fatal(err)
		}
		d := openT(t, tv.path(""), os.O_RDONLY)
		defer d.Close()
		if err := d.Sync(); err != nil {
			t.Fatalf("fsync of the volume's root directory: %v", err)
		}
	})
}
