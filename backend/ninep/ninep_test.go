package ninep_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// forEachServer runs fn against the built-in gofer and diod, each
// exporting a fresh directory.
func forEachServer(t *testing.T, fn func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS)) {
	forEachServerWith(t, nil, fn)
}

// forEachServerWith is forEachServer with the dial configuration changed
// by tweak.
func forEachServerWith(t *testing.T, tweak func(*ninep.Config), fn func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS)) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			srv := ninetest.Start(t, kind, dir)
			cfg := srv.Config
			if tweak != nil {
				tweak(&cfg)
			}
			fsys, err := ninep.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			t.Cleanup(func() { fsys.Close() })
			fn(t, srv, fsys)
		})
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func TestFileRoundTrip(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Open("d/f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Larger than one request, so the parallel path runs.
		data := bytes.Repeat([]byte("0123456789abcdef"), 100_000)
		if n, err := f.WriteAt(data, 10); err != nil || n != len(data) {
			t.Fatalf("WriteAt: %d, %v", n, err)
		}
		got := make([]byte, len(data)+100)
		n, err := f.ReadAt(got, 10)
		if n != len(data) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt: %d, %v", n, err)
		}
		if !bytes.Equal(got[:n], data) {
			t.Fatal("read back different data")
		}
		if n, err := f.ReadAt(got, int64(len(data)+10)); n != 0 || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt at EOF: %d, %v", n, err)
		}
		onDisk, err := os.ReadFile(filepath.Join(srv.Dir, "d", "f"))
		if err != nil || !bytes.Equal(onDisk[10:], data) {
			t.Fatalf("export holds %d bytes, %v", len(onDisk), err)
		}
		a, err := f.Stat()
		if err != nil || a.Size != int64(len(data)+10) || a.Mode != unix.S_IFREG|0o640 {
			t.Fatalf("Stat: %+v, %v", a, err)
		}
		if err := f.Truncate(5); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(false); err != nil {
			t.Fatal(err)
		}
		if a, err := fsys.Lstat("d/f"); err != nil || a.Size != 5 {
			t.Fatalf("Lstat after truncate: %d, %v", a.Size, err)
		}
		_, err = fsys.Open("d/f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o640)
		wantErrno(t, "exclusive create of an existing file", err, syscall.EEXIST)
		_, err = fsys.Open("d/missing", unix.O_RDONLY, 0)
		wantErrno(t, "open missing", err, syscall.ENOENT)
		_, err = fsys.Lstat("d/missing/deeper")
		wantErrno(t, "stat beneath missing", err, syscall.ENOENT)
	})
}

