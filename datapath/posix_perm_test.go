package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Attributes and permissions, compared with ext4 like posix_test.go. The
// daemon runs as root and creates every file itself, so whether a volume
// keeps the rules for everyone else (who may do what, who owns what a
// user creates, which bits a write or chown clears) is checked by running
// commands as an unprivileged user against both file systems.

// TestPOSIX_AttributesAndPermissionsMatchExt4 compares modes, owners,
// times, xattrs, special files and the permission checks of an
// unprivileged user.
func TestPOSIX_AttributesAndPermissionsMatchExt4(t *testing.T) {
	scenarios := []pxScenario{
		{"chmod-chown", pxChmodChown},
		{"utimens", pxUtimens},
		{"xattr", pxXattr},
		{"mknod", pxMknod},
		{"nonroot-access", pxNonrootAccess},
		{"nonroot-ownership", pxNonrootOwnership},
		{"nonroot-sticky-dir", pxNonrootSticky},
		{"nonroot-clears-setid", pxNonrootClearsSetID},
		{"nonroot-setgid-dir", pxNonrootSetgidDir},
	}
	forEachVariant(t, func(t *testing.T, tv *testVolume) { comparePOSIX(t, tv, scenarios) })
}

// nobody is the unprivileged user the permission scenarios run as.
const nobody = 65534

// as runs script with /bin/sh as nobody, in the scenario's directory, and
// records the exit status and the output, with the directory's path
// replaced.
//
// The shell changes directory itself, after exec: with cmd.Dir the child
// would chdir into the mount between fork and exec, while the parent (the
// FUSE server of that mount) sits in vfork, where a garbage collection
// cannot stop it, so nothing answers the child's lookup.
func (tr *pxTranscript) as(script string) {
	cmd := exec.Command("/bin/sh", "-c", `cd "$ROOT" || exit 125; `+script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "ROOT=" + tr.root}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		tr.do("run "+script, err)
		return
	}
	clean := func(b bytes.Buffer) string { return strings.ReplaceAll(b.String(), tr.root, "$ROOT") }
	tr.logf("as nobody %q: exit=%d stdout=%q stderr=%q", script, code, clean(stdout), clean(stderr))
}

// put creates name as root with data and then sets mode (not subject to
// the umask) and owner.
func (tr *pxTranscript) put(name, data string, mode uint32, uid, gid int) {
	err := os.WriteFile(tr.p(name), []byte(data), 0o600)
	if err == nil {
		err = unix.Chown(tr.p(name), uid, gid)
	}
	if err == nil {
		err = unix.Chmod(tr.p(name), mode)
	}
	tr.do(fmt.Sprintf("put %s %#o %d:%d", name, mode, uid, gid), err)
}

// dir is put for a directory.
func (tr *pxTranscript) dir(name string, mode uint32, uid, gid int) {
	err := os.Mkdir(tr.p(name), 0o700)
	if err == nil {
		err = unix.Chown(tr.p(name), uid, gid)
	}
	if err == nil {
		err = unix.Chmod(tr.p(name), mode)
	}
	tr.do(fmt.Sprintf("dir %s %#o %d:%d", name, mode, uid, gid), err)
}

func pxNonrootAccess(root string) string {
	tr := &pxTranscript{root: root}
	tr.put("ro", "root data", 0o644, 0, 0)
	tr.put("secret", "root secret", 0o600, 0, 0)
	tr.put("open", "shared", 0o666, 0, 0)
	tr.put("script", "#!/bin/sh\necho ran\n", 0o755, 0, 0)
	tr.put("noexec", "#!/bin/sh\necho ran\n", 0o644, 0, 0)
	tr.dir("rodir", 0o755, 0, 0)
	tr.dir("closed", 0o700, 0, 0)
	tr.dir("pub", 0o777, 0, 0)
	tr.put("closed/f", "hidden", 0o644, 0, 0)
	tr.as("cat ro")
	tr.as("echo x > ro")
	tr.as("echo x >> ro")
	tr.as("cat secret")
	tr.as("echo more >> open && cat open")
	tr.as("./script")
	tr.as("./noexec")
	tr.as(": > rodir/new")
	tr.as("mkdir rodir/d")
	tr.as("rm ro")
	tr.as("mv ro ro2")
	tr.as("ls closed")
	tr.as("cat closed/f")
	tr.as("chmod 777 ro")
	tr.as("chown 65534 ro")
	tr.as("touch open")       // UTIME_NOW needs write access only
	tr.as("touch -d @0 open") // explicit times need ownership
	tr.as("touch ro")
	tr.as("ln secret pub/hard") // fs.protected_hardlinks
	tr.content("ro")
	tr.content("open")
	tr.lstat("ro")
	tr.list(".")
	return tr.b.String()
}

