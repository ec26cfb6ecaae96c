package local

import (
	"fmt"
	"testing"
)

// A walk's newest directories are the ones it enters next: when the queue
// overflows, the oldest names go, and the first name of the newest batch
// is warmed first.
func TestLocal_WarmQueueKeepsTheNewestNames(t *testing.T) {
	var w warmer
	var batches [][]string
	for b := 0; b < 3; b++ {
		var names []string
		for i := 0; i < 100; i++ {
			names = append(names, fmt.Sprintf("d%d/%d", b, i))
		}
		batches = append(batches, names)
		start := w.push(names)
		if start != (b == 0) {
			t.Fatalf("batch %d: push started the goroutine: %v, want %v", b, start, b == 0)
		}
	}
	q := w.q.names
	if len(q) != maxWarmQueue {
		t.Fatalf("queue holds %d names, want %d", len(q), maxWarmQueue)
	}
	if next, ok := w.q.take(false); !ok || next != batches[2][0] {
		t.Errorf("next to warm is %q, want %q", next, batches[2][0])
	}
	// A batch is queued last name first, so the first batch lost its
	// last names.
	if oldest, want := q[0], batches[0][99-(300-maxWarmQueue)]; oldest != want {
		t.Errorf("oldest kept is %q, want %q", oldest, want)
	}
}

// Warming reads directories and stats entries but changes nothing, stays
// beneath the volume like every other access (a name climbing out or
// through a symlink is simply not warmed), and Close waits for it, since
// it uses the Root's descriptor.
func TestLocal_WarmingChangesNothingAndStopsAtClose(t *testing.T) {
	r, base := fixture(t)
	before := snapshot(t, base)
	r.PrefetchDirs([]string{"a", "../outside", "evil", "evilrel", "missing", ""})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	checkStopped(t, &r.warm.q)
	if after := snapshot(t, base); after != before {
		t.Fatalf("warming changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
