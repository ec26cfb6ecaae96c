package cache

import (
	"sync"

	"golang.org/x/sys/unix"
)

// pageMemory holds the memory of cached pages. It is carved from 2 MiB
// anonymous mappings advised to use transparent huge pages, and freed
// pages go back to a free list, never to the Go heap.
//
// Why not the Go heap: filling the cache is a copy of the remote's bytes
// into pages, and with pages from the heap (or a sync.Pool, which the
// garbage collector empties) most of a cold fill's time went to
// allocating, zeroing and first-touch faulting 4 KiB objects, about 2 ms
// per MiB, five times the copy itself. Memory taken once stays with the
// cache: its size is bounded by the Budget (plus the pages of fills in
// flight that a short remote read leaves unused, until they are returned),
// so the high-water mark is the budget, which is what operators size for.
type pageMemory struct {
	mu   sync.Mutex
	free []*[PageSize]byte
}

// chunkSize is one x86-64 huge page: a fill faults it in at once.
const chunkSize = 2 << 20

var pages pageMemory

func (m *pageMemory) get() *[PageSize]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.free) == 0 {
		m.grow()
	}
	p := m.free[len(m.free)-1]
	m.free[len(m.free)-1] = nil
	m.free = m.free[:len(m.free)-1]
	return p
}

func (m *pageMemory) put(p *[PageSize]byte) {
	m.mu.Lock()
	m.free = append(m.free, p)
	m.mu.Unlock()
}

// grow adds one chunk of pages to the free list.
//
// Preconditions: m.mu is locked.
func (m *pageMemory) grow() {
	mem, err := unix.Mmap(-1, 0, chunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		// Out of address space or mappings: fall back to the heap
		// rather than fail a read.
		m.free = append(m.free, new([PageSize]byte))
		return
	}
	unix.Madvise(mem, unix.MADV_HUGEPAGE) // a hint; without THP it still works
	// Hand pages out from the start of the chunk, so a partly used chunk
	// is touched from one end.
	for off := chunkSize - PageSize; off >= 0; off -= PageSize {
		m.free = append(m.free, (*[PageSize]byte)(mem[off:off+PageSize]))
	}
}