func pxNonrootOwnership(root string) string {
	tr := &pxTranscript{root: root}
	tr.dir("pub", 0o777, 0, 0)
	tr.as("cd pub && echo mine > f && mkdir d && ln -s f l && mkfifo p && chmod 600 f && cat f")
	tr.as("cd pub && echo again >> f && ln f f2 && mv f2 d/f3 && chmod 4750 d/f3")
	for _, name := range []string{"pub/f", "pub/d", "pub/l", "pub/p", "pub/d/f3"} {
		tr.lstat(name)
	}
	tr.content("pub/f")
	tr.as("cd pub && chown 0 f")
	tr.as("cd pub && rm -r d l p f && ls -A")
	tr.list("pub")
	return tr.b.String()
}

func pxNonrootSticky(root string) string {
	tr := &pxTranscript{root: root}
	tr.dir("tmp", 0o1777, 0, 0)
	tr.put("tmp/rootfile", "root", 0o666, 0, 0)
	tr.as("echo mine > tmp/userfile && echo x >> tmp/rootfile")
	tr.as("rm -f tmp/rootfile")
	tr.as("mv tmp/rootfile tmp/stolen")
	tr.as("mv tmp/userfile tmp/renamed")
	tr.as("ln -s x tmp/rootfile")
	tr.do("root removes the user's file", os.Remove(tr.p("tmp/renamed")))
	tr.as("echo again > tmp/userfile && rm tmp/userfile")
	tr.content("tmp/rootfile")
	tr.list("tmp")
	return tr.b.String()
}

// pxNonrootClearsSetID: a write or truncate by anyone without CAP_FSETID
// clears set-user-ID and (with group execute) set-group-ID, or the writer
// could plant code in a set-ID program. Set-group-ID without group execute
// is left out: ext4 also clears it for writers outside the group, but the
// kernel's FUSE code, which decides unless the daemon negotiates
// FUSE_HANDLE_KILLPRIV_V2, keeps it; it makes nothing executable.
func pxNonrootClearsSetID(root string) string {
	tr := &pxTranscript{root: root}
	tr.put("suid", "#!/bin/sh\n", 0o4777, 0, 0)
	tr.put("sgid", "#!/bin/sh\n", 0o2777, 0, 0)
	tr.put("trunc", "#!/bin/sh\n", 0o6777, 0, 0)
	tr.as("echo x >> suid && echo x >> sgid && : > trunc")
	for _, name := range []string{"suid", "sgid", "trunc"} {
		tr.lstat(name)
	}
	tr.put("root-writes", "x", 0o4777, 0, 0)
	tr.do("root appends", os.WriteFile(tr.p("root-writes"), []byte("y"), 0))
	tr.lstat("root-writes")
	return tr.b.String()
}

// pxNonrootSetgidDir: in a set-group-ID directory new files take the
// directory's group, whoever creates them, and new directories inherit
// the bit.
func pxNonrootSetgidDir(root string) string {
	tr := &pxTranscript{root: root}
	tr.dir("sg-root", 0o2777, 0, 0)
	tr.dir("sg-other", 0o2777, 0, 4242)
	tr.dir("plain-other", 0o777, 0, 4242)
	for _, d := range []string{"sg-root", "sg-other", "plain-other"} {
		tr.as(fmt.Sprintf("cd %s && : > f && mkdir d && mkfifo p", d))
		for _, name := range []string{"f", "d", "p"} {
			tr.lstat(d + "/" + name)
		}
	}
	return tr.b.String()
}

func pxChmodChown(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("x"), 0o644))
	for _, m := range []uint32{0o600, 0o755, 0o4755, 0o2755, 0o1777, 0} {
		tr.do(fmt.Sprintf("chmod %#o", m), unix.Chmod(tr.p("f"), m))
		tr.lstat("f")
	}
	tr.do("chmod missing", unix.Chmod(tr.p("missing"), 0o644))
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.do("chmod dir 01777", unix.Chmod(tr.p("d"), 0o1777))
	tr.lstat("d")
	tr.do("symlink l", os.Symlink("f", tr.p("l")))
	tr.do("chmod through symlink", unix.Chmod(tr.p("l"), 0o640))
	tr.lstat("f")
	fd := tr.open("f", unix.O_RDONLY, 0)
	tr.do("fchmod", unix.Fchmod(fd, 0o4711))
	tr.fstat("fstat", fd)

	tr.do("chown", unix.Chown(tr.p("f"), 1234, 5678))
	tr.lstat("f") // chown clears set-user-ID
	tr.do("chown uid only", unix.Chown(tr.p("f"), 4321, -1))
	tr.lstat("f")
	tr.do("fchown gid only", unix.Fchown(fd, -1, 8765))
	tr.fstat("fstat", fd)
	unix.Close(fd)
	tr.do("chmod 02775", unix.Chmod(tr.p("f"), 0o2775))
	tr.do("chown clears group-executable setgid", unix.Chown(tr.p("f"), 0, 0))
	tr.lstat("f")
	tr.do("lchown symlink", unix.Lchown(tr.p("l"), 2222, 3333))
	tr.lstat("l")
	tr.lstat("f")
	tr.do("chown dir", unix.Chown(tr.p("d"), 65534, 65534))
	tr.lstat("d")
	return tr.b.String()
}

