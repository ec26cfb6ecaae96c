package datapath

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"golang.org/x/sys/unix"
)

// The volume's security boundary: nothing a pod does through the mount,
// and nothing planted or raced in the backing directory, lets the daemon
// (which runs as root) reach a file outside the volume directory, or act
// on a file with more rights than the caller has.

// nameLog is a backend.FS that records every name the data path passes
// to the remote, so that a test can show what the daemon asked for.
type nameLog struct {
	backend.FS
	mu    sync.Mutex
	names []string
}

func (l *nameLog) add(names ...string) {
	l.mu.Lock()
	l.names = append(l.names, names...)
	l.mu.Unlock()
}

// all returns the recorded names so far.
func (l *nameLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names...)
}

// escaping returns the recorded names that are absolute or climb with
// "..": a correct data path builds names from lookups only, so it never
// produces one.
func (l *nameLog) escaping() []string {
	var bad []string
	for _, n := range l.all() {
		if strings.HasPrefix(n, "/") || n == ".." || strings.HasPrefix(n, "../") ||
			strings.HasSuffix(n, "/..") || strings.Contains(n, "/../") {
			bad = append(bad, n)
		}
	}
	return bad
}

func (l *nameLog) Lstat(n string) (backend.Attr, error) { l.add(n); return l.FS.Lstat(n) }
func (l *nameLog) Open(n string, flags int, perm uint32) (backend.File, error) {
	l.add(n)
	return l.FS.Open(n, flags, perm)
}
func (l *nameLog) Mkdir(n string, perm uint32) error { l.add(n); return l.FS.Mkdir(n, perm) }
func (l *nameLog) Mknod(n string, mode uint32, dev uint64) error {
	l.add(n)
	return l.FS.Mknod(n, mode, dev)
}
func (l *nameLog) Symlink(target, n string) error    { l.add(n); return l.FS.Symlink(target, n) }
func (l *nameLog) Readlink(n string) (string, error) { l.add(n); return l.FS.Readlink(n) }
func (l *nameLog) Link(o, n string) error            { l.add(o, n); return l.FS.Link(o, n) }
func (l *nameLog) Unlink(n string) error             { l.add(n); return l.FS.Unlink(n) }
func (l *nameLog) Rmdir(n string) error              { l.add(n); return l.FS.Rmdir(n) }
func (l *nameLog) Rename(o, n string, flags uint32) error {
	l.add(o, n)
	return l.FS.Rename(o, n, flags)
}
func (l *nameLog) Chmod(n string, perm uint32) error { l.add(n); return l.FS.Chmod(n, perm) }
func (l *nameLog) Chown(n string, uid, gid int) error {
	l.add(n)
	return l.FS.Chown(n, uid, gid)
}
func (l *nameLog) Utimens(n string, a, m *unix.Timespec) error {
	l.add(n)
	return l.FS.Utimens(n, a, m)
}
func (l *nameLog) Truncate(n string, size int64) error { l.add(n); return l.FS.Truncate(n, size) }
func (l *nameLog) ReadDir(n string) ([]backend.DirEntry, error) {
	l.add(n)
	return l.FS.ReadDir(n)
}
func (l *nameLog) Getxattr(n, attr string, dest []byte) (int, error) {
	l.add(n)
	return l.FS.Getxattr(n, attr, dest)
}
func (l *nameLog) Setxattr(n, attr string, data []byte, flags int) error {
	l.add(n)
	return l.FS.Setxattr(n, attr, data, flags)
}
func (l *nameLog) Listxattr(n string, dest []byte) (int, error) {
	l.add(n)
	return l.FS.Listxattr(n, dest)
}
func (l *nameLog) Removexattr(n, attr string) error { l.add(n); return l.FS.Removexattr(n, attr) }

// mountLogged mounts a volume whose remote calls are recorded, and moves
// its backing directory to a fresh directory, so that the backing
// directory and the mount point have different parents: a relative
// symlink climbing out of the volume then names one file next to the
// backing directory and a different, absent, one next to the mount. The
// remote keeps working after the move because it holds a descriptor of
// the directory. It returns the volume, the log and the backing
// directory's new parent.
func mountLogged(t *testing.T, opts Options) (*testVolume, *nameLog, string) {
	t.Helper()
	outside := t.TempDir() // before the mount: removed after the unmount
	log := &nameLog{}
	tv := mountTestFS(t, opts, func(fs backend.FS) backend.FS { log.FS = fs; return log })
	detachIfUnsyncable(t, tv)
	src := filepath.Join(outside, "remote")
	if err := os.Rename(tv.src, src); err != nil {
		t.Fatal(err)
	}
	tv.src = src
	return tv, log, outside
}

