package cache

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
)

// FuzzCacheAgainstModel drives two Files sharing a small Budget with
// random operations decoded from the input, against a fake remote that
// injects short reads, EIO and ENOSPC. After every operation, each file's
// contents (cached pages over the remote) must equal a byte-slice model of
// what a reader should see, so a dirty byte lost silently shows at once;
// the cache's invariants and the budget must hold. At the end, with faults
// off, a writeback must leave the remote equal to the model.
func FuzzCacheAgainstModel(f *testing.F) {
	f.Add([]byte("\x08\x00\x40\x00\x20\x00\x00\x00\x10\x00\x20\x00\x01\x00\x30\x00\x10\x07\x04\x00\x00\x00"))
	f.Add([]byte("\x04\x05\x30\x00\x30\x00\x09\x00\x00\x40\x00\x01\x0b\x00\x00\x10\x00\x01\x01\x00\x10\x00\x10\x03\x02"))
	f.Fuzz(func(t *testing.T, ops []byte) { runAgainstModel(t, ops) })
}

type decoder struct{ b []byte }

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u16() uint64 { return uint64(d.byte())<<8 | uint64(d.byte()) }

// The fuzzed files live in the first 64 KiB; an operation spans < 20 KiB.
const (
	fuzzSpace  = 64 << 10
	fuzzMaxLen = 20 << 10
)

type mapping struct {
	off, length int64
	writable    bool
}

type modelFile struct {
	f    *File
	r    *fakeRemote
	want []byte
	ra   Readahead
	maps []mapping
	// pinned holds pages faulted in under a mapping: they must stay.
	pinned map[uint64]bool
}