func TestNamespace(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		for _, name := range []string{"a", "b"} {
			f, err := fsys.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		wantErrno(t, "rename noreplace onto existing", fsys.Rename("a", "b", unix.RENAME_NOREPLACE), syscall.EEXIST)
		if err := fsys.Rename("a", "c", unix.RENAME_NOREPLACE); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Mkdir("dir", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Mkdir("dir2", 0o700); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "rename noreplace dir onto existing", fsys.Rename("dir", "dir2", unix.RENAME_NOREPLACE), syscall.EEXIST)
		if err := fsys.Rename("dir2", "dir/sub", unix.RENAME_NOREPLACE); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "exchange", fsys.Rename("b", "c", unix.RENAME_EXCHANGE), syscall.EINVAL)
		if err := fsys.Rename("b", "c", 0); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Symlink("/etc/passwd", "dir/ln"); err != nil {
			t.Fatal(err)
		}
		if target, err := fsys.Readlink("dir/ln"); err != nil || target != "/etc/passwd" {
			t.Fatalf("Readlink: %q, %v", target, err)
		}
		if a, err := fsys.Lstat("dir/ln"); err != nil || a.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Fatalf("Lstat symlink: %o, %v", a.Mode, err)
		}
		wantErrno(t, "chmod symlink", fsys.Chmod("dir/ln", 0o600), syscall.EOPNOTSUPP)
		if err := fsys.Link("c", "dir/hard"); err != nil {
			t.Fatal(err)
		}
		if a, err := fsys.Lstat("c"); err != nil || a.Nlink != 2 {
			t.Fatalf("nlink after link: %d, %v", a.Nlink, err)
		}
		if err := fsys.Chmod("c", 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chown("c", 1234, 5678); err != nil {
			t.Fatal(err)
		}
		mt := unix.Timespec{Sec: 1_000_000_000, Nsec: 5}
		if err := fsys.Utimens("c", nil, &mt); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Mknod("dir/fifo", unix.S_IFIFO|0o600, 0); err != nil {
			t.Fatal(err)
		}
		a, err := fsys.Lstat("c")
		if err != nil || a.Mode != unix.S_IFREG|0o600 || a.Uid != 1234 || a.Gid != 5678 || a.Mtim != mt {
			t.Fatalf("Lstat after setattr: %+v, %v", a, err)
		}
		entries, err := fsys.ReadDir("dir")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
			want := map[string]uint32{"sub": unix.S_IFDIR, "ln": unix.S_IFLNK, "hard": unix.S_IFREG, "fifo": unix.S_IFIFO}[e.Name]
			if e.Mode != want {
				t.Errorf("entry %s: mode %o, want %o", e.Name, e.Mode, want)
			}
		}
		sort.Strings(names)
		if got := names; len(got) != 4 || got[0] != "fifo" || got[1] != "hard" || got[2] != "ln" || got[3] != "sub" {
			t.Fatalf("ReadDir: %v", names)
		}
		wantErrno(t, "rmdir non-empty", fsys.Rmdir("dir"), syscall.ENOTEMPTY)
		wantErrno(t, "unlink dir", fsys.Unlink("dir/sub"), syscall.EISDIR)
		for _, n := range []string{"dir/ln", "dir/hard", "dir/fifo", "c"} {
			if err := fsys.Unlink(n); err != nil {
				t.Fatalf("Unlink %s: %v", n, err)
			}
		}
		if err := fsys.Rmdir("dir/sub"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Truncate("dir", 0); err == nil {
			t.Error("truncate of a directory succeeded")
		}
		st, err := fsys.Statfs()
		if err != nil || st.Blocks == 0 || st.Bsize == 0 {
			t.Fatalf("Statfs: %+v, %v", st, err)
		}
	})
}

// TestOpenFileFollowsRename checks that a file opened before a rename
// through the FS keeps working (its name is tracked for reopening).
func TestOpenFileFollowsRename(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("tmp", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fsys.Rename("tmp", "final", unix.RENAME_NOREPLACE); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(srv.Dir, "final")); err != nil || string(b) != "hello" {
			t.Fatalf("export: %q, %v", b, err)
		}
	})
}

func TestBadNames(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		for _, name := range []string{"..", "../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\x00b", "a/"} {
			_, err := fsys.Lstat(name)
			wantErrno(t, "Lstat "+name, err, syscall.EINVAL)
			_, err = fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			wantErrno(t, "create "+name, err, syscall.EINVAL)
			wantErrno(t, "mkdir "+name, fsys.Mkdir(name, 0o755), syscall.EINVAL)
		}
	})
}

var _ backend.FS = (*ninep.FS)(nil)

// TestOpenFileKeepsWorkingAfterRename: every call on an open file works
// after the FS renamed it, in both kinds of rename, also on servers whose
// fids keep the old path (diod changes attributes by path).
func TestOpenFileKeepsWorkingAfterRename(t *testing.T) {
	for _, flags := range []uint32{0, unix.RENAME_NOREPLACE} {
		t.Run("plain", func(t *testing.T) { forEachServer(t, renameOpenFile(flags, "")) })
		t.Run("exclusive", func(t *testing.T) { forEachExclusive(t, renameOpenFile(flags, "")) })
	}
}

// TestOpenFileAfterRenameLeavesTheOldNameAlone: once an open file is
// renamed and something else takes its old name, calls on the open file
// reach it, not the newcomer. A server whose fids keep the path they were
// walked to (diod) would otherwise report the newcomer's attributes and
// change the newcomer.
func TestOpenFileAfterRenameLeavesTheOldNameAlone(t *testing.T) {
	for _, reuse := range []string{"dir", "file"} {
		t.Run(reuse+"/plain", func(t *testing.T) { forEachServer(t, renameOpenFile(0, reuse)) })
		t.Run(reuse+"/exclusive", func(t *testing.T) { forEachExclusive(t, renameOpenFile(0, reuse)) })
	}
}

