package ninep_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// forEachExclusive is forEachServer with the FS dialed exclusive (rule
// N3: it may defer changes).
func forEachExclusive(t *testing.T, fn func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS)) {
	forEachServerWith(t, func(cfg *ninep.Config) {
		cfg.Exclusive = true
		cfg.Timeout = 2 * time.Second
	}, fn)
}

// localIno reports whether ino is one the FS made up for a file it
// created in the background.
func localIno(ino uint64) bool { return ino&(1<<63) != 0 }

// createIn creates n files in dir (which the FS made), the first of them
// synchronously (it shows the FS how the server makes files), and
// returns them open.
func createIn(t *testing.T, fsys *ninep.FS, dir string, n int) []backend.File {
	t.Helper()
	var files []backend.File
	for i := range n {
		f, err := fsys.Open(filepath.Join(dir, "f"+string(rune('a'+i))), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
		if i == 0 {
			// Let the directory's fid be walked: creates in a
			// directory of unknown mode are synchronous.
			if err := fsys.Settle(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				g, err := fsys.Open(filepath.Join(dir, "probe"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				a, _ := g.Stat()
				g.Close()
				if err := fsys.Unlink(filepath.Join(dir, "probe")); err != nil {
					t.Fatal(err)
				}
				return localIno(a.Ino)
			})
		}
	}
	return files
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRule_N3_ExclusiveDefersAttributeChanges: on an exclusive FS, the
// mode and time changes of an open file (and of a name it is open under)
// are sent in the background, in order, and are on the server after the
// barrier (Settle).
func TestRule_N3_ExclusiveDefersAttributeChanges(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		before := fsys.DeferredSent()
		mtime := unix.Timespec{Sec: 1_000_000_000, Nsec: 5}
		for _, step := range []error{
			f.Chmod(0o600),
			f.Utimens(nil, &mtime),
			f.Chmod(0o640),
			fsys.Chmod("f", 0o604), // by name: joins the open file's queue
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		if err := fsys.Settle(); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		if fsys.DeferredSent() == before {
			t.Error("no change was deferred")
		}
		st, err := os.Stat(filepath.Join(srv.Dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o604 {
			t.Errorf("mode on the server %o, want the last one asked for, 604", got)
		}
		if got := st.ModTime(); got.Unix() != mtime.Sec {
			t.Errorf("mtime on the server %v, want %d", got, mtime.Sec)
		}
	})
}

// TestRule_N3_ExclusiveCreatesInTheBackground: once the server has shown
// it makes files as asked, creates in a directory the FS knows return at
// once with a local inode number, which the file keeps through lookups,
// listings and hard links; the data and attributes reach the server.
func TestRule_N3_ExclusiveCreatesInTheBackground(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		files := createIn(t, fsys, "d", 4)
		f := files[3]
		a, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if !localIno(a.Ino) || a.Mode != unix.S_IFREG|0o640 || a.Nlink != 1 || a.Size != 0 {
			t.Fatalf("attributes of a background create: ino %#x mode %o nlink %d size %d", a.Ino, a.Mode, a.Nlink, a.Size)
		}
		if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o600); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Link("d/fd", "d/link"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Settle(); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		for _, name := range []string{"d/fd", "d/link"} {
			got, err := fsys.Lstat(name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Ino != a.Ino || got.Gen != a.Gen || got.Size != 5 || got.Mode&07777 != 0o600 {
				t.Errorf("%s: ino %#x gen %d size %d mode %o; want ino %#x gen %d size 5 mode 600",
					name, got.Ino, got.Gen, got.Size, got.Mode&07777, a.Ino, a.Gen)
			}
		}
		entries, err := fsys.ReadDir("d")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name == "fd" && e.Ino != a.Ino {
				t.Errorf("listing: fd has ino %#x, want %#x", e.Ino, a.Ino)
			}
		}
		data, err := os.ReadFile(filepath.Join(srv.Dir, "d", "fd"))
		if err != nil || string(data) != "hello" {
			t.Errorf("on the server: %q, %v", data, err)
		}
	})
}

// TestRule_N3_ExclusiveQueuedCreateOrdersNamespaceCalls: calls by name
// that move, remove or list what a queued create makes wait for it.
func TestRule_N3_ExclusiveQueuedCreateOrdersNamespaceCalls(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "d", 1)
		mk := func(name string) {
			f, err := fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		mk("d/renamed")
		if err := fsys.Rename("d/renamed", "d/moved", 0); err != nil {
			t.Fatalf("rename right after the create: %v", err)
		}
		mk("d/removed")
		if err := fsys.Unlink("d/removed"); err != nil {
			t.Fatalf("unlink right after the create: %v", err)
		}
		mk("d/listed")
		entries, err := fsys.ReadDir("d")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		sort.Strings(names)
		if got := strings.Join(names, " "); got != "fa listed moved" {
			t.Errorf("listing: %s, want fa listed moved", got)
		}
		if err := fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]bool{"moved": true, "renamed": false, "removed": false, "listed": true} {
			_, err := os.Lstat(filepath.Join(srv.Dir, "d", name))
			if (err == nil) != want {
				t.Errorf("d/%s on the server: %v, want present=%v", name, err, want)
			}
		}
	})
}

