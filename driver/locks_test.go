package driver

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
)

// A second operation on a volume while one is in flight gets Aborted; so
// does a retry after the first one's RPC timed out, until it finishes.
func TestOperationInFlightIsAborted(t *testing.T) {
	e := newTestEnv(t)
	staging := filepath.Join(e.dir, "staging")
	e.mkvol(t, "vol-1")
	waiting, release := e.fuse.holdMounts()

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := e.ns.NodeStageVolume(ctx, stageReq("vol-1", staging, nil))
		first <- err
	}()
	<-waiting
	_, err := e.ns.NodeStageVolume(context.Background(), stageReq("vol-1", staging, nil))
	wantStatus(t, err, codes.Aborted, "an operation on volume vol-1 is already in progress")
	_, err = e.ns.NodePublishVolume(context.Background(), publishReq("vol-1", staging, filepath.Join(e.dir, "pod"), false))
	wantStatus(t, err, codes.Aborted)

	cancel() // the CO gives up on the first call; the mount goes on
	wantStatus(t, <-first, codes.Canceled)
	_, err = e.ns.NodeStageVolume(context.Background(), stageReq("vol-1", staging, nil))
	wantStatus(t, err, codes.Aborted)

	release()
	e.d.ops.Wait()
	if _, err := e.ns.NodeStageVolume(context.Background(), stageReq("vol-1", staging, nil)); err != nil {
		t.Fatalf("retry after the late mount finished: %v", err)
	}
	if n := e.fuse.mountCalls(); n != 1 {
		t.Errorf("%d FUSE mounts, want the one late mount reused", n)
	}
}