func pxUtimens(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("x"), 0o644))
	times := func(name string) {
		var st unix.Stat_t
		if err := unix.Lstat(tr.p(name), &st); err != nil {
			tr.do("times "+name, err)
			return
		}
		recent := func(ts unix.Timespec) string {
			if d := time.Since(time.Unix(ts.Unix())); d > -time.Minute && d < time.Minute {
				return "recent"
			}
			return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
		}
		tr.logf("times %s: atime=%s mtime=%s", name, recent(st.Atim), recent(st.Mtim))
	}
	set := func(step, name string, atime, mtime unix.Timespec, flags int) {
		tr.do(step, unix.UtimesNanoAt(unix.AT_FDCWD, tr.p(name), []unix.Timespec{atime, mtime}, flags))
		times(name)
	}
	t1 := unix.Timespec{Sec: 1000000000, Nsec: 123456789}
	t2 := unix.Timespec{Sec: 1500000000, Nsec: 987654321}
	now, omit := unix.Timespec{Nsec: unix.UTIME_NOW}, unix.Timespec{Nsec: unix.UTIME_OMIT}
	set("explicit", "f", t1, t2, 0)
	set("atime omitted", "f", omit, t1, 0)
	set("mtime omitted", "f", t2, omit, 0)
	set("both omitted", "f", omit, omit, 0)
	set("mtime now", "f", omit, now, 0)
	set("explicit again", "f", t1, t1, 0)
	set("atime now", "f", now, omit, 0)
	set("both now", "f", now, now, 0)
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	set("dir explicit", "d", t1, t2, 0)
	tr.do("symlink l", os.Symlink("f", tr.p("l")))
	set("explicit f", "f", t1, t1, 0)
	set("symlink nofollow", "l", t2, t2, unix.AT_SYMLINK_NOFOLLOW)
	times("f")
	set("through symlink", "l", t2, t1, 0)
	times("f")
	set("missing", "missing", t1, t1, 0)
	return tr.b.String()
}

func pxXattr(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("write f", os.WriteFile(tr.p("f"), []byte("x"), 0o644))
	get := func(name, attr string, size int) {
		buf := make([]byte, size)
		n, err := unix.Getxattr(tr.p(name), attr, buf)
		if err != nil || size == 0 {
			tr.logf("getxattr %s %s [%d]: n=%d %s", name, attr, size, n, tr.errName(err))
			return
		}
		tr.logf("getxattr %s %s [%d]: %q", name, attr, size, buf[:n])
	}
	list := func(name string) {
		n, err := unix.Listxattr(tr.p(name), nil)
		if err != nil {
			tr.do("listxattr size "+name, err)
			return
		}
		buf := make([]byte, n)
		n, err = unix.Listxattr(tr.p(name), buf)
		var names []string
		for _, s := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
			if strings.HasPrefix(s, "user.") {
				names = append(names, s)
			}
		}
		sort.Strings(names)
		tr.logf("listxattr %s: %v %s", name, names, tr.errName(err))
	}
	tr.do("set user.a", unix.Setxattr(tr.p("f"), "user.a", []byte("alpha"), 0))
	tr.do("set user.b", unix.Setxattr(tr.p("f"), "user.b", []byte(""), 0))
	tr.do("set user.c create", unix.Setxattr(tr.p("f"), "user.c", []byte("gamma"), unix.XATTR_CREATE))
	tr.do("set user.a create (exists)", unix.Setxattr(tr.p("f"), "user.a", []byte("x"), unix.XATTR_CREATE))
	tr.do("set user.z replace (missing)", unix.Setxattr(tr.p("f"), "user.z", []byte("x"), unix.XATTR_REPLACE))
	tr.do("set user.c replace", unix.Setxattr(tr.p("f"), "user.c", []byte("GAMMA!"), unix.XATTR_REPLACE))
	get("f", "user.a", 64)
	get("f", "user.a", 0)
	get("f", "user.a", 2)
	get("f", "user.b", 64)
	get("f", "user.c", 64)
	get("f", "user.missing", 64)
	list("f")
	tr.do("remove user.a", unix.Removexattr(tr.p("f"), "user.a"))
	tr.do("remove user.a again", unix.Removexattr(tr.p("f"), "user.a"))
	get("f", "user.a", 64)
	list("f")
	tr.do("set big", unix.Setxattr(tr.p("f"), "user.big", bytes.Repeat([]byte("v"), 3000), 0))
	get("f", "user.big", 4096)
	tr.do("set bad namespace", unix.Setxattr(tr.p("f"), "bogus.a", []byte("x"), 0))
	tr.do("mkdir d", os.Mkdir(tr.p("d"), 0o755))
	tr.do("set on dir", unix.Setxattr(tr.p("d"), "user.d", []byte("dir"), 0))
	get("d", "user.d", 64)
	list("d")
	tr.do("symlink l", os.Symlink("f", tr.p("l")))
	get("l", "user.c", 64) // follows the link
	n, err := unix.Lgetxattr(tr.p("l"), "user.c", make([]byte, 64))
	tr.logf("lgetxattr symlink: n=%d %s", n, tr.errName(err))
	tr.do("lsetxattr symlink", unix.Lsetxattr(tr.p("l"), "user.l", []byte("x"), 0))
	get("missing", "user.a", 64)
	return tr.b.String()
}

