package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The POSIX tests run each scenario on a native ext4 directory and in a
// mount and require identical transcripts: results, errno names, sizes,
// modes, link counts and contents, never inode numbers or times, which
// differ between any two files; where those matter, a scenario records a
// relation ("same inode", "recent") instead.

// pxScenario is a named scenario: run works beneath root, returns a transcript.
type pxScenario struct {
	name string
	run  func(root string) string
}

// pxTranscript records a scenario's observations.
type pxTranscript struct {
	root string
	b    strings.Builder
}

func (tr *pxTranscript) p(name string) string { return filepath.Join(tr.root, name) }

func (tr *pxTranscript) logf(format string, args ...any) { fmt.Fprintf(&tr.b, format+"\n", args...) }

// do records the outcome of one step: "ok" or the errno's name.
func (tr *pxTranscript) do(step string, err error) { tr.logf("%s: %s", step, tr.errName(err)) }

// errName names err by its errno, so that messages (which hold paths) do
// not make two identical outcomes differ.
func (tr *pxTranscript) errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) && unix.ErrnoName(errno) != "" {
		return unix.ErrnoName(errno)
	}
	return "error: " + strings.ReplaceAll(err.Error(), tr.root, "$ROOT")
}

// meta records a stat(2) result: the metadata or the errno.
func (tr *pxTranscript) meta(step string, st *unix.Stat_t, err error) {
	if err != nil {
		tr.do(step, err)
		return
	}
	tr.logf("%s: mode=%#o size=%d nlink=%d uid=%d gid=%d", step, st.Mode, st.Size, st.Nlink, st.Uid, st.Gid)
}

func (tr *pxTranscript) lstat(name string) {
	var st unix.Stat_t
	tr.meta("lstat "+name, &st, unix.Lstat(tr.p(name), &st))
}

func (tr *pxTranscript) stat(name string) {
	var st unix.Stat_t
	tr.meta("stat "+name, &st, unix.Stat(tr.p(name), &st))
}

func (tr *pxTranscript) fstat(step string, fd int) {
	var st unix.Stat_t
	tr.meta(step, &st, unix.Fstat(fd, &st))
}

// ino returns name's inode number (0 on error), for relations only.
func (tr *pxTranscript) ino(name string) uint64 {
	var st unix.Stat_t
	unix.Lstat(tr.p(name), &st)
	return st.Ino
}

// open records the outcome of an open and returns the descriptor (-1 on
// error).
func (tr *pxTranscript) open(name string, flags int, perm uint32) int {
	fd, err := unix.Open(tr.p(name), flags|unix.O_CLOEXEC, perm)
	tr.do(fmt.Sprintf("open %s %#o", name, flags), err)
	return fd
}

// write records a pwrite(2) at off, or a write(2) when off < 0.
func (tr *pxTranscript) write(step string, fd int, data string, off int64) {
	var n int
	var err error
	if off < 0 {
		n, err = unix.Write(fd, []byte(data))
	} else {
		n, err = unix.Pwrite(fd, []byte(data), off)
	}
	tr.logf("%s: n=%d %s", step, n, tr.errName(err))
}

// read records a pread(2) at off, or a read(2) when off < 0.
func (tr *pxTranscript) read(step string, fd, size int, off int64) {
	buf := make([]byte, size)
	var n int
	var err error
	if off < 0 {
		n, err = unix.Read(fd, buf)
	} else {
		n, err = unix.Pread(fd, buf, off)
	}
	tr.logf("%s: %q %s", step, buf[:max(n, 0)], tr.errName(err))
}

func (tr *pxTranscript) readlink(name string) {
	l, err := os.Readlink(tr.p(name))
	tr.logf("readlink %s: %q %s", name, l, tr.errName(err))
}

// content records the whole content of name.
func (tr *pxTranscript) content(name string) {
	b, err := os.ReadFile(tr.p(name))
	if err != nil {
		tr.do("content "+name, err)
		return
	}
	tr.logf("content %s: %q", name, b)
}