// TestRule_N3_ExclusiveDirectoryTimesAfterItsEntries: the times set on a
// directory the FS made, by name, land after the creates queued in it,
// which would otherwise change them.
func TestRule_N3_ExclusiveDirectoryTimesAfterItsEntries(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "d", 8)
		mtime := unix.Timespec{Sec: 1_000_000_000}
		if err := fsys.Utimens("d", nil, &mtime); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chmod("d", 0o750); err != nil {
			t.Fatal(err)
		}
		a, err := fsys.Lstat("d")
		if err != nil {
			t.Fatal(err)
		}
		if a.Mtim.Sec != mtime.Sec || a.Mode&07777 != 0o750 {
			t.Errorf("Lstat after the changes: mtime %d mode %o", a.Mtim.Sec, a.Mode&07777)
		}
		if err := fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(srv.Dir, "d"))
		if err != nil {
			t.Fatal(err)
		}
		if st.ModTime().Unix() != mtime.Sec || st.Mode().Perm() != 0o750 {
			t.Errorf("on the server: mtime %v mode %o", st.ModTime(), st.Mode().Perm())
		}
	})
}

// TestRule_N3_ExclusiveRefusedChangeReachesTheBarrier: a queued create
// the server refuses (its directory was removed behind the FS's back)
// fails the file's calls and the next barriers, never silently.
func TestRule_N3_ExclusiveRefusedChangeReachesTheBarrier(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "d", 1)
		// Against the exclusive contract: someone else removes d.
		if err := os.RemoveAll(filepath.Join(srv.Dir, "d")); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Open("d/lost", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatalf("create in the removed directory: %v, want it deferred (createIn made creates there background ones)", err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Error("a write to a file whose create failed succeeded")
		}
		if err := f.Sync(false); err == nil {
			t.Error("fsync of a file whose create failed succeeded")
		}
		err = fsys.Settle()
		if err == nil || !strings.Contains(err.Error(), "lost") {
			t.Errorf("Settle: %v, want the failed create of d/lost", err)
		}
		if err := fsys.Settle(); err != nil {
			t.Errorf("second Settle: %v, want nil (a failure is reported once)", err)
		}
	})
}

// TestRule_N3_ExclusiveDeferredChangesSurviveAnOutage: a change made
// while the server is away waits for it, and reaches it once back.
func TestRule_N3_ExclusiveDeferredChangesSurviveAnOutage(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		srv.Stop()
		if err := f.Chmod(0o600); err != nil {
			t.Fatalf("chmod while the server is away: %v, want it deferred", err)
		}
		if err := fsys.Settle(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Settle while the server is away: %v, want EIO", err)
		}
		srv.Restart(t)
		waitFor(t, func() bool { return fsys.Settle() == nil })
		st, err := os.Stat(filepath.Join(srv.Dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode on the server after the outage: %o, want 600", st.Mode().Perm())
		}
	})
}

// TestGoferMakesTheModeAsked: the gofer applies no umask of its own (the
// client applied its caller's), like diod; it is also what lets an
// exclusive FS compute a new file's attributes.
func TestGoferMakesTheModeAsked(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := fsys.Mkdir("d", 0o777); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]os.FileMode{"f": 0o666, "d": 0o777} {
			st, err := os.Stat(filepath.Join(srv.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s: mode %o on the server, want %o", name, st.Mode().Perm(), want)
			}
		}
	})
}