func pxMknod(root string) string {
	tr := &pxTranscript{root: root}
	tr.do("mkfifo", unix.Mkfifo(tr.p("fifo"), 0o640))
	tr.lstat("fifo")
	tr.do("mkfifo existing", unix.Mkfifo(tr.p("fifo"), 0o640))
	// The kernel opens a FIFO itself, so data never reaches the daemon.
	fd := tr.open("fifo", unix.O_RDWR, 0)
	tr.write("write fifo", fd, "through the pipe", -1)
	tr.read("read fifo", fd, 64, -1)
	unix.Close(fd)
	tr.lstat("fifo")
	tr.do("mknod regular", unix.Mknod(tr.p("reg"), unix.S_IFREG|0o600, 0))
	tr.lstat("reg")
	tr.do("mknod socket", unix.Mknod(tr.p("sock"), unix.S_IFSOCK|0o600, 0))
	tr.lstat("sock")
	// Device nodes: only their identity is compared; the mount is nodev.
	for _, dev := range [][2]uint32{{1, 3}, {8, 300}, {259, 70000}} {
		name := fmt.Sprintf("chr-%d-%d", dev[0], dev[1])
		tr.do("mknod "+name, unix.Mknod(tr.p(name), unix.S_IFCHR|0o600, int(unix.Mkdev(dev[0], dev[1]))))
		var st unix.Stat_t
		err := unix.Lstat(tr.p(name), &st)
		tr.logf("lstat %s: mode=%#o rdev=%d:%d %s", name, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), tr.errName(err))
	}
	tr.list(".")
	return tr.b.String()
}

// pxTraversable opens dir and its parents below the temporary directory
// to everyone (t.TempDir creates them 0700).
func pxTraversable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPOSIX_StatfsReportsBackingFileSystem compares the mount's statfs
// with the backing directory's: sizes and counts must be those of the
// file system the data lives on, so df and free-space checks in pods see
// real numbers.
func TestPOSIX_StatfsReportsBackingFileSystem(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		var back, mnt unix.Statfs_t
		if err := unix.Statfs(tv.src, &back); err != nil {
			t.Fatal(err)
		}
		if err := unix.Statfs(tv.mnt, &mnt); err != nil {
			t.Fatal(err)
		}
		const fuseSuperMagic = 0x65735546
		if mnt.Type != fuseSuperMagic {
			t.Errorf("f_type = %#x, want FUSE's %#x", mnt.Type, fuseSuperMagic)
		}
		if mnt.Bsize != back.Bsize || mnt.Frsize != back.Frsize || mnt.Namelen != back.Namelen {
			t.Errorf("bsize/frsize/namelen = %d/%d/%d, backing %d/%d/%d",
				mnt.Bsize, mnt.Frsize, mnt.Namelen, back.Bsize, back.Frsize, back.Namelen)
		}
		// Free counts move with every other writer on the machine.
		within := func(name string, got, want uint64) {
			tol := want / 100
			if got+tol < want || got > want+tol {
				t.Errorf("%s = %d, backing %d (tolerance %d)", name, got, want, tol)
			}
		}
		within("blocks", mnt.Blocks, back.Blocks)
		within("bfree", mnt.Bfree, back.Bfree)
		within("bavail", mnt.Bavail, back.Bavail)
		within("files", mnt.Files, back.Files)
		within("ffree", mnt.Ffree, back.Ffree)
	})
}
