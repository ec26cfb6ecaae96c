package driver

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// opTimeout bounds an operation on a volume when the caller set no
// deadline: a mount that hangs must not hold its RPC forever.
const opTimeout = 2 * time.Minute

// volumeLocks lets one operation at a time work on a volume. A second one
// is refused with Aborted rather than queued: the CO retries, and a queue
// would let stale requests pile up behind a hung mount.
type volumeLocks struct {
	mu   sync.Mutex
	held map[string]bool // guarded by mu
}

// tryLock takes the lock of volume id, or returns an Aborted status.
func (l *volumeLocks) tryLock(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[id] {
		return status.Errorf(codes.Aborted, "an operation on volume %s is already in progress", id)
	}
	if l.held == nil {
		l.held = make(map[string]bool)
	}
	l.held[id] = true
	return nil
}

func (l *volumeLocks) unlock(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, id)
}

// runLocked runs op under the lock of volume id. If ctx ends first, it
// returns ctx's status and op keeps running in the background, still
// holding the lock: retries get Aborted until op finishes and records its
// result, so a late mount is never lost or doubled.
func runLocked[T any](ctx context.Context, d *Driver, id string, op func() (T, error)) (T, error) {
	var zero T
	if err := d.locks.tryLock(id); err != nil {
		return zero, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opTimeout)
		defer cancel()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	d.ops.Add(1)
	go func() {
		defer d.ops.Done()
		// Unlock before replying: a CO that sends its next call on
		// this volume right after the reply must not see Aborted.
		v, err := func() (T, error) {
			defer d.locks.unlock(id)
			return op()
		}()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, status.FromContextError(ctx.Err()).Err()
	}
}