// detachIfUnsyncable keeps a failing test from leaving its mount behind:
// Unmount refuses to drop a volume it cannot sync, so when the volume
// cannot be synced at the end of the test, this reports it and detaches
// the mount, and the harness's Unmount finds the session ended.
func detachIfUnsyncable(t *testing.T, tv *testVolume) {
	t.Cleanup(func() {
		err := tv.vol.Sync()
		if err == nil {
			return
		}
		t.Errorf("volume cannot be synced, detaching the mount: %v", err)
		if err := unix.Unmount(tv.mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("detach: %v", err)
			return
		}
		ended := make(chan struct{})
		go func() { tv.vol.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Errorf("session did not end after detaching %s", tv.mnt)
		}
	})
}

func checkNoEscapingNames(t *testing.T, log *nameLog) {
	t.Helper()
	if bad := log.escaping(); len(bad) > 0 {
		t.Errorf("the daemon passed names outside the volume to the remote: %q", bad)
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// TestSecurity_PlantedSymlinksResolveInCallersNamespaceOnly plants
// symlinks pointing out of the volume in the backing directory. The
// mount shows their text; following them is the kernel's job, done in the
// caller's namespace, where "../secret" next to the mount does not exist.
// The daemon never follows them, and never sees a name outside the volume.
func TestSecurity_PlantedSymlinksResolveInCallersNamespaceOnly(t *testing.T) {
	for _, v := range allVariants() {
		t.Run(v.name, func(t *testing.T) {
			tv, log, outside := mountLogged(t, v.opts)
			const secret = "outside the volume"
			writeFile(t, filepath.Join(outside, "secret"), secret)
			if _, err := os.Lstat(filepath.Join(filepath.Dir(tv.mnt), "secret")); !os.IsNotExist(err) {
				t.Fatalf("the mount's view of ../secret must not exist: %v", err)
			}
			if err := os.Mkdir(tv.remote("sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			links := map[string]string{"abs": "/etc", "rel": "../secret", "sub/deep": "../../secret"}
			for name, target := range links {
				if err := os.Symlink(target, tv.remote(name)); err != nil {
					t.Fatal(err)
				}
			}
			for name, target := range links {
				if got, err := os.Readlink(tv.path(name)); err != nil || got != target {
					t.Errorf("readlink %s = %q, %v; want %q", name, got, err, target)
				}
			}
			for _, name := range []string{"rel", "sub/deep"} {
				_, err := os.ReadFile(tv.path(name))
				wantErrno(t, "read "+name, err, syscall.ENOENT)
				_, err = os.Stat(tv.path(name))
				wantErrno(t, "stat "+name, err, syscall.ENOENT)
				_, err = os.OpenFile(tv.path(name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
				wantErrno(t, "open O_NOFOLLOW "+name, err, syscall.ELOOP)
				_, err = os.OpenFile(tv.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				wantErrno(t, "create O_EXCL "+name, err, syscall.EEXIST)
			}
			// The absolute link leads to the caller's own /etc, not to
			// anything the daemon serves.
			etc, err1 := os.Stat("/etc")
			viaLink, err2 := os.Stat(tv.path("abs"))
			if err1 != nil || err2 != nil || !os.SameFile(etc, viaLink) {
				t.Errorf("abs does not resolve to the caller's /etc: %v %v", err1, err2)
			}
			if got := readFile(t, filepath.Join(outside, "secret")); got != secret {
				t.Errorf("outside file changed: %q", got)
			}
			checkNoEscapingNames(t, log)
			for _, n := range log.all() {
				if strings.Contains(n, "secret") || strings.Contains(n, "etc") {
					t.Errorf("the daemon looked up %q", n)
				}
			}
		})
	}
}

// TestSecurity_RenameRaceNeverEscapesVolume swaps a directory of the
// volume with a symlink to an outside directory, as fast as it can, while
// files are read, stat'ed and created beneath it through the mount and
// through the local remote directly. The symlink is relative and the
// mount and backing directory have different parents, so the outside
// file can only be reached if the daemon (or the remote) follows it.
func TestSecurity_RenameRaceNeverEscapesVolume(t *testing.T) {
	const (
		maxIterations = 2000
		maxDuration   = 2 * time.Second
		outsideData   = "OUTSIDE SECRET"
	)
	for _, v := range allVariants() {
		t.Run(v.name, func(t *testing.T) {
			tv, log, outside := mountLogged(t, v.opts)
			outDir := filepath.Join(outside, "outside")
			if err := os.Mkdir(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(outDir, "secret"), outsideData)
			outSecret, err := os.Stat(filepath.Join(outDir, "secret"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(tv.remote("dir"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, tv.remote("dir/secret"), "inside")
			if err := os.Symlink("../outside", tv.remote("dir.link")); err != nil {
				t.Fatal(err)
			}
			direct, err := local.Open(tv.src)
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close()

			stop := make(chan struct{})
			swapErr := make(chan error, 1)
			go func() { swapErr <- swapDirWithSymlink(tv.src, stop) }()

			var reads, leaks int
			leaked := func(what string, data []byte) {
				if string(data) == outsideData {
					leaks++
					t.Errorf("%s returned the outside file's content", what)
				}
			}
			deadline := time.Now().Add(maxDuration)
			for i := 0; i < maxIterations && time.Now().Before(deadline) && leaks == 0; i++ {
				if b, err := os.ReadFile(tv.path("dir/secret")); err == nil {
					reads++
					leaked("read through the mount", b)
				}
				if st, err := os.Stat(tv.path("dir/secret")); err == nil && os.SameFile(st, outSecret) {
					t.Errorf("stat through the mount reached the outside file")
				}
				if f, err := os.OpenFile(tv.path("dir/new"), os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
					f.Close()
					os.Remove(tv.path("dir/new"))
				}
				if f, err := direct.Open("dir/secret", unix.O_RDONLY, 0); err == nil {
					b := make([]byte, 64)
					n, _ := f.ReadAt(b, 0)
					f.Close()
					leaked("read through the remote", b[:max(n, 0)])
				}
				if a, err := direct.Lstat("dir/secret"); err == nil && a.Ino == outSecret.Sys().(*syscall.Stat_t).Ino {
					t.Errorf("lstat through the remote reached the outside file")
				}
				if f, err := direct.Open("dir/new2", unix.O_WRONLY|unix.O_CREAT, 0o644); err == nil {
					f.Close()
					direct.Unlink("dir/new2")
				}
				if es, _ := os.ReadDir(outDir); len(es) != 1 {
					leaks++
					t.Errorf("a file was created in the outside directory: %v", es)
				}
			}
			close(stop)
			if err := <-swapErr; err != nil {
				t.Errorf("swapping: %v", err)
			}
			t.Logf("%d successful reads", reads)
			if got := readFile(t, filepath.Join(outDir, "secret")); got != outsideData {
				t.Errorf("outside file changed: %q", got)
			}
			checkNoEscapingNames(t, log)
		})
	}
}

// swapDirWithSymlink replaces src/dir by the symlink src/dir.link and back
// until stop is closed, alternating an atomic exchange with the
// rename-away, plant, remove, rename-back sequence an attacker without
// renameat2 would use. It leaves src/dir a directory.
func swapDirWithSymlink(src string, stop <-chan struct{}) error {
	dir, link, away := filepath.Join(src, "dir"), filepath.Join(src, "dir.link"), filepath.Join(src, "dir.away")
	exchange := func() error { return unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE) }
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		steps := []func() error{
			exchange, exchange,
			func() error { return os.Rename(dir, away) },
			func() error { return os.Symlink("../outside", dir) },
			func() error { return os.Remove(dir) },
			func() error { return os.Rename(away, dir) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
}

// TestSecurity_HardLinkFromOutsideIsAFileOfTheVolume: someone with access
// to the node links a file from outside into the backing directory. A
// hard link is not a pointer to a place: both names are the same inode,
// so the file is inside the volume by definition, exactly like a file
// created there. The mount shows a regular file with two links and its
// content; the other name's directory stays out of reach.
func TestSecurity_HardLinkFromOutsideIsAFileOfTheVolume(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		outside := filepath.Join(t.TempDir(), "outside-file")
		writeFile(t, outside, "linked in")
		if err := os.Link(outside, tv.remote("hl")); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(tv.path("hl"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 2 {
			t.Errorf("hl: mode %#o nlink %d, want a regular file with nlink 2", st.Mode, st.Nlink)
		}
		if got := readFile(t, tv.path("hl")); got != "linked in" {
			t.Errorf("hl = %q", got)
		}
		_, err := os.Stat(tv.mnt + "/hl/..") // not filepath.Join, which cleans ".." away
		wantErrno(t, "stat hl/..", err, syscall.ENOTDIR)
		es, err := os.ReadDir(tv.mnt)
		if err != nil || len(es) != 1 || es[0].Name() != "hl" {
			t.Errorf("volume lists %v, %v; want only hl", es, err)
		}
	})
}

// TestSecurity_CreateNeverTakesOverAnExistingFile: the kernel sends CREATE
// when its dentry says the name is absent, having checked only the
// parent directory's permissions. The remote may disagree: in exclusive
// mode when the file appeared behind the mount (the kernel cached the
// negative lookup), in shared mode when another writer won a race with
// the kernel's lookup. The daemon is root, so were it to open the existing
// file, an unprivileged caller would write to (and, through the chown of
// a new file, be given) a file it may not even read.
func TestSecurity_CreateNeverTakesOverAnExistingFile(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		detachIfUnsyncable(t, tv)
		pxTraversable(t, filepath.Dir(tv.mnt))
		if err := os.Chmod(tv.mnt, 0o777); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(tv.path("x")); !os.IsNotExist(err) {
			t.Fatalf("lstat x: %v", err)
		}
		if err := os.WriteFile(tv.remote("x"), []byte("root only"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The shell gets the path as an argument: the child must not touch
		// the mount between fork and exec (see pxTranscript.as).
		cmd := exec.Command("/bin/sh", "-c", `echo appended >> "$1"`, "sh", tv.path("x"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		t.Logf("unprivileged append: %v %q", err, out)
		var st unix.Stat_t
		if err := unix.Lstat(tv.remote("x"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o600 {
			t.Errorf("remote x is now mode %#o owned by %d:%d, want 0600 root:root", st.Mode&0o7777, st.Uid, st.Gid)
		}
		if got := readFile(t, tv.remote("x")); got != "root only" {
			t.Errorf("remote x = %q, want it untouched", got)
		}
	})
}

// TestSecurity_CreateRaceNeverTakesOverAnotherWritersFile is the shared
// mode form of the test above, where nothing is cached and the kernel's
// lookup can only be beaten by a race: root keeps creating a 0600 file
// behind the mount (another writer of the remote) and removing it, while
// an unprivileged user keeps appending to that name through the mount.
// Root's file must stay root's. Bounded by the user's loop (about two
// seconds here); no sleeps.
func TestSecurity_CreateRaceNeverTakesOverAnotherWritersFile(t *testing.T) {
	forEachVariant(t, func(t *testing.T, tv *testVolume) {
		detachIfUnsyncable(t, tv)
		pxTraversable(t, filepath.Dir(tv.mnt))
		if err := os.Chmod(tv.mnt, 0o777); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		result := make(chan [2]int)
		go func() {
			var rounds, takeovers int
			defer func() { result <- [2]int{rounds, takeovers} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fd, err := unix.Open(tv.remote("x"), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
				if err != nil {
					os.Remove(tv.remote("x")) // the user's own file
					continue
				}
				rounds++
				// The name exists while root looks at its file: that is
				// the window in which the user's CREATE may arrive.
				for i := 0; i < 50; i++ {
					var st unix.Stat_t
					if unix.Fstat(fd, &st) == nil && st.Uid != 0 {
						takeovers++
						break
					}
				}
				os.Remove(tv.remote("x"))
				unix.Close(fd)
			}
		}()
		// The path is an argument: the child must not touch the mount
		// between fork and exec (see pxTranscript.as).
		cmd := exec.Command("/bin/sh", "-c",
			`i=0; while [ $i -lt 500 ]; do echo u 2>/dev/null >> "$1"; i=$((i+1)); done`, "sh", tv.path("x"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		close(stop)
		r := <-result
		if err != nil {
			t.Errorf("user loop: %v %q", err, out)
		}
		t.Logf("%d files created by root", r[0])
		if r[1] > 0 {
			t.Errorf("%d files created by root were given to the unprivileged user", r[1])
		}
	}, Shared)
}
