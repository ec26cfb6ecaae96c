package ninep

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/p9"
	"k8s.io/klog/v2"
)

// Dial connects to the server of cfg and attaches to its export. It fails
// within cfg.Timeout (or when ctx ends) with an error that says what went
// wrong: unreachable, another dialect (ErrDialect), or an export that does
// not exist (ENOENT) or is not a directory (ENOTDIR).
func Dial(ctx context.Context, cfg Config) (*FS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	fsys := &FS{cfg: cfg, stop: make(chan struct{}), files: make(map[*file]struct{}),
		byName: make(map[string]map[*file]struct{}), deferred: newDeferred()}
	s, err := dial(ctx, cfg, &fsys.requests)
	if err != nil {
		return nil, err
	}
	fsys.cur = s
	// Fixed for the FS's life: the kernel keeps the generations it was
	// told across reconnects.
	fsys.genIsVersion = s.versionIsBirth
	fsys.ready = make(chan struct{})
	close(fsys.ready)
	fsys.ctx, fsys.cancel = context.WithCancel(context.Background())
	return fsys, nil
}

// String names the remote, for logs.
func (fsys *FS) String() string {
	return fmt.Sprintf("9p:%s%s", fsys.cfg.Server, fsys.cfg.Export)
}

// Close releases the FS. Files still open stay usable (the backend
// contract); the session ends when the last of them is closed.
func (fsys *FS) Close() error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.closed {
		return nil
	}
	fsys.closed = true
	if len(fsys.files) == 0 {
		fsys.shutdownLocked()
	}
	return nil
}

// shutdownLocked ends the session and any reconnecting.
//
// Preconditions:
//   - fsys.mu is held.
//   - fsys.closed is set and no file is open.
func (fsys *FS) shutdownLocked() {
	close(fsys.stop)
	fsys.cancel()
	if s := fsys.cur; s != nil {
		fsys.cur = nil
		go s.close()
	}
}

// stopped reports whether the session was shut down for good.
func (fsys *FS) stopped() bool {
	select {
	case <-fsys.stop:
		return true
	default:
		return false
	}
}

// errClosed is what operations on a closed FS return.
var errClosed = fmt.Errorf("9P remote closed: %w", syscall.EIO)

// session returns the live session, waiting at most cfg.Timeout for a
// reconnect when there is none.
func (fsys *FS) session() (*session, error) {
	fsys.mu.Lock()
	if s := fsys.cur; s != nil {
		fsys.mu.Unlock()
		return s, nil
	}
	timer := time.NewTimer(fsys.cfg.Timeout)
	defer timer.Stop()
	for fsys.cur == nil {
		if fsys.stopped() {
			fsys.mu.Unlock()
			return nil, errClosed
		}
		ready := fsys.ready
		fsys.mu.Unlock()
		select {
		case <-ready:
		case <-timer.C:
			return nil, &transportError{fmt.Sprintf("9P server %s unreachable for %v", fsys.cfg.Server, fsys.cfg.Timeout)}
		}
		fsys.mu.Lock()
	}
	s := fsys.cur
	fsys.mu.Unlock()
	return s, nil
}

// do runs op on the live session. A reply from the server (an errno) is
// returned as is. A transport error ends the session; an idempotent op is
// then retried once on the next session, anything else fails with EIO
// because the server may or may not have applied it.
func (fsys *FS) do(idempotent bool, op func(s *session) error) error {
	for attempt := 0; ; attempt++ {
		s, err := fsys.session()
		if err != nil {
			return err
		}
		err = op(s)
		if err == nil || isReply(err) {
			return mapErr(err)
		}
		if errors.Is(err, p9.ErrOutOfTags) || errors.Is(err, p9.ErrOutOfFIDs) {
			return fmt.Errorf("9P: %w: %w", err, syscall.EIO)
		}
		fsys.lost(s, err)
		if !idempotent || attempt > 0 {
			return &transportError{fmt.Sprintf("9P server %s: %v", fsys.cfg.Server, err)}
		}
	}
}

// transportError is an operation that failed because the server could not
// be reached or the connection broke: the server may or may not have
// applied it. It is EIO to callers.
type transportError struct{ msg string }

func (e *transportError) Error() string { return e.msg + ": " + syscall.EIO.Error() }
func (e *transportError) Unwrap() error { return syscall.EIO }

// lost ends session s after a transport error and starts reconnecting,
// unless that already happened.
func (fsys *FS) lost(s *session, cause error) {
	fsys.mu.Lock()
	if fsys.cur != s || fsys.stopped() {
		fsys.mu.Unlock()
		return
	}
	fsys.cur = nil
	fsys.ready = make(chan struct{})
	ready := fsys.ready
	fsys.mu.Unlock()
	s.close()
	klog.InfoS("Lost 9P session, reconnecting", "server", fsys.cfg.Server, "export", fsys.cfg.Export, "err", cause)
	go fsys.reconnect(ready)
}

