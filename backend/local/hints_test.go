package local

import (
	"testing"
	"time"
)

// waitIdle waits for q's goroutine to work through the queue.
func waitIdle(t *testing.T, q *hintQueue) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		idle := !q.running && len(q.names) == 0
		q.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the goroutine did not finish the queue in 30 s")
		}
	}
}

// checkStopped checks that q's goroutine is not running after Close, that
// nothing is left queued, and that nothing can be.
func checkStopped(t *testing.T, q *hintQueue) {
	t.Helper()
	q.mu.Lock()
	running, queued := q.running, len(q.names)
	q.mu.Unlock()
	if running || queued != 0 {
		t.Fatalf("after Close: running %v with %d queued", running, queued)
	}
	if q.push(1, "a") {
		t.Fatal("a closed Root started its goroutine")
	}
}
