package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// TestRule_N3_NinepExclusiveNewDirectoryKnowsItsNames: in a directory an
// exclusive volume made itself, the lookup of an absent name is answered
// without a request, and after creates, renames, links and unlinks every
// lookup the kernel makes again (its entries dropped) agrees with the
// export; so does the directory's getattr, answered without a request.
func TestRule_N3_NinepExclusiveNewDirectoryKnowsItsNames(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		m := mountNinep(t, srv, Options{Mode: Exclusive}, 0)
		d := filepath.Join(m.mnt, "d")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		waitQuiet(t, m.fsys)
		before := m.fsys.Requests().Snapshot()
		if _, err := os.Lstat(filepath.Join(d, "missing")); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("lstat of an absent name: %v, want ENOENT", err)
		}
		after := m.fsys.Requests().Snapshot()
		for _, req := range []string{"Twalk", "Twalkgetattr"} {
			if after[req] != before[req] {
				t.Errorf("the lookup of an absent name sent %d %s", after[req]-before[req], req)
			}
		}

		p := func(name string) string { return filepath.Join(d, name) }
		writeFile(t, p("a"), "a")
		writeFile(t, p("x"), "x")
		for _, step := range []error{
			os.Rename(p("a"), p("b")),
			os.Link(p("b"), p("c")),
			os.Remove(p("x")),
			os.Mkdir(p("e"), 0o755),
			os.Symlink("b", p("s")),
			os.Rename(p("s"), p("c")), // replaces c
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		dir := m.vol.root.GetChild("d")
		for _, name := range []string{"a", "b", "c", "e", "s", "x", "missing"} {
			dir.NotifyEntry(name)
			_, err := os.Lstat(p(name))
			_, want := os.Lstat(filepath.Join(srv.Dir, "d", name))
			if (err == nil) != (want == nil) {
				t.Errorf("%s: lstat through the mount: %v; on the export: %v", name, err, want)
			}
		}

		// The kernel drops the directory's attributes after a create in
		// it; the volume answers its GETATTR itself, and right.
		writeFile(t, p("y"), "y")
		waitQuiet(t, m.fsys)
		before = m.fsys.Requests().Snapshot()
		var got, want unix.Stat_t
		if err := unix.Lstat(d, &got); err != nil {
			t.Fatal(err)
		}
		after = m.fsys.Requests().Snapshot()
		for _, req := range []string{"Tgetattr", "Twalkgetattr"} {
			if after[req] != before[req] {
				t.Errorf("the directory's getattr sent %d %s", after[req]-before[req], req)
			}
		}
		if err := unix.Lstat(filepath.Join(srv.Dir, "d"), &want); err != nil {
			t.Fatal(err)
		}
		if got.Mode != want.Mode || got.Nlink != want.Nlink || got.Ino != want.Ino {
			t.Errorf("the directory through the mount: mode %o nlink %d ino %d; on the export: %o %d %d",
				got.Mode, got.Nlink, got.Ino, want.Mode, want.Nlink, want.Ino)
		}
	})
}

// TestRule_N3_NinepExclusiveSetattrNeedsNoGetattr: on an exclusive volume
// the reply to chown, chmod and utimes of a file comes from the
// attributes the volume knows, without a getattr, and says what the export
// then holds; a chown or chmod to what the file already has sends nothing.
func TestRule_N3_NinepExclusiveSetattrNeedsNoGetattr(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		m := mountNinep(t, srv, Options{Mode: Exclusive}, 0)
		name := filepath.Join(m.mnt, "f")
		f := openT(t, name, os.O_RDWR|os.O_CREATE|os.O_EXCL)
		if _, err := f.Write([]byte("data")); err != nil {
			t.Fatal(err)
		}
		// The kernel's writeback cache sends the data and its own mtime
		// when it likes; have it done before counting, and let the
		// kernel refresh the attributes it then dropped (the file's,
		// and the root's after the create), which a path walk checks.
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(name); err != nil {
			t.Fatal(err)
		}
		mtime := time.Unix(1_000_000_000, 123456789)
		before := m.fsys.Requests().Snapshot()
		if err := f.Chown(1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		// The changes go in the background, the chmod and the utimes
		// in one request when the chown is still on its way.
		if err := m.fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		after := m.fsys.Requests().Snapshot()
		if n := after["Tgetattr"] - before["Tgetattr"]; n != 0 {
			t.Errorf("chown, chmod and utimes sent %d Tgetattr", n)
		}
		if n := after["Tsetattr"] - before["Tsetattr"]; n < 2 || n > 3 {
			t.Errorf("chown, chmod and utimes sent %d Tsetattr, want 2 or 3", n)
		}
		// Giving the file the owner and mode it has changes nothing.
		before = after
		if err := f.Chown(1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o640); err != nil {
			t.Fatal(err)
		}
		if err := m.fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		after = m.fsys.Requests().Snapshot()
		if n := after["Tsetattr"] - before["Tsetattr"]; n != 0 {
			t.Errorf("a chown and a chmod that change nothing sent %d Tsetattr", n)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		var got, want unix.Stat_t
		if err := unix.Lstat(name, &got); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(srv.Dir, "f"), &want); err != nil {
			t.Fatal(err)
		}
		if got.Mode != want.Mode || got.Uid != want.Uid || got.Gid != want.Gid || got.Mtim != want.Mtim || got.Size != want.Size {
			t.Errorf("the mount says mode %o uid %d gid %d mtime %v size %d; the export %o %d %d %v %d",
				got.Mode, got.Uid, got.Gid, got.Mtim, got.Size, want.Mode, want.Uid, want.Gid, want.Mtim, want.Size)
		}
		if want.Mode&0o7777 != 0o640 || want.Uid != 1234 || want.Gid != 5678 || want.Mtim != unix.NsecToTimespec(mtime.UnixNano()) {
			t.Errorf("the export has mode %o uid %d gid %d mtime %v", want.Mode, want.Uid, want.Gid, want.Mtim)
		}
	})
}

// waitQuiet waits until fsys has sent nothing for 100ms: an exclusive
// volume walks to directories and sends changes in the background, which
// a test counting the requests of one call must not count.
func waitQuiet(t *testing.T, fsys *ninep.FS) {
	t.Helper()
	if err := fsys.Settle(); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprint(fsys.Requests().Snapshot())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		now := fmt.Sprint(fsys.Requests().Snapshot())
		if now == last {
			return
		}
		last = now
	}
	t.Fatal("the 9P remote did not go quiet in 10s")
}