// Reconnect back-off bounds: quick for a server restart, capped so a long
// outage costs little.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// reconnect dials until it succeeds or the FS closes, then publishes the
// new session and closes ready.
func (fsys *FS) reconnect(ready chan struct{}) {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		s, err := dial(fsys.ctx, fsys.cfg, &fsys.requests)
		if err == nil {
			fsys.mu.Lock()
			if fsys.stopped() {
				fsys.mu.Unlock()
				s.close()
				return
			}
			fsys.cur = s
			if s.versionIsBirth != fsys.genIsVersion {
				klog.InfoS("The 9P server changed how it versions files; files it reports may be taken for new ones",
					"server", fsys.cfg.Server, "export", fsys.cfg.Export)
			}
			close(ready)
			fsys.mu.Unlock()
			klog.InfoS("Reconnected 9P session", "server", fsys.cfg.Server, "export", fsys.cfg.Export, "attempts", attempt)
			return
		}
		klog.V(2).InfoS("9P reconnect failed", "server", fsys.cfg.Server, "attempt", attempt, "err", err)
		select {
		case <-fsys.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// walk returns a new fid for the file at parts (a clone of the root for
// none). A walk that stops early (a missing component) is ENOENT.
func (s *session) walk(parts []string) (p9.File, error) {
	qids, f, err := s.root.Walk(parts)
	if err != nil {
		return nil, err
	}
	if len(qids) != len(parts) {
		clunk(f)
		return nil, syscall.ENOENT
	}
	return f, nil
}

// walkQID is walkTo that also returns the QID of the file walked to (the
// zero QID for the root, which it does not walk to).
func (s *session) walkQID(parts []string) (p9.File, p9.QID, func(), error) {
	if len(parts) == 0 {
		return s.root, p9.QID{}, func() {}, nil
	}
	qids, f, err := s.root.Walk(parts)
	if err != nil {
		return nil, p9.QID{}, nil, err
	}
	if len(qids) != len(parts) {
		clunk(f)
		return nil, p9.QID{}, nil, syscall.ENOENT
	}
	return f, qids[len(qids)-1], func() { clunk(f) }, nil
}

// walkTo returns a fid for parts that the caller must not open or create
// through (it may be the root fid itself, which saves a walk), and the
// function that releases it.
func (s *session) walkTo(parts []string) (p9.File, func(), error) {
	if len(parts) == 0 {
		return s.root, func() {}, nil
	}
	f, err := s.walk(parts)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { clunk(f) }, nil
}

// walkStat walks to parts and returns the file's fid, QID and attributes,
// in one request where the server can.
func (s *session) walkStat(parts []string) (p9.File, p9.QID, p9.AttrMask, p9.Attr, error) {
	if s.walkGetattr && len(parts) > 0 {
		qids, f, valid, attr, err := s.root.WalkGetAttr(parts)
		if err != nil {
			return nil, p9.QID{}, valid, attr, err
		}
		if len(qids) != len(parts) {
			clunk(f)
			return nil, p9.QID{}, valid, attr, syscall.ENOENT
		}
		return f, qids[len(qids)-1], valid, attr, nil
	}
	f, err := s.walk(parts)
	if err != nil {
		return nil, p9.QID{}, p9.AttrMask{}, p9.Attr{}, err
	}
	qid, valid, attr, err := f.GetAttr(p9.AttrMaskAll)
	if err != nil {
		clunk(f)
		return nil, qid, valid, attr, err
	}
	return f, qid, valid, attr, nil
}

// clunk releases a fid without waiting for the reply: nothing depends on
// it, and it saves a round trip on every operation by name.
func clunk(f p9.File) {
	if f != nil {
		go f.Close()
	}
}

// withFid walks to name, runs fn on its fid and releases it.
func (fsys *FS) withFid(idempotent bool, name string, fn func(s *session, f p9.File) error) error {
	parts, err := components(name)
	if err != nil {
		return err
	}
	return fsys.do(idempotent, func(s *session) error {
		f, release, err := s.walkTo(parts)
		if err != nil {
			return err
		}
		defer release()
		return fn(s, f)
	})
}

// withParent walks to name's parent directory and runs fn on its fid
// with name's final component.
func (fsys *FS) withParent(idempotent bool, name string, fn func(s *session, dir p9.File, base string) error) error {
	dir, base, err := splitParent(name)
	if err != nil {
		return err
	}
	return fsys.do(idempotent, func(s *session) error {
		d, release, err := s.parentFid(dir)
		if err != nil {
			return err
		}
		defer release()
		return fn(s, d, base)
	})
}
