package datapath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// TestRule_N1_NinepOpenDirectoryStat: on a shared 9P volume, fstat of an
// open directory reads the remote every time (a subdirectory made on the
// export shows in its link count at once). Once the volume removed the
// directory, fstat answers with the attributes last read and no links,
// without a request: the 9P remote has no open fid of a directory, and
// the name it would ask by is gone.
func TestRule_N1_NinepOpenDirectoryStat(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		m := mountNinep(t, srv, Options{Mode: Shared}, 0)
		d := filepath.Join(m.mnt, "d")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		fd := openDirFd(t, d)
		var before, after unix.Stat_t
		if err := unix.Fstat(fd, &before); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(srv.Dir, "d", "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fstat(fd, &after); err != nil {
			t.Fatal(err)
		}
		if after.Nlink != before.Nlink+1 {
			t.Errorf("fstat after a subdirectory was made on the export: nlink %d, want %d", after.Nlink, before.Nlink+1)
		}

		if err := os.Remove(filepath.Join(d, "sub")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
		reqs := m.fsys.Requests().Snapshot()
		var gone unix.Stat_t
		if err := unix.Fstat(fd, &gone); err != nil {
			t.Fatalf("fstat of a removed directory: %v", err)
		}
		if gone.Mode&unix.S_IFMT != unix.S_IFDIR || gone.Nlink != 0 || gone.Ino != before.Ino {
			t.Errorf("fstat of a removed directory: mode %#o nlink %d ino %d; want a directory, nlink 0, ino %d",
				gone.Mode, gone.Nlink, gone.Ino, before.Ino)
		}
		now := m.fsys.Requests().Snapshot()
		for _, req := range []string{"Twalk", "Twalkgetattr", "Tgetattr"} {
			if now[req] != reqs[req] {
				t.Errorf("fstat of a removed directory sent %d %s", now[req]-reqs[req], req)
			}
		}
	})
}
