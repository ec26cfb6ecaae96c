package ninep_test

import (
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// TestRequestsCountsEachMessage: a create, a 3-chunk write and a close
// show up as one Tlcreate, three Twrites and one Tclunk for the file, so
// the counts can be trusted to measure round trips.
func TestRequestsCountsEachMessage(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server, fsys *ninep.FS) {
		before := fsys.Requests().Snapshot()
		f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		// Each write fits in one request with any server's msize.
		chunk := 4096
		for i := range 3 {
			if _, err := f.WriteAt(make([]byte, chunk), int64(i*chunk)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(false); err != nil { // waits for the writes' replies
			t.Fatal(err)
		}
		after := fsys.Requests().Snapshot()
		// gVisor-dialect servers (the gofer) get Tucreate instead.
		after["Tlcreate"] += after["Tucreate"]
		for name, want := range map[string]uint64{"Tlcreate": 1, "Twrite": 3, "Tfsync": 1} {
			if got := after[name] - before[name]; got != want {
				t.Errorf("%s sent %d times, want %d (all: %v)", name, got, want, after)
			}
		}
		f.Close()
	})
}