// list records the sorted names and types in dir.
func (tr *pxTranscript) list(dir string) {
	es, err := os.ReadDir(tr.p(dir))
	if err != nil {
		tr.do("list "+dir, err)
		return
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name()+":"+e.Type().String())
	}
	sort.Strings(names)
	tr.logf("list %s: %s", dir, strings.Join(names, " "))
}

// comparePOSIX runs every scenario in a fresh directory of the native file
// system and of the mount, and requires equal transcripts. The native run
// happens after the mount exists: mounting sets the process umask to 0,
// and both runs must see the same one.
func comparePOSIX(t *testing.T, tv *testVolume, scenarios []pxScenario) {
	detachIfUnsyncable(t, tv)
	native := t.TempDir()
	// Scenarios run commands as an unprivileged user, who must reach both.
	pxTraversable(t, native)
	pxTraversable(t, filepath.Dir(tv.mnt))
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			want := sc.run(pxMkdir(t, filepath.Join(native, sc.name)))
			got := sc.run(pxMkdir(t, tv.path(sc.name)))
			if got != want {
				t.Errorf("mount differs from ext4:\n%s", pxDiff(want, got))
			}
		})
	}
}

func pxMkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pxDiff shows two transcripts line by line, marking the lines that differ.
func pxDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for len(w) < len(g) {
		w = append(w, "")
	}
	for len(g) < len(w) {
		g = append(g, "")
	}
	var b strings.Builder
	for i := range w {
		if wl, gl := w[i], g[i]; wl == gl {
			fmt.Fprintf(&b, "      %s\n", wl)
		} else {
			fmt.Fprintf(&b, "ext4  %s\nmount %s\n", wl, gl)
		}
	}
	return b.String()
}

// TestPOSIX_EverydayOperationsMatchExt4 covers the namespace and file
// data; posix_perm_test.go covers attributes and permissions.
func TestPOSIX_EverydayOperationsMatchExt4(t *testing.T) {
	scenarios := []pxScenario{
		{"create", pxCreate},
		{"open-flags", pxOpenFlags},
		{"read-write", pxReadWrite},
		{"truncate", pxTruncate},
		{"unlinked-open-file", pxUnlinkedOpenFile},
		{"rename", pxRename},
		{"link", pxLink},
		{"symlink", pxSymlink},
		{"mkdir-rmdir", pxMkdirRmdir},
		{"readdir", pxReaddir},
	}
	forEachVariant(t, func(t *testing.T, tv *testVolume) { comparePOSIX(t, tv, scenarios) })
}

