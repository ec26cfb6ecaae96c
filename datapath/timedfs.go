package datapath

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// timedFS reports the latency of the timed operations (Op) to an
// OpObserver. It wraps go-fuse's raw file system, between the kernel's
// requests and the node tree, because go-fuse does not record latencies
// itself (Server.RecordLatencies is a deprecated no-op in v2.12): one
// wrapper here times every node and handle without touching their code,
// and includes the bridge's own work. The other operations pass through the
// embedded RawFileSystem untouched.
type timedFS struct {
	fuse.RawFileSystem
	obs OpObserver
}

var _ fuse.RawFileSystem = (*timedFS)(nil)

func (t *timedFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Lookup(cancel, h, name, out)
	t.obs.ObserveOp(OpLookup, time.Since(start))
	return st
}

func (t *timedFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.GetAttr(cancel, in, out)
	t.obs.ObserveOp(OpGetattr, time.Since(start))
	return st
}

func (t *timedFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.SetAttr(cancel, in, out)
	t.obs.ObserveOp(OpSetattr, time.Since(start))
	return st
}

func (t *timedFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Open(cancel, in, out)
	t.obs.ObserveOp(OpOpen, time.Since(start))
	return st
}

func (t *timedFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Create(cancel, in, name, out)
	t.obs.ObserveOp(OpCreate, time.Since(start))
	return st
}

// Read is timed up to the reply's data: the handles answer with data in
// memory (fuse.ReadResultData), never with work left for the reply.
func (t *timedFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := t.RawFileSystem.Read(cancel, in, buf)
	t.obs.ObserveOp(OpRead, time.Since(start))
	return res, st
}

// Writev is how the server sends every WRITE; it falls back to Write only
// on ENOSYS, which Write then reports, so it is not counted here.
func (t *timedFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := t.RawFileSystem.Writev(cancel, in, data)
	if st != fuse.ENOSYS {
		t.obs.ObserveOp(OpWrite, time.Since(start))
	}
	return n, st
}

func (t *timedFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := t.RawFileSystem.Write(cancel, in, data)
	t.obs.ObserveOp(OpWrite, time.Since(start))
	return n, st
}

func (t *timedFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Flush(cancel, in)
	t.obs.ObserveOp(OpFlush, time.Since(start))
	return st
}

func (t *timedFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Fsync(cancel, in)
	t.obs.ObserveOp(OpFsync, time.Since(start))
	return st
}
