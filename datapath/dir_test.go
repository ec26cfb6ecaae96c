package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
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

// dirent is one entry of a getdents64(2) reply: a name, and the offset of
// the entry after it (what telldir(3) returns once it has been read).
type dirent struct {
	name string
	off  int64
}

// getdents reads the next entries of the open directory fd with a buffer
// of size bytes, as readdir(3) does; it returns none at the end.
func getdents(fd, size int) ([]dirent, error) {
	buf := make([]byte, size)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return nil, fmt.Errorf("getdents: %w", err)
	}
	var ds []dirent
	for i := 0; i < n; {
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		reclen := int(binary.NativeEndian.Uint16(buf[i+16:]))
		name, _, _ := bytes.Cut(buf[i+19:i+reclen], []byte{0})
		ds = append(ds, dirent{name: string(name), off: int64(binary.NativeEndian.Uint64(buf[i+8:]))})
		i += reclen
	}
	return ds, nil
}

// readDirents reads fd's entries from its position to the end.
func readDirents(fd, size int) ([]dirent, error) {
	var all []dirent
	for {
		ds, err := getdents(fd, size)
		if err != nil || len(ds) == 0 {
			return all, err
		}
		all = append(all, ds...)
	}
}

// readDirentsT is readDirents on the test's goroutine.
func readDirentsT(t testing.TB, fd, size int) []dirent {
	t.Helper()
	ds, err := readDirents(fd, size)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func direntNames(ds []dirent) []string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.name
	}
	return names
}

func openDirFd(t testing.TB, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func seekDir(t testing.TB, fd int, off int64) {
	t.Helper()
	if _, err := unix.Seek(fd, off, io.SeekStart); err != nil {
		t.Fatalf("seekdir to %d: %v", off, err)
	}
}

// makeEntries creates n empty files called prefix0000... in the remote
// directory dir (made if missing) and returns their names, sorted.
func makeEntries(t testing.TB, tv *testVolume, dir, prefix string, n int) []string {
	t.Helper()
	if err := os.MkdirAll(tv.remote(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s%04d", prefix, i)
		writeFile(t, tv.remote(dir+"/"+name), "")
		names = append(names, name)
	}
	return names
}

// listedIs tells whether a listing of dir has name exactly when want.
func listedIs(dir, name string, want bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	got := slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == name })
	if got != want {
		return fmt.Errorf("listing after the change: %s listed %t, want %t", name, got, want)
	}
	return nil
}

// onceEach fails unless every name of want is in got exactly once, and
// got has nothing else but names from maybe.
func onceEach(t testing.TB, what string, got, want, maybe []string) {
	t.Helper()
	seen := make(map[string]int)
	for _, n := range got {
		seen[n]++
	}
	for _, n := range want {
		if seen[n] != 1 {
			t.Errorf("%s: %q listed %d times, want once", what, n, seen[n])
		}
		delete(seen, n)
	}
	for n, c := range seen {
		if !slices.Contains(maybe, n) || c > 1 {
			t.Errorf("%s: %q listed %d times, want at most once and only if added or removed during the listing", what, n, c)
		}
	}
}

// A directory larger than one READDIRPLUS reply is listed whole, and
// seekdir to an offset telldir returned, rewinddir, and seekdir on another
// descriptor that never read (the daemon lists the directory anew there)
// continue after the right entry.
func TestDir_LargeDirectorySeekdir(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		want := makeEntries(t, tv, "d", "entry-with-a-longish-name-", 1000)
		fd := openDirFd(t, tv.path("d"))
		all := readDirentsT(t, fd, 8192)
		onceEach(t, "listing", direntNames(all), want, nil)

		const k = 700 // past the first reply
		seekDir(t, fd, all[k].off)
		if got := direntNames(readDirentsT(t, fd, 8192)); !slices.Equal(got, direntNames(all[k+1:])) {
			t.Errorf("after seekdir to entry %d's offset: %d names, want the %d after it", k, len(got), len(all)-k-1)
		}
		seekDir(t, fd, 0)
		if got := readDirentsT(t, fd, 8192); !slices.Equal(got, all) {
			t.Errorf("after rewinddir: %d entries, want the same %d again", len(got), len(all))
		}

		fresh := openDirFd(t, tv.path("d"))
		seekDir(t, fresh, all[k].off)
		if got := direntNames(readDirentsT(t, fresh, 8192)); !slices.Equal(got, direntNames(all[k+1:])) {
			t.Errorf("seekdir on a descriptor that never read: %d names, want the %d after entry %d", len(got), len(all)-k-1, k)
		}
	})
}