func pxCreate(root string) string {
	tr := &pxTranscript{root: root}
	fd := tr.open("f", unix.O_CREAT|unix.O_WRONLY, 0o640)
	tr.fstat("fstat new", fd)
	unix.Close(fd)
	tr.lstat("f")
	unix.Close(tr.open("f", unix.O_CREAT|unix.O_RDWR, 0o777)) // exists: mode stays
	tr.lstat("f")
	tr.open("f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
	tr.open("missing/f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	tr.open("f/g", unix.O_CREAT|unix.O_WRONLY, 0o644)
	// O_CREAT follows a dangling symlink and creates its target, but
	// O_EXCL refuses any existing name, a symlink included.
	tr.do("symlink dangling", os.Symlink("target", tr.p("dangling")))
	tr.open("dangling", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
	unix.Close(tr.open("dangling", unix.O_CREAT|unix.O_WRONLY, 0o600))
	tr.lstat("target")
	tr.list(".")
	return tr.b.String()
}

func pxOpenFlags(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("0123456789"), 0o644))
	tr.open("nope", unix.O_RDONLY, 0)
	fd := tr.open("f", unix.O_WRONLY|unix.O_TRUNC, 0)
	tr.fstat("fstat after O_TRUNC", fd)
	tr.write("write", fd, "abc", -1)
	unix.Close(fd)
	fd = tr.open("f", unix.O_WRONLY|unix.O_APPEND, 0)
	tr.write("append", fd, "def", -1)
	_, err := unix.Seek(fd, 0, 0)
	tr.do("seek 0", err)
	tr.write("append after seek", fd, "ghi", -1)
	// Linux appends even with pwrite on an O_APPEND descriptor.
	tr.write("pwrite 0 on O_APPEND", fd, "jkl", 0)
	unix.Close(fd)
	tr.content("f")
	fd = tr.open("f", unix.O_RDONLY, 0)
	tr.write("write O_RDONLY", fd, "x", -1)
	unix.Close(fd)
	fd = tr.open("f", unix.O_WRONLY, 0)
	tr.read("read O_WRONLY", fd, 4, -1)
	unix.Close(fd)
	tr.open("f", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.open("d", unix.O_WRONLY, 0)
	unix.Close(tr.open("d", unix.O_RDONLY|unix.O_DIRECTORY, 0))
	tr.content("f")
	return tr.b.String()
}

func pxReadWrite(root string) string {
	tr := &pxTranscript{root: root}
	fd := tr.open("f", unix.O_CREAT|unix.O_RDWR, 0o644)
	tr.write("write", fd, "hello world", -1)
	tr.read("pread middle", fd, 5, 6)
	tr.read("pread at EOF", fd, 5, 11)
	tr.read("pread past EOF", fd, 5, 100)
	tr.write("pwrite middle", fd, "WORLD", 6)
	tr.read("read at cursor (EOF)", fd, 5, -1)
	tr.write("sparse pwrite", fd, "tail", 20)
	tr.fstat("fstat", fd)
	tr.read("pread hole", fd, 30, 0)
	end, err := unix.Seek(fd, 0, 2)
	tr.logf("seek end: %d %s", end, tr.errName(err))
	tr.write("write at end", fd, "!", -1)
	// A write spanning many pages and FUSE requests, unaligned.
	big := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstu"), 70001)
	n, err := unix.Pwrite(fd, big, 4093)
	tr.logf("big pwrite: n=%d %s", n, tr.errName(err))
	unix.Close(fd)
	b, err := os.ReadFile(tr.p("f"))
	tr.logf("reread: len=%d big-intact=%v head=%q %s", len(b),
		len(b) >= 4093+len(big) && bytes.Equal(b[4093:4093+len(big)], big), b[:min(len(b), 26)], tr.errName(err))
	tr.stat("f")
	return tr.b.String()
}

func pxTruncate(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("0123456789"), 0o644))
	tr.do("truncate down", os.Truncate(tr.p("f"), 4))
	tr.content("f")
	tr.do("truncate up", os.Truncate(tr.p("f"), 8))
	tr.content("f")
	tr.do("truncate negative", os.Truncate(tr.p("f"), -1))
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.do("truncate dir", os.Truncate(tr.p("d"), 0))
	fd := tr.open("f", unix.O_RDWR, 0)
	tr.do("ftruncate up", unix.Ftruncate(fd, 12))
	tr.fstat("fstat", fd)
	tr.do("ftruncate down", unix.Ftruncate(fd, 2))
	tr.read("pread", fd, 20, 0)
	unix.Close(fd)
	fd = tr.open("f", unix.O_RDONLY, 0)
	tr.do("ftruncate O_RDONLY", unix.Ftruncate(fd, 0))
	unix.Close(fd)
	tr.content("f")
	return tr.b.String()
}

// pxUnlinkedOpenFile checks that a file stays usable through an open
// descriptor after its last name is gone: reads, writes, ftruncate, and
// the metadata calls that reach it only through the descriptor.
func pxUnlinkedOpenFile(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("still here"), 0o644))
	fd := tr.open("f", unix.O_RDWR, 0)
	tr.do("unlink", os.Remove(tr.p("f")))
	tr.lstat("f")
	tr.read("pread", fd, 64, 0)
	tr.fstat("fstat", fd)
	tr.write("pwrite", fd, "STILL", 0)
	tr.do("ftruncate", unix.Ftruncate(fd, 7))
	tr.read("pread", fd, 64, 0)
	tr.fstat("fstat", fd)
	tr.do("fchmod", unix.Fchmod(fd, 0o600))
	tr.do("fchown", unix.Fchown(fd, 1234, 5678))
	tr.do("fsetxattr", unix.Fsetxattr(fd, "user.k", []byte("v"), 0))
	tr.do("futimens", unix.UtimesNanoAt(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd),
		[]unix.Timespec{{Sec: 1e9}, {Sec: 1e9}}, 0))
	tr.fstat("fstat", fd)
	unix.Close(fd)
	tr.list(".")
	return tr.b.String()
}

