package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fixture lays out a volume directory with things outside it to aim at:
//
//	base/x                  a file next to the volume
//	base/outside/passwd     a file in a directory next to the volume
//	base/vol/               the volume
//	base/vol/a/             a directory, for "a/../../x"
//	base/vol/inside         a file, for operations that take two names
//	base/vol/evil           symlink to base/outside (absolute)
//	base/vol/evilrel        symlink to ../outside
//	base/vol/lnk            symlink to base/outside/passwd (absolute)
//	base/vol/lnkin          symlink to inside
//
// Every outside file carries an xattr, so that reading or removing it
// through a symlink would show.
func fixture(t *testing.T) (r *Root, base string) {
	t.Helper()
	base = t.TempDir()
	vol := filepath.Join(base, "vol")
	for _, d := range []string{"outside", "vol", "vol/a"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"x": "outside x", "outside/passwd": "outside passwd", "vol/inside": "inside"}
	for name, data := range files {
		p := filepath.Join(base, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p, "user.keep", []byte("kept"), 0); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"evil":    filepath.Join(base, "outside"),
		"evilrel": "../outside",
		"lnk":     filepath.Join(base, "outside/passwd"),
		"lnkin":   "inside",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(vol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, base
}

// snapshot describes every file under dir (symlinks not followed): type,
// mode, owner, size, mtime, content, target and user xattrs. Two equal
// snapshots mean nothing there was created, removed or changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode=%#o uid=%d gid=%d size=%d mtime=%d.%d", strings.TrimPrefix(p, dir),
			st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " data=%q", data)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " target=%q", target)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 4096)
			n, err := unix.Listxattr(p, buf)
			if err != nil {
				return err
			}
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				if strings.HasPrefix(name, "user.") {
					v := make([]byte, 4096)
					m, _ := unix.Getxattr(p, name, v)
					fmt.Fprintf(&b, " %s=%q", name, v[:max(m, 0)])
				}
			}
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// escapeOps is every Root method that takes a name, applied to one name
// (twice for the two-name calls: as the source and as the destination).
var escapeOps = []struct {
	name string
	// mutates is false for the calls that only read: those also get
	// /etc/passwd, which no test may risk writing to.
	mutates bool
	do      func(r *Root, n string) error
}{
	{"Lstat", false, func(r *Root, n string) error { _, err := r.Lstat(n); return err }},
	{"Open", false, func(r *Root, n string) error { return closeFile(r.Open(n, unix.O_RDONLY, 0)) }},
	{"OpenDir", false, func(r *Root, n string) error { return closeFile(r.Open(n, unix.O_RDONLY|unix.O_DIRECTORY, 0)) }},
	{"Readlink", false, func(r *Root, n string) error { _, err := r.Readlink(n); return err }},
	{"ReadDir", false, func(r *Root, n string) error { _, err := r.ReadDir(n); return err }},
	{"Getxattr", false, func(r *Root, n string) error { _, err := r.Getxattr(n, "user.keep", make([]byte, 64)); return err }},
	{"Listxattr", false, func(r *Root, n string) error { _, err := r.Listxattr(n, make([]byte, 256)); return err }},
	{"OpenCreate", true, func(r *Root, n string) error { return closeFile(r.Open(n, unix.O_RDWR|unix.O_CREAT, 0o666)) }},
	{"OpenTrunc", true, func(r *Root, n string) error { return closeFile(r.Open(n, unix.O_WRONLY|unix.O_TRUNC, 0)) }},
	{"Mkdir", true, func(r *Root, n string) error { return r.Mkdir(n, 0o777) }},
	{"Mknod", true, func(r *Root, n string) error { return r.Mknod(n, unix.S_IFIFO|0o666, 0) }},
	{"Symlink", true, func(r *Root, n string) error { return r.Symlink("/", n) }},
	{"LinkFrom", true, func(r *Root, n string) error { return r.Link(n, "linked") }},
	{"LinkTo", true, func(r *Root, n string) error { return r.Link("inside", n) }},
	{"Unlink", true, func(r *Root, n string) error { return r.Unlink(n) }},
	{"Rmdir", true, func(r *Root, n string) error { return r.Rmdir(n) }},
	{"RenameFrom", true, func(r *Root, n string) error { return r.Rename(n, "moved", 0) }},
	{"RenameTo", true, func(r *Root, n string) error { return r.Rename("inside", n, 0) }},
	{"RenameExchange", true, func(r *Root, n string) error { return r.Rename("inside", n, unix.RENAME_EXCHANGE) }},
	{"Chmod", true, func(r *Root, n string) error { return r.Chmod(n, 0o777) }},
	{"Chown", true, func(r *Root, n string) error { return r.Chown(n, 1234, 1234) }},
	{"Utimens", true, func(r *Root, n string) error {
		ts := unix.Timespec{Sec: 1}
		return r.Utimens(n, &ts, &ts)
	}},
	{"Truncate", true, func(r *Root, n string) error { return r.Truncate(n, 0) }},
	{"Setxattr", true, func(r *Root, n string) error { return r.Setxattr(n, "user.evil", []byte("x"), 0) }},
	{"Removexattr", true, func(r *Root, n string) error { return r.Removexattr(n, "user.keep") }},
}

