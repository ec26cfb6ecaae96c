package datapath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
)

// TestRule_N3_NinepDirectoryFsyncIsABarrier: fsync(2) of a directory on a
// 9P volume works (a database fsyncs its directory after a create or
// rename), and on an exclusive volume, whose creates and attribute changes
// go in the background, the entries made beneath it are on the server
// when it returns.
func TestRule_N3_NinepDirectoryFsyncIsABarrier(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		for _, mode := range []Mode{Shared, WriteThrough, Exclusive} {
			t.Run(string(mode), func(t *testing.T) {
				m := mountNinep(t, srv, Options{Mode: mode}, 0)
				dir := filepath.Join(m.mnt, string(mode))
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"a", "b", "c"} {
					writeFile(t, filepath.Join(dir, name+".tmp"), name)
					if err := os.Chmod(filepath.Join(dir, name+".tmp"), 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
						t.Fatal(err)
					}
				}
				d := openT(t, dir, os.O_RDONLY)
				defer d.Close()
				if err := d.Sync(); err != nil {
					t.Fatalf("fsync of the directory: %v", err)
				}
				for _, name := range []string{"a", "b", "c"} {
					st, err := os.Lstat(filepath.Join(srv.Dir, string(mode), name))
					if err != nil {
						t.Errorf("%s on the server after fsync of its directory: %v", name, err)
						continue
					}
					if st.Mode().Perm() != 0o600 {
						t.Errorf("%s: mode %o on the server after fsync of its directory, want 600", name, st.Mode().Perm())
					}
				}
				root := openT(t, m.mnt, os.O_RDONLY)
				defer root.Close()
				if err := root.Sync(); err != nil {
					t.Fatalf("fsync of the volume's root: %v", err)
				}
			})
		}
	})
}