func pxRename(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write a", os.WriteFile(tr.p("a"), []byte("A"), 0o644))
	tr.do("write b", os.WriteFile(tr.p("b"), []byte("B"), 0o644))
	inoA := tr.ino("a")
	tr.do("rename file over file", os.Rename(tr.p("a"), tr.p("b")))
	tr.lstat("a")
	tr.content("b")
	tr.logf("b keeps a's inode: %v", tr.ino("b") == inoA)
	tr.do("rename missing", os.Rename(tr.p("a"), tr.p("c")))
	tr.do("mkdir d1", os.Mkdir(tr.p("d1"), 0o755))
	tr.do("write d1/inner", os.WriteFile(tr.p("d1/inner"), []byte("in"), 0o644))
	tr.lstat("d1/inner") // a cached lookup must follow the rename
	tr.do("mkdir empty", os.Mkdir(tr.p("empty"), 0o755))
	tr.do("rename dir over empty dir", os.Rename(tr.p("d1"), tr.p("empty")))
	tr.content("empty/inner")
	tr.lstat("d1/inner")
	tr.do("mkdir full", os.Mkdir(tr.p("full"), 0o755))
	tr.do("write full/x", os.WriteFile(tr.p("full/x"), nil, 0o644))
	tr.do("rename dir over non-empty dir", os.Rename(tr.p("empty"), tr.p("full")))
	tr.do("rename dir over file", os.Rename(tr.p("empty"), tr.p("b")))
	tr.do("rename file over dir", os.Rename(tr.p("b"), tr.p("full")))
	tr.do("rename dir into itself", os.Rename(tr.p("empty"), tr.p("empty/sub")))
	tr.do("rename into other dir", os.Rename(tr.p("b"), tr.p("full/b")))
	tr.content("full/b")
	tr.do("write n", os.WriteFile(tr.p("n"), []byte("N"), 0o644))
	tr.do("RENAME_NOREPLACE onto existing",
		unix.Renameat2(unix.AT_FDCWD, tr.p("n"), unix.AT_FDCWD, tr.p("full/b"), unix.RENAME_NOREPLACE))
	tr.do("RENAME_NOREPLACE onto new",
		unix.Renameat2(unix.AT_FDCWD, tr.p("n"), unix.AT_FDCWD, tr.p("m"), unix.RENAME_NOREPLACE))
	tr.do("RENAME_EXCHANGE file and dir",
		unix.Renameat2(unix.AT_FDCWD, tr.p("m"), unix.AT_FDCWD, tr.p("full"), unix.RENAME_EXCHANGE))
	tr.content("full")
	tr.content("m/b")
	tr.lstat("m")
	tr.do("RENAME_EXCHANGE with missing",
		unix.Renameat2(unix.AT_FDCWD, tr.p("m"), unix.AT_FDCWD, tr.p("missing"), unix.RENAME_EXCHANGE))
	tr.list(".")
	tr.list("m")
	tr.list("empty")
	return tr.b.String()
}

func pxLink(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write a", os.WriteFile(tr.p("a"), []byte("shared"), 0o644))
	tr.do("link a b", os.Link(tr.p("a"), tr.p("b")))
	tr.lstat("a")
	tr.lstat("b")
	tr.logf("same inode: %v", tr.ino("a") == tr.ino("b") && tr.ino("a") != 0)
	fd := tr.open("a", unix.O_WRONLY|unix.O_APPEND, 0)
	tr.write("append through a", fd, "+more", -1)
	unix.Close(fd)
	tr.content("b")
	tr.do("link onto existing", os.Link(tr.p("a"), tr.p("b")))
	tr.do("link missing", os.Link(tr.p("missing"), tr.p("c")))
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.do("link dir", os.Link(tr.p("d"), tr.p("d2")))
	tr.do("link into dir", os.Link(tr.p("b"), tr.p("d/c")))
	tr.lstat("a")
	tr.do("unlink a", os.Remove(tr.p("a")))
	tr.lstat("b")
	tr.content("d/c")
	return tr.b.String()
}

