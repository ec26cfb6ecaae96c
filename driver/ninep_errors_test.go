package driver

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mountError maps a failed 9P mount to the code that tells the CO whether
// to retry. Every syscall.Errno has a Timeout method, so a check for "has
// one" instead of "is one" made every errno Unavailable.
func TestNinepMountErrorCodes(t *testing.T) {
	p := volumeParams{Backend: Backend9P, Server: "127.0.0.1:1"}
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{syscall.ECONNREFUSED, codes.Unavailable},
		{syscall.EIO, codes.Unavailable},
		{os.ErrDeadlineExceeded, codes.Unavailable},
		{syscall.ETIMEDOUT, codes.Unavailable},
		{syscall.ENOENT, codes.NotFound},
		{syscall.EACCES, codes.FailedPrecondition},
		{syscall.ENOSPC, codes.Internal},
		{syscall.EINVAL, codes.Internal},
	} {
		err := mountError("vol", "/staging", p, fmt.Errorf("attach: %w", tc.err))
		if got := status.Code(err); got != tc.want {
			t.Errorf("%v: code %v, want %v (%v)", tc.err, got, tc.want, err)
		}
	}
}