func runAgainstModel(t *testing.T, ops []byte) {
	d := &decoder{ops}
	budget := NewBudget(int64(d.byte()%24)*PageSize, nil)
	rate := uint64(d.byte() % 8)
	faulty := false
	rnd := uint64(len(ops))*0x9e3779b97f4a7c15 | 1
	inject := func(string) fault {
		if !faulty {
			return noFault
		}
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		if rnd%16 >= rate {
			return noFault
		}
		return fault(1 + (rnd>>8)%3)
	}
	// Odd fault rates also buffer gap writes (exclusive volumes do), and
	// rates with bit 1 set fill sequential streams ahead in the background
	// (the data path's Files do).
	opts := Options{MinReadahead: 2 * PageSize, MaxReadahead: 8 * PageSize, BufferGapWrites: rate%2 == 1, AsyncReadahead: rate&2 != 0}
	var files [2]*modelFile
	for i := range files {
		data := pattern(byte(i*100+1), int(d.u16()%(48<<10)))
		r := newFakeRemote(data)
		r.inject = inject
		// Rates with bit 2 set read fills straight into pages.
		var remote Remote = r
		if rate&4 != 0 {
			remote = vectorRemote{r}
		}
		f, err := NewFile(remote, budget, opts)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = &modelFile{f: f, r: r, want: data, pinned: map[uint64]bool{}}
	}
	injected := func() int { return files[0].r.injected + files[1].r.injected }

	for step := 0; len(d.b) > 0; step++ {
		op := d.byte()
		m := files[op>>7]
		off, n := int64(d.u16()%fuzzSpace), int64(d.u16()%fuzzMaxLen)
		before := injected()
		faulty = true
		desc, err := m.apply(op%16, off, n, d.byte())
		// A background fill started by this step may fail with an
		// injected fault too; it must end before faults stop and the
		// cache is checked.
		for _, m := range files {
			m.f.waitAhead(false)
		}
		faulty = false
		if err != nil && injected() == before && !errors.Is(err, ErrBeyondEOF) && !errors.Is(err, ErrBudgetExhausted) {
			t.Fatalf("step %d %s: error without an injected fault: %v", step, desc, err)
		}
		if err != nil && !expectedError(err) {
			t.Fatalf("step %d %s: unexpected error %v", step, desc, err)
		}
		for i, m := range files {
			m.check(t, step, i, desc)
		}
		if err := checkBudget(budget, files[0].f, files[1].f); err != nil {
			t.Fatalf("step %d %s: %v", step, desc, err)
		}
	}

	for i, m := range files {
		if err := m.f.Sync(); err != nil {
			t.Fatalf("file %d: final Sync with faults off: %v", i, err)
		}
		if got := m.r.snapshot(); !bytes.Equal(got, m.want) {
			t.Fatalf("file %d: remote after writeback differs from the model (%d vs %d bytes)", i, len(got), len(m.want))
		}
		for _, mp := range m.maps {
			if err := m.f.RemoveMapping(mp.off, mp.length, mp.writable); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.f.Close(); err != nil || m.f.CachedBytes() != 0 {
			t.Fatalf("file %d: Close = %v, %d bytes left", i, err, m.f.CachedBytes())
		}
	}
	if st := budget.Stats(); st.Used != 0 {
		t.Fatalf("budget still charged %d bytes after Close", st.Used)
	}
}

func expectedError(err error) bool {
	for _, want := range []error{syscall.EIO, syscall.ENOSPC, io.ErrShortWrite, io.ErrUnexpectedEOF, ErrBeyondEOF, ErrBudgetExhausted} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// apply runs one operation and updates the model with its effect.
func (m *modelFile) apply(op byte, off, n int64, arg byte) (string, error) {
	f := m.f
	switch op {
	case 0:
		return "read", m.checkRead(f.Read, off, n, true)
	case 1:
		return "readPinned", m.checkRead(m.readPinned, off, n, true)
	case 2:
		return "readDirect", m.checkRead(func(p []byte, off int64, _ *Readahead) (int, error) {
			return f.ReadDirect(p, off)
		}, off, n, false)
	case 3, 4:
		p := pattern(arg, int(n))
		got, err := f.Write(p, off)
		m.written(p[:got], off)
		return "write", err
	case 5:
		p := pattern(arg, int(n))
		got, err := f.WriteDirect(p, off)
		m.written(p[:got], off)
		m.unpin(pageRange(Range{uint64(off), uint64(off + n)}))
		return "writeDirect", err
	case 6:
		size := off
		if n%3 == 0 {
			size = int64(len(m.want)) + n%5000 - 2500
		}
		size = max(size, 0)
		err := f.Truncate(size)
		if err == nil {
			m.want = append(m.want, make([]byte, max(0, size-int64(len(m.want))))...)[:size]
			m.unpin(Range{pageUp(uint64(size)), all.End})
		}
		return "truncate", err
	case 7:
		return "writeBack", f.WriteBack(off, n)
	case 8:
		return "sync", f.Sync()
	case 9:
		return "evict", f.Evict(off, n)
	case 10:
		m.unpin(pageRange(Range{uint64(off), uint64(off + n)}))
		return "dropRange", f.DropRange(off, n)
	case 11:
		mp := mapping{off, n, arg&1 == 1}
		m.maps = append(m.maps, mp)
		return "addMapping", f.AddMapping(mp.off, mp.length, mp.writable)
	case 12:
		if len(m.maps) == 0 {
			return "removeMapping(none)", nil
		}
		i := int(arg) % len(m.maps)
		mp := m.maps[i]
		m.maps = append(m.maps[:i], m.maps[i+1:]...)
		err := f.RemoveMapping(mp.off, mp.length, mp.writable)
		for p := range m.pinned {
			if !m.isMapped(p) {
				delete(m.pinned, p)
			}
		}
		return "removeMapping", err
	case 13, 14:
		write := false
		if i := int(arg) % (len(m.maps) + 1); i < len(m.maps) && m.maps[i].writable {
			mp := m.maps[i]
			write = true
			off = mp.off + off%max(mp.length, 1)
			n = min(n, mp.off+mp.length-off)
		}
		err := f.Fault(off, n, write)
		if err == nil {
			for p := pageDown(uint64(off)); n > 0 && p < uint64(off+n); p += PageSize {
				if m.isMapped(p) {
					m.pinned[p] = true
				}
			}
		}
		return "fault", err
	default:
		err := f.Close()
		if err == nil {
			clear(m.pinned)
		}
		return "close", err
	}
}

// readPinned reads through ReadPinned, then FillPinned on a miss, falling
// back to Read when neither can pin, as the data path does.
func (m *modelFile) readPinned(p []byte, off int64, ra *Readahead) (int, error) {
	pn, ok := m.f.ReadPinned(nil, off, len(p), ra)
	if !ok {
		pn, ok = m.f.FillPinned(nil, off, len(p), ra)
	}
	if !ok {
		return m.f.Read(p, off, ra)
	}
	got := 0
	for _, s := range pn.Slices() {
		got += copy(p[got:], s)
	}
	if got != pn.Len() {
		pn.Release()
		return got, errors.New("pinned slices do not add up to Len")
	}
	pn.Release()
	if got < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// checkRead reads and compares with the model; without faults the read
// must also be complete.
func (m *modelFile) checkRead(read func([]byte, int64, *Readahead) (int, error), off, n int64, ra bool) error {
	p := make([]byte, n)
	var r *Readahead
	if ra {
		r = &m.ra
	}
	before := m.r.injected
	got, err := read(p, off, r)
	avail := max(0, min(n, int64(len(m.want))-off))
	if int64(got) > avail || got > 0 && !bytes.Equal(p[:got], m.want[off:off+int64(got)]) {
		return errors.New("read returned wrong data")
	}
	if m.r.injected == before && int64(got) != avail {
		return errors.New("read short without a fault")
	}
	if errors.Is(err, io.EOF) {
		if avail == n {
			return errors.New("EOF on a complete read")
		}
		return nil
	}
	return err
}

func (m *modelFile) written(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	if end := off + int64(len(p)); end > int64(len(m.want)) {
		m.want = append(m.want, make([]byte, end-int64(len(m.want)))...)
	}
	copy(m.want[off:], p)
}

func (m *modelFile) isMapped(p uint64) bool {
	for _, mp := range m.maps {
		if pageRange(Range{uint64(mp.off), uint64(mp.off + mp.length)}).Contains(p) {
			return true
		}
	}
	return false
}

func (m *modelFile) unpin(r Range) {
	for p := range m.pinned {
		if r.Contains(p) {
			delete(m.pinned, p)
		}
	}
}

func (m *modelFile) check(t *testing.T, step, i int, desc string) {
	t.Helper()
	remote := m.r.snapshot()
	if err := m.f.checkInvariants(remote); err != nil {
		t.Fatalf("step %d %s: file %d: %v", step, desc, i, err)
	}
	if got := m.f.view(remote); !bytes.Equal(got, m.want) {
		at := 0
		for at < min(len(got), len(m.want)) && got[at] == m.want[at] {
			at++
		}
		t.Fatalf("step %d %s: file %d differs from the model at byte %d (sizes %d, %d)", step, desc, i, at, len(got), len(m.want))
	}
	for p := range m.pinned {
		if _, ok := m.f.pages.Find(p); !ok {
			t.Fatalf("step %d %s: file %d: mapped page %#x was evicted", step, desc, i, p)
		}
	}
}