func closeFile(f interface{ Close() error }, err error) error {
	if err == nil {
		f.Close()
	}
	return err
}

// TestLocal_NamesOutsideTheRootFail aims every call at files outside the
// volume: by "..", by an absolute name, through a symlinked directory
// (absolute and relative), and with a NUL byte. Each call must fail with
// one of the errors that mean "not beneath the root" (EXDEV, ELOOP, EINVAL,
// ENOENT; EISDIR where the kernel refuses O_CREAT of a name with a
// trailing slash before looking it up), and nothing anywhere, inside the
// volume or out, may change.
func TestLocal_NamesOutsideTheRootFail(t *testing.T) {
	r, base := fixture(t)
	names := []string{
		"..", "../x", "a/../../x", "../outside", "../outside/passwd",
		filepath.Join(base, "x"), // absolute, into the test's own directory
		"evil/passwd", "evilrel/passwd", "a/../evil/passwd", "evil/", "evil/.",
		"inside\x00", "nul\x00/../../x",
	}
	before := snapshot(t, base)
	for _, op := range escapeOps {
		ns := names
		if !op.mutates {
			ns = append(ns, "/etc/passwd", "/etc")
		}
		for _, n := range ns {
			err := op.do(r, n)
			if err == nil {
				t.Errorf("%s(%q) succeeded", op.name, n)
				continue
			}
			var errno unix.Errno
			if !errors.As(err, &errno) || (errno != unix.EXDEV && errno != unix.ELOOP &&
				errno != unix.EINVAL && errno != unix.ENOENT && errno != unix.EISDIR) {
				t.Errorf("%s(%q) = %v, want EXDEV, ELOOP, EINVAL, ENOENT or EISDIR", op.name, n, err)
			}
		}
	}
	if after := snapshot(t, base); after != before {
		t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestLocal_SymlinksAreNeverFollowed applies every call to the symlinks
// themselves. Calls that act on a file fail or act on the link; none
// reaches the target, outside the volume (lnk) or inside it (lnkin).
func TestLocal_SymlinksAreNeverFollowed(t *testing.T) {
	r, base := fixture(t)
	outside := snapshot(t, filepath.Join(base, "outside"))
	inside, err := r.Lstat("inside")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"lnk", "lnkin"} {
		if err := r.Chmod(n, 0o777); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("Chmod(%s) = %v, want EOPNOTSUPP", n, err)
		}
		for _, flags := range []int{unix.O_RDONLY, unix.O_WRONLY | unix.O_TRUNC, unix.O_RDWR | unix.O_CREAT} {
			if err := closeFile(r.Open(n, flags, 0o644)); !errors.Is(err, unix.ELOOP) {
				t.Errorf("Open(%s, %#o) = %v, want ELOOP", n, flags, err)
			}
		}
		if err := r.Truncate(n, 0); !errors.Is(err, unix.ELOOP) {
			t.Errorf("Truncate(%s) = %v, want ELOOP", n, err)
		}
		if _, err := r.ReadDir(n); err == nil {
			t.Errorf("ReadDir(%s) succeeded", n)
		}
		// Getxattr must describe the link (which has no user xattrs),
		// never return the target's.
		if _, err := r.Getxattr(n, "user.keep", make([]byte, 64)); !errors.Is(err, unix.ENODATA) {
			t.Errorf("Getxattr(%s) = %v, want ENODATA", n, err)
		}
		// Linux allows no user xattrs on symlinks.
		if err := r.Setxattr(n, "user.evil", []byte("x"), 0); !errors.Is(err, unix.EPERM) {
			t.Errorf("Setxattr(%s) = %v, want EPERM", n, err)
		}
		if err := r.Removexattr(n, "user.keep"); err == nil {
			t.Errorf("Removexattr(%s) succeeded", n)
		}
		// Ownership and times apply to the link itself (lchown, lutimes).
		if err := r.Chown(n, 1234, 1234); err != nil {
			t.Errorf("Chown(%s): %v", n, err)
		}
		ts := unix.Timespec{Sec: 1}
		if err := r.Utimens(n, &ts, &ts); err != nil {
			t.Errorf("Utimens(%s): %v", n, err)
		}
		a, err := r.Lstat(n)
		if err != nil || a.Mode&unix.S_IFMT != unix.S_IFLNK || a.Uid != 1234 || a.Mtim.Sec != 1 {
			t.Errorf("Lstat(%s) = mode %#o uid %d mtime %d, %v; want the link itself changed",
				n, a.Mode, a.Uid, a.Mtim.Sec, err)
		}
	}
	if target, err := r.Readlink("lnk"); err != nil || target != filepath.Join(base, "outside/passwd") {
		t.Errorf("Readlink(lnk) = %q, %v", target, err)
	}
	if got := snapshot(t, filepath.Join(base, "outside")); got != outside {
		t.Errorf("outside files changed:\nbefore:\n%s\nafter:\n%s", outside, got)
	}
	after, err := r.Lstat("inside")
	if err != nil || after.Mode != inside.Mode || after.Uid != inside.Uid || after.Size != inside.Size ||
		after.Mtim != inside.Mtim {
		t.Errorf("inside changed through lnkin: %+v -> %+v (%v)", inside.Stat_t, after.Stat_t, err)
	}
}

