package ninep_test

import (
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want ninep.Config // zero: an error
	}{
		{"9p://127.0.0.1:5640/srv/vol", ninep.Config{Server: "127.0.0.1:5640", Export: "/srv/vol"}},
		{"9p://127.0.0.1:5640", ninep.Config{Server: "127.0.0.1:5640", Export: "/"}},
		{"9p://fs.example:564/?msize=1052672", ninep.Config{Server: "fs.example:564", Export: "/", Msize: 1052672}},
		{"9p://[::1]:5640/x", ninep.Config{Server: "[::1]:5640", Export: "/x"}},
		{"9p+unix:///run/gofer.sock?export=/vol", ninep.Config{Server: "/run/gofer.sock", Export: "/vol"}},
		{"9p+unix:///run/gofer.sock", ninep.Config{Server: "/run/gofer.sock", Export: "/"}},
		{"9p://127.0.0.1/srv", ninep.Config{}},             // no port
		{"9p://127.0.0.1:5640/srv/../etc", ninep.Config{}}, // not clean
		{"9p://127.0.0.1:5640/x?msize=12", ninep.Config{}}, // msize too small
		{"9p://127.0.0.1:5640/x?msize=big", ninep.Config{}},
		{"9p://127.0.0.1:5640/x?mode=rw", ninep.Config{}},
		{"9p://127.0.0.1:5640/x?export=/y", ninep.Config{}},
		{"9p+unix://relative.sock", ninep.Config{}},
		{"nfs://host/x", ninep.Config{}},
		{"/srv/data", ninep.Config{}},
	} {
		got, err := ninep.ParseSource(tc.src)
		if tc.want == (ninep.Config{}) {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want an error", tc.src, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.src, got, err, tc.want)
		}
	}
}
