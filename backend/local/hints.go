package local

import "sync"

// hintQueue is a bounded queue of names, worked through by one goroutine
// that runs while names are queued and exits when the queue is empty. The
// local remote's read-ahead hints (warm.go, siblings.go) use it: a hint
// never blocks the request that gives it, and when hints come faster than
// they are worked, the oldest are dropped, since the reader has most
// likely passed them already.
type hintQueue struct {
	mu sync.Mutex
	// names in the order they were pushed. Guarded by mu.
	names []string
	// running is set while the goroutine runs. Guarded by mu.
	running bool
	// closed is set when the Root closes; nothing is queued after.
	// Guarded by mu.
	closed bool
	done   sync.WaitGroup // the goroutine, for stop
}

// push queues names in order, keeps at most max, and tells whether the
// caller must start the goroutine (it was not running).
func (q *hintQueue) push(max int, names ...string) (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(names) == 0 {
		return false
	}
	q.names = append(q.names, names...)
	if over := len(q.names) - max; over > 0 {
		q.names = append(q.names[:0], q.names[over:]...)
	}
	if q.running {
		return false
	}
	q.running = true
	q.done.Add(1)
	return true
}

// take removes the newest name, or the oldest if oldest is set. When the
// queue is empty or closed it returns false, and the goroutine must then
// return.
func (q *hintQueue) take(oldest bool) (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.names)
	if n == 0 || q.closed {
		q.running = false
		return "", false
	}
	if oldest {
		name := q.names[0]
		q.names = q.names[1:]
		return name, true
	}
	name := q.names[n-1]
	q.names = q.names[:n-1]
	return name, true
}

// work is the goroutine: it calls fn with each name it takes, the oldest
// first if oldest is set, until the queue is empty or closed.
func (q *hintQueue) work(oldest bool, fn func(name string)) {
	defer q.done.Done()
	for {
		name, ok := q.take(oldest)
		if !ok {
			return
		}
		fn(name)
	}
}

// isClosed tells the goroutine to stop in the middle of a long hint.
func (q *hintQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// stop drops the queue and waits for the goroutine, which uses the Root's
// descriptor.
func (q *hintQueue) stop() {
	q.mu.Lock()
	q.closed = true
	q.names = nil
	q.mu.Unlock()
	q.done.Wait()
}