// TestLocal_OperationsWorkBeneathRoot is the counterpart of the tests
// above: the same calls succeed on ordinary names, so their failures there
// are the root's doing, not a broken call.
func TestLocal_OperationsWorkBeneathRoot(t *testing.T) {
	r, _ := fixture(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("Mkdir", r.Mkdir("d", 0o755))
	f, err := r.Open("d/f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o640)
	must("Open create", err)
	_, err = f.WriteAt([]byte("hello"), 0)
	must("WriteAt", err)
	must("Close", f.Close())
	a, err := r.Lstat("d/f")
	must("Lstat", err)
	if a.Mode != unix.S_IFREG|0o640 || a.Size != 5 {
		t.Errorf("d/f: mode %#o size %d", a.Mode, a.Size)
	}
	must("Symlink", r.Symlink("f", "d/l"))
	if target, err := r.Readlink("d/l"); err != nil || target != "f" {
		t.Errorf("Readlink = %q, %v", target, err)
	}
	must("Link", r.Link("d/f", "d/g"))
	must("Mknod", r.Mknod("d/p", unix.S_IFIFO|0o600, 0))
	must("Rename", r.Rename("d/g", "h", 0))
	if err := r.Rename("h", "inside", unix.RENAME_NOREPLACE); !errors.Is(err, unix.EEXIST) {
		t.Errorf("Rename NOREPLACE onto existing = %v, want EEXIST", err)
	}
	must("Rename EXCHANGE", r.Rename("h", "inside", unix.RENAME_EXCHANGE))
	must("Chmod", r.Chmod("d/f", 0o600))
	must("Chown", r.Chown("d/f", 1234, 5678))
	ts := unix.Timespec{Sec: 1000, Nsec: 5}
	must("Utimens", r.Utimens("d/f", &ts, nil))
	must("Truncate", r.Truncate("d/f", 2))
	must("Setxattr", r.Setxattr("d/f", "user.k", []byte("v"), unix.XATTR_CREATE))
	buf := make([]byte, 64)
	n, err := r.Getxattr("d/f", "user.k", buf)
	must("Getxattr", err)
	if string(buf[:n]) != "v" {
		t.Errorf("Getxattr = %q", buf[:n])
	}
	n, err = r.Listxattr("d/f", buf)
	must("Listxattr", err)
	if !bytes.Contains(buf[:n], []byte("user.k\x00")) {
		t.Errorf("Listxattr = %q", buf[:n])
	}
	must("Removexattr", r.Removexattr("d/f", "user.k"))
	a, err = r.Lstat("d/f")
	must("Lstat", err)
	if a.Mode != unix.S_IFREG|0o600 || a.Uid != 1234 || a.Gid != 5678 || a.Size != 2 || a.Atim != ts {
		t.Errorf("d/f after setattr: mode %#o uid %d gid %d size %d atime %v", a.Mode, a.Uid, a.Gid, a.Size, a.Atim)
	}
	entries, err := r.ReadDir("d")
	must("ReadDir", err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "f l p" {
		t.Errorf("ReadDir(d) = %q, want \"f l p\"", got)
	}
	must("Unlink", r.Unlink("d/p"))
	if err := r.Rmdir("d"); !errors.Is(err, unix.ENOTEMPTY) {
		t.Errorf("Rmdir non-empty = %v, want ENOTEMPTY", err)
	}
	must("Unlink", r.Unlink("d/f"))
	must("Unlink", r.Unlink("d/l"))
	must("Rmdir", r.Rmdir("d"))
	root, err := r.Lstat("")
	must("Lstat root", err)
	if root.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("root mode %#o", root.Mode)
	}
	st, err := r.Statfs()
	must("Statfs", err)
	if st.Bsize == 0 || st.Blocks == 0 {
		t.Errorf("Statfs = %+v", st)
	}
}