// TestRule_N3_ExclusiveSetGroupIDDirectory: in a set-group-ID
// directory, where a server may give new files the directory's group, an
// exclusive FS does not compute a new file's attributes: it reports what
// the server made. One directory is made so on the server, as another
// client would; the other by the FS itself, which made it plain and then
// changed its group and mode (the set-group-ID bit travels since the
// vendored 9P library no longer masks it; see docs/9p.md).
func TestRule_N3_ExclusiveSetGroupIDDirectory(t *testing.T) {
	forEachServerWith(t, func(cfg *ninep.Config) { cfg.Exclusive = true }, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		d := filepath.Join(srv.Dir, "sgid")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 0, 1234); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(d, 0o2775); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Mkdir("plain", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "plain", 2) // the FS computes attributes from here on
		if err := fsys.Mkdir("sgid-client", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chown("sgid-client", -1, 1234); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chmod("sgid-client", 0o2775); err != nil {
			t.Fatal(err)
		}
		gids := map[string]uint32{}
		for i := range 8 {
			name := fmt.Sprintf("%s/f%d", []string{"sgid", "sgid-client"}[i%2], i)
			f, err := fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.Stat()
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if localIno(a.Ino) {
				t.Errorf("%s: created in the background in a set-group-ID directory", name)
			}
			gids[name] = a.Gid
		}
		if err := fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		for name, gid := range gids {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(srv.Dir, name), &st); err != nil {
				t.Fatal(err)
			}
			if st.Gid != gid || st.Gid != 1234 {
				t.Errorf("%s: group %d reported, %d on the server, want the directory's, 1234", name, gid, st.Gid)
			}
		}
	})
}

// TestRule_N3_ExclusiveChangeByNameReachesTheFileTheNameLeadsTo: a
// change by name goes to the file the name leads to now, not to an
// earlier file of that name still open after its unlink, whichever
// renames came between.
func TestRule_N3_ExclusiveChangeByNameReachesTheFileTheNameLeadsTo(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		old, err := fsys.Open("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		if err := fsys.Unlink("a"); err != nil {
			t.Fatal(err)
		}
		cur, err := fsys.Open("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close()
		if err := fsys.Rename("a", "b", 0); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chmod("b", 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(srv.Dir, "b"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("b on the server: mode %o, want 600", st.Mode().Perm())
		}
	})
}

// TestRule_N3_ExclusiveChangeByNameAfterClose: a change by name of a file
// just created and closed, whose create and close are still queued,
// reaches the server. (It used to join the file's queue behind the close
// and be dropped there as a change of a removed file.)
func TestRule_N3_ExclusiveChangeByNameAfterClose(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "d", 1) // later creates in d are background ones
		for i, perm := range []uint32{0o600, 0o4755, 0o640} {
			name := fmt.Sprintf("d/f%d", i)
			f, err := fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := fsys.Chmod(name, perm); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Settle(); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(srv.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := uint32(st.Sys().(*syscall.Stat_t).Mode & 07777); got != perm {
				t.Errorf("%s: mode %#o on the server, want %#o", name, got, perm)
			}
		}
	})
}

// TestRule_N3_ExclusiveDirectoryFsyncIsABarrier: fsync of a directory
// (SyncDir) waits for the deferred changes, so what was made beneath it
// is on the server when it returns, and reports a change the server
// refused, once.
func TestRule_N3_ExclusiveDirectoryFsyncIsABarrier(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		createIn(t, fsys, "d", 1) // later creates in d are background ones
		f, err := fsys.Open("d/new", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := f.Stat(); !localIno(a.Ino) {
			t.Fatal("the create was not deferred")
		}
		if err := f.Chmod(0o600); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := fsys.SyncDir("d"); err != nil {
			t.Fatalf("fsync of d: %v", err)
		}
		st, err := os.Stat(filepath.Join(srv.Dir, "d", "new"))
		if err != nil {
			t.Fatalf("d/new on the server after fsync of d: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("d/new: mode %o on the server after fsync of d, want 600", st.Mode().Perm())
		}

		// Against the exclusive contract: someone else removes d.
		if err := os.RemoveAll(filepath.Join(srv.Dir, "d")); err != nil {
			t.Fatal(err)
		}
		lost, err := fsys.Open("d/lost", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatalf("create in the removed directory: %v, want it deferred", err)
		}
		lost.Close()
		if err := fsys.SyncDir(""); err == nil || !strings.Contains(err.Error(), "lost") {
			t.Errorf("fsync of the root: %v, want the failed create of d/lost", err)
		}
		if err := fsys.SyncDir(""); err != nil {
			t.Errorf("second fsync of the root: %v, want nil (a failure is reported once)", err)
		}
	})
}
