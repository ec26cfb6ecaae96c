package datapath

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// TestNinepSetIDBitsThroughTheMount: on a 9P volume, a user's chmod u+s,
// g+s and +t of their own file and their create of a set-user-ID file
// reach the server with the user as owner; a root-owned set-ID file that
// another user appends to loses its set-ID bits (the kernel's rule, which
// reaches the server as a chmod), in shared and exclusive mode.
func TestNinepSetIDBitsThroughTheMount(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("needs perl (hack/install-deps.sh installs it): sh cannot create a file with set-ID bits in its mode")
	}
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		for _, mode := range []Mode{Shared, Exclusive} {
			t.Run(string(mode), func(t *testing.T) {
				m := mountNinep(t, srv, Options{Mode: mode}, 0)
				pxTraversable(t, filepath.Dir(m.mnt))
				dir := filepath.Join(m.mnt, string(mode))
				if err := os.Mkdir(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				root := filepath.Join(dir, "root-suid")
				if err := os.WriteFile(root, []byte("#!/bin/sh\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(root, 0o4777); err != nil {
					t.Fatal(err)
				}
				asNobody(t, dir, `umask 022 && touch own && chmod 4755 own && chmod g+s own && chmod +t own`)
				asNobody(t, dir, perl+` -MFcntl -e 'sysopen(F, "made", O_CREAT|O_EXCL|O_WRONLY, 04755) or die $!'`)
				asNobody(t, dir, `echo x >> root-suid`)
				if err := m.vol.Sync(); err != nil {
					t.Fatal(err)
				}
				for name, want := range map[string]struct{ mode, uid uint32 }{
					"own":       {0o7755, nobody},
					"made":      {0o4755, nobody},
					"root-suid": {0o777, 0},
				} {
					var st unix.Stat_t
					if err := unix.Lstat(filepath.Join(srv.Dir, string(mode), name), &st); err != nil {
						t.Fatal(err)
					}
					if st.Mode&07777 != want.mode || st.Uid != want.uid {
						t.Errorf("%s: mode %#o uid %d on the server, want %#o uid %d", name, st.Mode&07777, st.Uid, want.mode, want.uid)
					}
				}
			})
		}
	})
}

// asNobody runs script with sh in dir as nobody, failing t if it fails.
// The shell changes to dir itself: the child must not touch the mount
// between fork and exec (see pxTranscript.as).
func asNobody(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `cd "$DIR" || exit 125; `+script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DIR=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody %q: %v %s", script, err, out)
	}
}
