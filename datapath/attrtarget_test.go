package datapath

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
)

// closeRecorder is a remote file that only records its Close.
type closeRecorder struct {
	backend.File
	closed atomic.Bool
}

func (f *closeRecorder) Close() error {
	f.closed.Store(true)
	return nil
}

// A request without a handle (chmod, chown, utimes, stat or xattr by name)
// may borrow an open handle's file while that handle's RELEASE arrives:
// close(2) does not wait for RELEASE. The file must stay open until the
// request is done with it; closing it under the request made a chmod fail
// with EBADF, and could have applied it to whatever file reused the
// descriptor number.
func TestReleaseWaitsForBorrowedFile(t *testing.T) {
	n := &node{vol: &Volume{}}
	f := &closeRecorder{}
	h := &handle{node: n, f: f, host: -1}
	n.addHandle(h)

	borrowed, done := n.borrowOpenFile()
	if borrowed != f {
		t.Fatalf("borrowOpenFile = %v, want the handle's file", borrowed)
	}
	released := make(chan struct{})
	go func() {
		h.Release(context.Background())
		close(released)
	}()
	select {
	case <-released:
		t.Fatal("Release closed a file a request was still using")
	case <-time.After(50 * time.Millisecond):
	}
	if f.closed.Load() {
		t.Fatal("the borrowed file was closed")
	}
	done()
	<-released
	if !f.closed.Load() {
		t.Fatal("Release did not close the file once the request was done")
	}
	if again, _ := n.borrowOpenFile(); again != nil {
		t.Fatal("a released handle's file was lent out")
	}
}