// Readers of one directory at once, with small and large buffers, each
// list every entry once while names come and go through the mount; the
// process that adds or removes a name lists the directory right after,
// and must see its change whatever the other readers had listed before.
func TestDir_ConcurrentReaders(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		want := makeEntries(t, tv, "d", "stable-", 500)
		var churn []string
		for i := range 20 {
			churn = append(churn, fmt.Sprintf("churn-%02d", i))
		}
		stop := make(chan struct{})
		churned := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					churned <- nil
					return
				default:
				}
				name := churn[i%len(churn)]
				p := tv.path("d/" + name)
				err := os.WriteFile(p, nil, 0o644)
				if err == nil {
					err = listedIs(tv.path("d"), name, true)
				}
				if err == nil {
					err = os.Remove(p)
				}
				if err == nil {
					err = listedIs(tv.path("d"), name, false)
				}
				if err != nil {
					churned <- err
					return
				}
			}
		}()
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				size := 512 << (3 * (r % 2)) // 512 B or 4 KiB
				for i := range 5 {
					fd, err := unix.Open(tv.path("d"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
					if err != nil {
						t.Error(err)
						return
					}
					ds, err := readDirents(fd, size)
					unix.Close(fd)
					if err != nil {
						t.Error(err)
						return
					}
					got := direntNames(ds)
					onceEach(t, fmt.Sprintf("reader %d (buffer %d), pass %d", r, size, i), got, want, churn)
				}
			}()
		}
		wg.Wait()
		close(stop)
		if err := <-churned; err != nil {
			t.Fatal(err)
		}
	})
}

// Names added and removed between two reads of one listing: every other
// name is listed once, and a rewind lists the directory as it is. Shared
// volumes see the changes made on the remote; the others are changed
// through the mount, as their contract requires.
func TestDir_ChangesBetweenReads(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		names := makeEntries(t, tv, "d", "name-", 300)
		at := tv.path
		if tv.vol.opts.Mode == Shared {
			at = tv.remote
		}
		fd := openDirFd(t, tv.path("d"))
		first, err := getdents(fd, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) == 0 || len(first) >= len(names) {
			t.Fatalf("first read listed %d of %d names; want some", len(first), len(names))
		}
		seen := direntNames(first)
		var removed, kept []string
		for i, n := range names {
			if i%3 == 0 {
				removed = append(removed, n)
				if err := os.Remove(at("d/" + n)); err != nil {
					t.Fatal(err)
				}
			} else {
				kept = append(kept, n)
			}
		}
		var added []string
		for i := range 50 {
			n := fmt.Sprintf("added-%02d", i)
			writeFile(t, at("d/"+n), "")
			added = append(added, n)
		}
		rest := direntNames(readDirentsT(t, fd, 1024))
		onceEach(t, "listing across the changes", append(seen, rest...), kept, append(removed, added...))

		seekDir(t, fd, 0)
		onceEach(t, "after rewinddir", direntNames(readDirentsT(t, fd, 1024)), append(kept, added...), nil)
	})
}

