package local

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// step is the whole policy: two opens in a row going forward start the
// readahead of the next siblingsAhead files, each file is read ahead once,
// a reader that skips a few files still goes forward, and one that jumps
// back or far ahead starts over.
func TestLocal_SiblingsReadAheadOfAReaderGoingForward(t *testing.T) {
	var names []string
	for i := 0; i < 30; i++ {
		names = append(names, fmt.Sprintf("f%02d", i))
	}
	o := fileOrder{names: names, last: -1}
	steps := []struct {
		open string
		want []string
	}{
		{"f00", nil},          // one open says nothing
		{"f01", names[2:10]},  // two in a row: the next eight
		{"f02", names[10:11]}, // only what is new
		{"f05", names[11:14]}, // a skip of a few still goes forward
		{"f03", nil},          // back: start over
		{"f04", nil},          // one forward after the restart
		{"f06", names[14:15]}, // forward: the window moves on
		{"f20", nil},          // too far ahead: start over
		{"f21", nil},          // one forward after the restart
		{"f22", names[23:30]}, // two: up to the end
		{"f23", nil},          // nothing left
		{"missing", nil},      // not in this order
	}
	for _, s := range steps {
		got := o.step(s.open)
		if !slices.Equal(got, s.want) {
			t.Fatalf("open %s: read ahead %v, want %v", s.open, got, s.want)
		}
	}
}

// siblingsFixture makes a volume with a directory of n files and returns
// the Root, with the names it reads ahead recorded, and the files' names
// in the order the directory lists them.
func siblingsFixture(t *testing.T, n int) (*Root, func() []string, []string) {
	t.Helper()
	base := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(base, "d", fmt.Sprintf("f%03d", i)), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(base, "d", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var mu sync.Mutex
	var got []string
	r.siblings.readAhead = func(name string) {
		mu.Lock()
		got = append(got, name)
		mu.Unlock()
	}
	read := func() []string {
		waitIdle(t, &r.siblings.q)
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	entries, err := r.ReadDir("d")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range entries {
		if e.Name != "sub" {
			listed = append(listed, "d/"+e.Name)
		}
	}
	return r, read, listed
}

// A reader of a directory in the order it lists its files, or in name
// order, gets the files after it read ahead (only regular files: not the
// subdirectory), and reading ahead changes nothing in the volume.
func TestLocal_SiblingsFollowListingAndNameOrder(t *testing.T) {
	for _, order := range []string{"listed", "by name"} {
		t.Run(order, func(t *testing.T) {
			r, readAhead, files := siblingsFixture(t, 20)
			before := snapshot(t, r.dir)
			if order == "by name" {
				sort.Strings(files)
			}
			r.OpenedForRead(files[0])
			r.OpenedForRead(files[1])
			if got, want := readAhead(), files[2:2+siblingsAhead]; !slices.Equal(got, want) {
				t.Fatalf("read ahead %v, want %v", got, want)
			}
			if after := snapshot(t, r.dir); after != before {
				t.Fatalf("reading ahead changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// A name listed as a regular file that is something else by the time it
// would be read ahead is left alone: opening a FIFO would block, and
// opening a device can have effects of its own.
func TestLocal_SiblingsReadAheadOnlyRegularFiles(t *testing.T) {
	r, readAhead, files := siblingsFixture(t, 20)
	r.OpenedForRead(files[0])
	waitIdle(t, &r.siblings.q) // the directory is listed now
	fifo := filepath.Join(r.dir, files[3])
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	r.OpenedForRead(files[1])
	want := slices.Delete(slices.Clone(files[2:2+siblingsAhead]), 1, 2)
	if got := readAhead(); !slices.Equal(got, want) {
		t.Fatalf("read ahead %v, want %v", got, want)
	}
}

// A reader jumping about a directory gets nothing read ahead, and names
// that are not plain names beneath the volume are ignored.
func TestLocal_SiblingsIgnoreRandomOpensAndBadNames(t *testing.T) {
	r, readAhead, files := siblingsFixture(t, 40)
	for _, i := range []int{30, 5, 25, 0, 39, 12} {
		r.OpenedForRead(files[i])
	}
	for _, bad := range []string{"", "/etc/passwd", "../d/f000", "d/../../x", "d/sub", "missing/f000"} {
		r.OpenedForRead(bad)
		r.OpenedForRead(bad)
	}
	if got := readAhead(); len(got) != 0 {
		t.Fatalf("read ahead %v for random opens and bad names", got)
	}
}

// Close stops the goroutine, which uses the Root's descriptor; after it
// nothing is queued.
func TestLocal_SiblingsStopAtClose(t *testing.T) {
	r, _, files := siblingsFixture(t, 4)
	for _, f := range files {
		r.OpenedForRead(f)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	checkStopped(t, &r.siblings.q)
}