// renameOpenFile renames an open file with flags and uses it; with reuse
// "dir" or "file", a new directory or file takes the old name first.
func renameOpenFile(flags uint32, reuse string) func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
	return func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fsys.Rename("a", "b", flags); err != nil {
			t.Fatal(err)
		}
		switch reuse {
		case "dir":
			if err := fsys.Mkdir("a", 0o755); err != nil {
				t.Fatal(err)
			}
		case "file":
			makeNewcomer(t, fsys)
		}
		defer checkNewcomer(t, srv, fsys, reuse)
		mtime := unix.Timespec{Sec: 1_000_000_000}
		if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := f.Chmod(0o600); err != nil {
			t.Fatalf("chmod: %v", err)
		}
		if err := f.Utimens(nil, &mtime); err != nil {
			t.Fatalf("utimes: %v", err)
		}
		if err := f.Sync(false); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		a, err := f.Stat()
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if a.Size != 5 || a.Mode&07777 != 0o600 || a.Mtim.Sec != mtime.Sec {
			t.Errorf("stat: size %d mode %o mtime %d", a.Size, a.Mode&07777, a.Mtim.Sec)
		}
		st, err := os.Stat(filepath.Join(srv.Dir, "b"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != 5 || st.Mode().Perm() != 0o600 || st.ModTime().Unix() != mtime.Sec {
			t.Errorf("on the server: size %d mode %o mtime %v", st.Size(), st.Mode().Perm(), st.ModTime())
		}
		if err := f.Truncate(2); err != nil {
			t.Fatalf("truncate: %v", err)
		}
		if st, err := os.Stat(filepath.Join(srv.Dir, "b")); err != nil || st.Size() != 2 {
			t.Errorf("on the server after truncate: %v, %v", st, err)
		}
	}
}

// makeNewcomer creates the file "a" with known contents, which
// checkNewcomer checks.
func makeNewcomer(t *testing.T, fsys *ninep.FS) {
	g, err := fsys.Open("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("newcomer's"), 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkNewcomer checks that what took the old name "a" kept its mode and
// contents.
func checkNewcomer(t *testing.T, srv *ninetest.Server, fsys *ninep.FS, reuse string) {
	if reuse == "" {
		return
	}
	if err := fsys.Settle(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(srv.Dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case reuse == "dir" && (!st.IsDir() || st.Mode().Perm() != 0o755):
		t.Errorf("the new directory a: mode %v, want drwxr-xr-x", st.Mode())
	case reuse == "file":
		b, err := os.ReadFile(filepath.Join(srv.Dir, "a"))
		if err != nil || string(b) != "newcomer's" || st.Mode().Perm() != 0o644 || st.ModTime().Unix() == 1_000_000_000 {
			t.Errorf("the new file a: %q, %v, mode %v, mtime %v", b, err, st.Mode(), st.ModTime())
		}
	}
}

// TestSyncDir: fsync of a directory is a Tfsync on a fid of it, which
// both servers accept; a directory removed meanwhile has nothing left to
// sync, as on Linux.
func TestSyncDir(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Open("d/f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := fsys.Rename("d/f", "d/g", 0); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"", "d"} {
			if err := fsys.SyncDir(name); err != nil {
				t.Errorf("SyncDir(%q): %v", name, err)
			}
		}
		if err := os.RemoveAll(filepath.Join(srv.Dir, "d")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.SyncDir("d"); err != nil {
			t.Errorf("SyncDir of a removed directory: %v, want nil", err)
		}
	})
}

// TestOpenFileAfterUnlinkLeavesTheNewcomerAlone: once an open file is
// removed and a new file takes its name, attribute calls on the open file
// may fail (a server that tracks fids by path cannot reach a removed
// file) but never change the newcomer.
func TestOpenFileAfterUnlinkLeavesTheNewcomerAlone(t *testing.T) {
	run := func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("old"), 0); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Unlink("a"); err != nil {
			t.Fatal(err)
		}
		makeNewcomer(t, fsys)
		f.Chmod(0o600)
		f.Utimens(nil, &unix.Timespec{Sec: 1_000_000_000})
		f.Truncate(1)
		fsys.Settle() // a refused deferred change of a removed file is dropped
		checkNewcomer(t, srv, fsys, "file")
	}
	t.Run("plain", func(t *testing.T) { forEachServer(t, run) })
	t.Run("exclusive", func(t *testing.T) { forEachExclusive(t, run) })
}