// A directory removed while open: reading it fails with ENOENT, as on a
// local file system, while fstat and fsync still work.
func TestDir_OpenAcrossRmdir(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		if err := os.Mkdir(tv.path("gone"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, tv.path("gone/f"), "x")
		fd := openDirFd(t, tv.path("gone"))
		if got := direntNames(readDirentsT(t, fd, 4096)); !slices.Equal(got, []string{"f"}) {
			t.Fatalf("listed %q, want f", got)
		}
		if err := os.Remove(tv.path("gone/f")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(tv.path("gone")); err != nil {
			t.Fatal(err)
		}
		seekDir(t, fd, 0)
		if _, err := unix.Getdents(fd, make([]byte, 4096)); err != unix.ENOENT {
			t.Errorf("getdents of a removed directory: %v, want ENOENT", err)
		}
		if err := unix.Fsync(fd); err != nil {
			t.Errorf("fsync of a removed directory: %v", err)
		}
		// The kernel's GETATTR of a directory carries no file handle,
		// so the daemon must not answer it by the name that is gone.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Errorf("fstat of a removed directory: %v", err)
		} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("fstat of a removed directory: mode %#o, want a directory", st.Mode)
		}
	})
}

// A regular file unlinked while open answers fstat: through its handle,
// or with its last known attributes where the remote stats by path and
// so cannot reach an unlinked file (diod).
func TestDir_OpenFileAcrossUnlink(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		writeFile(t, tv.path("gone"), "still here")
		f, err := os.Open(tv.path("gone"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := os.Remove(tv.path("gone")); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatalf("fstat of an unlinked file: %v", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(len("still here")) {
			t.Errorf("fstat of an unlinked file: mode %#o size %d, want a regular file of %d bytes",
				st.Mode, st.Size, len("still here"))
		}
	})
}

// TestRule_N1_OpenDirectoryStatSeesRemote: in shared mode, fstat of an
// open directory reads the remote each time, even though it is answered
// through the open directory: a subdirectory made on the remote shows in
// its link count at once.
func TestRule_N1_OpenDirectoryStatSeesRemote(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		if err := os.Mkdir(tv.path("d"), 0o755); err != nil {
			t.Fatal(err)
		}
		fd := openDirFd(t, tv.path("d"))
		var before, after unix.Stat_t
		if err := unix.Fstat(fd, &before); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(tv.remote("d/sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fstat(fd, &after); err != nil {
			t.Fatal(err)
		}
		if after.Nlink != before.Nlink+1 {
			t.Errorf("fstat after a subdirectory was made on the remote: nlink %d, want %d", after.Nlink, before.Nlink+1)
		}
	}, Shared)
}

// openRecorder records the remote's OpenedForRead hints.
type openRecorder struct {
	backend.FS
	mu     sync.Mutex
	opened []string
}

func (r *openRecorder) OpenedForRead(name string) {
	r.mu.Lock()
	r.opened = append(r.opened, name)
	r.mu.Unlock()
}

// Each open for reading tells a remote that reads ahead across files which
// file was opened, by its name in the volume; an open for writing only
// does not, nor does a create.
func TestOpen_TellsTheRemoteWhatIsOpenedForReading(t *testing.T) {
	for _, v := range allVariants() {
		t.Run(v.name, func(t *testing.T) {
			rec := &openRecorder{}
			tv := mountTestFS(t, v.opts, func(be backend.FS) backend.FS { rec.FS = be; return rec })
			if err := os.Mkdir(tv.remote("d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"d/r", "d/rw", "d/w"} {
				writeFile(t, tv.remote(n), "x")
			}
			for n, flags := range map[string]int{"d/r": os.O_RDONLY, "d/rw": os.O_RDWR, "d/w": os.O_WRONLY, "d/new": os.O_RDWR | os.O_CREATE} {
				f, err := os.OpenFile(tv.path(n), flags, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			slices.Sort(rec.opened)
			if want := []string{"d/r", "d/rw"}; !slices.Equal(rec.opened, want) {
				t.Fatalf("remote told of opens %q, want %q", rec.opened, want)
			}
		})
	}
}
