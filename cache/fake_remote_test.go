package cache

import (
	"io"
	"sync"
	"syscall"
	"time"
)

// fault is what fakeRemote does instead of a normal call.
type fault int

const (
	noFault fault = iota
	faultShort
	faultEIO
	faultENOSPC
)

// fakeRemote is an in-memory Remote that counts calls, can inject faults
// and can simulate per-call latency and bandwidth.
type fakeRemote struct {
	mu   sync.Mutex
	data []byte
	// log records the calls in order ("read", "write", "sync", "truncate").
	log       []string
	reads     int
	writes    int
	readBytes int64
	// inject, if set, picks the fault for each call.
	inject func(op string) fault
	// injected counts the faults injected.
	injected int
	// latency and perMiB are spun (not slept) per call, for benchmarks.
	latency, perMiB time.Duration
}

func newFakeRemote(data []byte) *fakeRemote {
	return &fakeRemote{data: append([]byte(nil), data...)}
}

func (r *fakeRemote) pick(op string) fault {
	r.log = append(r.log, op)
	if r.inject == nil {
		return noFault
	}
	f := r.inject(op)
	if f != noFault {
		r.injected++
	}
	return f
}

func (r *fakeRemote) delay(n int) {
	if r.latency == 0 && r.perMiB == 0 {
		return
	}
	d := r.latency + time.Duration(int64(r.perMiB)*int64(n)>>20)
	// Spin: timers are too coarse for tens of microseconds.
	for start := time.Now(); time.Since(start) < d; {
	}
}

func (r *fakeRemote) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	f := r.pick("read")
	n := 0
	if off < int64(len(r.data)) {
		n = copy(p, r.data[off:])
	}
	switch f {
	case faultShort:
		n /= 2
	case faultEIO, faultENOSPC:
		return n / 3, syscall.EIO
	}
	r.readBytes += int64(n)
	r.delay(n)
	if n < len(p) {
		if f == faultShort {
			return n, nil
		}
		return n, io.EOF
	}
	return n, nil
}

func (r *fakeRemote) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	f := r.pick("write")
	n, err := len(p), error(nil)
	switch f {
	case faultShort, faultENOSPC:
		n, err = len(p)/2, syscall.ENOSPC
	case faultEIO:
		n, err = 0, syscall.EIO
	}
	if n > 0 {
		if end := off + int64(n); end > int64(len(r.data)) {
			r.data = append(r.data, make([]byte, end-int64(len(r.data)))...)
		}
		copy(r.data[off:], p[:n])
	}
	r.delay(n)
	return n, err
}

func (r *fakeRemote) Truncate(size int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.pick("truncate"); f == faultEIO || f == faultENOSPC {
		return syscall.EIO
	}
	if size <= int64(len(r.data)) {
		r.data = r.data[:size]
	} else {
		r.data = append(r.data, make([]byte, size-int64(len(r.data)))...)
	}
	return nil
}

func (r *fakeRemote) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.pick("sync"); f == faultEIO {
		return syscall.EIO
	}
	return nil
}

func (r *fakeRemote) Size() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.data)), nil
}

// snapshot returns a copy of the remote's contents.
func (r *fakeRemote) snapshot() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.data...)
}

// counts returns the read and write calls so far.
func (r *fakeRemote) counts() (reads, writes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads, r.writes
}

// ops returns the calls so far and forgets them.
func (r *fakeRemote) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.log
	r.log = nil
	return l
}

func (r *fakeRemote) setInject(fn func(op string) fault) {
	r.mu.Lock()
	r.inject = fn
	r.mu.Unlock()
}

// pattern returns n bytes that differ from their neighbours and from other
// seeds, so that misplaced data shows.
func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7) + byte(i>>12)
	}
	return p
}

// vectorRemote is a fakeRemote that is also a VectorReader, so fills read
// straight into their pages; its faults are the fakeRemote's.
type vectorRemote struct{ *fakeRemote }

func (v vectorRemote) ReadvAt(bufs [][]byte, off int64) (int, error) {
	var total int
	for _, b := range bufs {
		total += len(b)
	}
	joined := make([]byte, total)
	n, err := v.ReadAt(joined, off)
	rest := joined[:max(n, 0)]
	for _, b := range bufs {
		rest = rest[copy(b, rest):]
	}
	return n, err
}