func pxSymlink(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("data"), 0o644))
	tr.do("symlink", os.Symlink("f", tr.p("l")))
	tr.lstat("l")
	tr.stat("l")
	tr.content("l")
	tr.open("l", unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	tr.readlink("l")
	tr.do("symlink dangling", os.Symlink("no/such/target", tr.p("dangling")))
	tr.lstat("dangling")
	tr.stat("dangling")
	tr.readlink("dangling")
	tr.do("symlink absolute", os.Symlink("/nonexistent-goferfs-target/x", tr.p("abs")))
	tr.readlink("abs")
	tr.stat("abs")
	tr.do("symlink onto existing", os.Symlink("f", tr.p("f")))
	tr.readlink("f")
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.do("write d/in", os.WriteFile(tr.p("d/in"), []byte("in"), 0o644))
	tr.do("symlink to dir", os.Symlink("d", tr.p("ld")))
	tr.content("ld/in")
	long := strings.Repeat("x/", 1000) + "end"
	tr.do("symlink long", os.Symlink(long, tr.p("long")))
	l, err := os.Readlink(tr.p("long"))
	tr.logf("readlink long: same=%v %s", l == long, tr.errName(err))
	tr.lstat("long")
	return tr.b.String()
}

func pxMkdirRmdir(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o750))
	tr.lstat("d")
	tr.do("mkdir existing", os.Mkdir(tr.p("d"), 0o755))
	tr.do("mkdir missing parent", os.Mkdir(tr.p("no/d"), 0o755))
	tr.do("mkdir d/sub", os.Mkdir(tr.p("d/sub"), 0o755))
	tr.do("mkdir d/sub2", os.Mkdir(tr.p("d/sub2"), 0o755))
	tr.lstat("d") // nlink counts subdirectories
	tr.do("write d/f", os.WriteFile(tr.p("d/f"), nil, 0o644))
	tr.do("rmdir non-empty", unix.Rmdir(tr.p("d")))
	tr.do("rmdir file", unix.Rmdir(tr.p("d/f")))
	tr.do("rmdir missing", unix.Rmdir(tr.p("missing")))
	tr.do("rmdir dot", unix.Rmdir(tr.p("d/sub/.")))
	tr.do("rmdir empty", unix.Rmdir(tr.p("d/sub")))
	tr.lstat("d")
	tr.do("unlink dir", unix.Unlink(tr.p("d/sub2")))
	tr.list("d")
	return tr.b.String()
}

func pxReaddir(root string) string {
	tr := &pxTranscript{root: root}
	tr.list(".")
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	// Enough long names to take several getdents and FUSE readdir replies;
	// the listings show which were created.
	name := func(i int) string { return fmt.Sprintf("d/file-%03d-%s", i, strings.Repeat("n", 60)) }
	for i := 0; i < 400; i++ {
		os.WriteFile(tr.p(name(i)), nil, 0o644)
	}
	tr.do("mkdir d/sub", os.Mkdir(tr.p("d/sub"), 0o755))
	tr.do("symlink d/link", os.Symlink("sub", tr.p("d/link")))
	tr.do("mkfifo d/fifo", unix.Mkfifo(tr.p("d/fifo"), 0o644))
	tr.list("d")
	for i := 0; i < 400; i += 3 {
		tr.do("remove "+name(i), os.Remove(tr.p(name(i))))
	}
	tr.list("d")
	tr.list("d/sub")
	tr.list("missing")
	tr.list("d/link") // follows the link
	return tr.b.String()
}

// TestPOSIX_UnlinkLeavesVolumeSyncable: removing a file is no error to
// report at the next syncfs. With the writeback cache the kernel sends an
// unlinked inode's times when it evicts it; that must not fail, or the
// volume can never be synced, and so never unmounted.
func TestPOSIX_UnlinkLeavesVolumeSyncable(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		detachIfUnsyncable(t, tv)
		writeFile(t, tv.path("f"), "data")
		if err := os.Remove(tv.path("f")); err != nil {
			t.Fatal(err)
		}
		if err := tv.vol.Sync(); err != nil {
			t.Errorf("sync after writing and removing a file: %v", err)
		}
	})
}
