package ninep_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// setIDModes are the modes the set-ID tests make and change files to.
var setIDModes = []uint32{0o4755, 0o2755, 0o1777, 0o6711}

// forEachServerAndMode runs fn against each server, dialed both shared
// (every change sent at once) and exclusive (changes deferred, rule N3).
func forEachServerAndMode(t *testing.T, fn func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS)) {
	for _, exclusive := range []bool{false, true} {
		name := "shared"
		if exclusive {
			name = "exclusive"
		}
		t.Run(name, func(t *testing.T) {
			forEachServerWith(t, func(cfg *ninep.Config) {
				cfg.Exclusive = exclusive
				cfg.Timeout = 2 * time.Second
			}, fn)
		})
	}
}

// serverMode returns the mode bits and owner of name in the export.
func serverMode(t *testing.T, srv *ninetest.Server, name string) (mode, uid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(srv.Dir, name), &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 07777, st.Uid
}

// checkMode checks name's mode bits on the server and through the FS.
func checkMode(t *testing.T, srv *ninetest.Server, fsys *ninep.FS, name string, want uint32) {
	t.Helper()
	if got, _ := serverMode(t, srv, name); got != want {
		t.Errorf("%s: mode %#o on the server, want %#o", name, got, want)
	}
	a, err := fsys.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Mode & 07777; got != want {
		t.Errorf("%s: Lstat reports mode %#o, want %#o", name, got, want)
	}
}

// TestSetIDBitsRoundTrip: set-user-ID, set-group-ID and sticky bits
// travel both ways: a create and a chmod (by name, through an open file,
// of a directory) make them on the server, and stat reports them.
func TestSetIDBitsRoundTrip(t *testing.T) {
	forEachServerAndMode(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		want := map[string]uint32{}
		for _, perm := range setIDModes {
			name := fmt.Sprintf("new%o", perm)
			f, err := fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, perm)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			want[name] = perm
		}
		f, err := fsys.Open("open", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, perm := range setIDModes {
			if err := f.Chmod(perm); err != nil {
				t.Fatalf("fchmod %#o: %v", perm, err)
			}
			if err := f.Sync(false); err != nil {
				t.Fatal(err)
			}
			checkMode(t, srv, fsys, "open", perm)
		}
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"byname", "d"} {
			if name == "byname" {
				g, err := fsys.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				g.Close()
			}
			for _, perm := range setIDModes {
				if err := fsys.Chmod(name, perm); err != nil {
					t.Fatalf("chmod %s %#o: %v", name, perm, err)
				}
				if err := fsys.Settle(); err != nil {
					t.Fatal(err)
				}
				checkMode(t, srv, fsys, name, perm)
			}
		}
		if err := fsys.Mkdir("sticky", 0o1777); err != nil {
			t.Fatal(err)
		}
		want["sticky"] = 0o1777
		if err := fsys.Settle(); err != nil {
			t.Fatal(err)
		}
		for name, perm := range want {
			checkMode(t, srv, fsys, name, perm)
		}
	})
}

// TestRule_N3_SetIDBitsAfterTheOwnerChange: a mode set after a chown keeps
// its set-ID bits, deferred or not, and a chown after the mode clears them
// as on Linux: the server applies the changes in the order they were
// made, never a chmod before the chown made ahead of it.
func TestRule_N3_SetIDBitsAfterTheOwnerChange(t *testing.T) {
	forEachServerAndMode(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		for _, c := range []struct {
			name      string
			chownLast bool
			want      uint32
		}{
			{"chown-then-chmod", false, 0o6755},
			{"chmod-then-chown", true, 0o755},
		} {
			f, err := fsys.Open(c.name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			steps := []func() error{
				func() error { return f.Chown(1234, 1234) },
				func() error { return f.Chmod(0o6755) },
			}
			if c.chownLast {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, step := range steps {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(false); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if mode, uid := serverMode(t, srv, c.name); mode != c.want || uid != 1234 {
				t.Errorf("%s: mode %#o uid %d on the server, want %#o uid 1234", c.name, mode, uid, c.want)
			}
		}
	})
}

// TestRule_N3_ExclusiveNoSetIDBitsAfterARefusedOwnerChange: when the
// server refused a deferred chown, a set-ID chmod queued after it is not
// sent (the file would be set-ID with the daemon's uid, root) and fails
// the barrier; a chmod without set-ID bits still goes through.
func TestRule_N3_ExclusiveNoSetIDBitsAfterARefusedOwnerChange(t *testing.T) {
	forEachExclusive(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ninep.MarkOwnerRefused(f)
		for _, perm := range []uint32{0o4755, 0o2755} {
			if err := f.Chmod(perm); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(false); !errors.Is(err, syscall.EPERM) {
				t.Errorf("fsync after a set-ID chmod %#o that follows a refused chown: %v, want EPERM", perm, err)
			}
		}
		if mode, _ := serverMode(t, srv, "f"); mode != 0o644 {
			t.Errorf("mode %#o on the server, want 644 (no set-ID bits)", mode)
		}
		if err := fsys.Settle(); !errors.Is(err, syscall.EPERM) {
			t.Errorf("Settle: %v, want the refused set-ID chmod (EPERM)", err)
		}
		if err := f.Chmod(0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(false); err != nil {
			t.Fatal(err)
		}
		if mode, _ := serverMode(t, srv, "f"); mode != 0o600 {
			t.Errorf("mode %#o on the server after chmod 600, want 600", mode)
		}
	})
}
