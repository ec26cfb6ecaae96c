package local

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// TestLocal_ReadvAtFillsBuffersInOrder: more buffers than one preadv(2)
// takes, and a read that the end of the file cuts short.
func TestLocal_ReadvAtFillsBuffersInOrder(t *testing.T) {
	r, base := fixture(t)
	const page = 4096
	data := make([]byte, (iovMax+300)*page+100)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(filepath.Join(base, "vol", "big"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := r.Open("big", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bufs := make([][]byte, iovMax+301)
	for i := range bufs {
		bufs[i] = make([]byte, page)
	}
	n, err := f.(backend.VectorReader).ReadvAt(bufs, page)
	if want := len(data) - page; n != want || err != nil {
		t.Fatalf("ReadvAt = %d, %v; want %d, nil", n, err, want)
	}
	if got := bytes.Join(bufs, nil)[:n]; !bytes.Equal(got, data[page:]) {
		t.Error("ReadvAt put the bytes in the wrong places")
	}
}
