package datapath

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loadClients is the number of concurrent clients of one mount.
const loadClients = 64

// loadStall is how long the load may go without one operation finishing
// before the watchdog calls it a deadlock.
const loadStall = 10 * time.Second

// loadNames are few, so that files and directories collide and errors happen.
var loadNames = []string{"a", "b", "c", "d", "e", "f"}

// TestLoad_64ClientsMixedOperations runs 64 clients on one mount, each doing
// random namespace and data operations in its own directory, where a model
// predicts every result (errors included), and in one shared directory. A
// client stops after a number of operations or when time is up; after
// unmount the backing directory must match every model. -stress.seed
// replays each client's operations, though not their interleaving.
func TestLoad_64ClientsMixedOperations(t *testing.T) {
	seed := *stressSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	ops := 1000
	if testing.Short() {
		ops = 150
	}
	forEachVariant(t, func(t *testing.T, tv *testVolume) { runLoad(t, tv, seed, ops, 2*time.Second) })
}

func runLoad(t *testing.T, tv *testVolume, seed uint64, maxOps int, budget time.Duration) {
	if err := os.Mkdir(tv.path("shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	var progress atomic.Int64
	stop := watchdog(t, tv.mnt, &progress)
	clients := make([]*loadClient, loadClients)
	deadline := time.Now().Add(budget)
	var wg sync.WaitGroup
	for i := range clients {
		c := &loadClient{name: fmt.Sprintf("c%02d", i), mnt: tv.mnt, rng: rand.New(rand.NewPCG(seed, uint64(i))),
			model: map[string]*loadNode{}, shared: map[string]bool{}}
		clients[i] = c
		wg.Go(func() {
			err, ops := os.Mkdir(c.abs(""), 0o755), 0
			for ; err == nil && ops < maxOps && time.Now().Before(deadline); ops++ {
				err = c.step()
				progress.Add(1)
			}
			if err != nil {
				t.Errorf("seed %d (rerun with -stress.seed=%d), client %s, operation %d: %v", seed, seed, c.name, ops, err)
			}
		})
	}
	wg.Wait()
	stop()
	t.Logf("%d operations by %d clients", progress.Load(), loadClients)
	if t.Failed() {
		return
	}
	if err := tv.vol.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	// Each shared file holds its own name.
	var want, got []string
	for _, c := range clients {
		if err := c.matchesBacking(filepath.Join(tv.src, c.name)); err != nil {
			t.Errorf("seed %d, client %s, after unmount: %v", seed, c.name, err)
		}
		for name := range c.shared {
			want = append(want, name+": "+name)
		}
	}
	ents, err := os.ReadDir(tv.remote("shared"))
	for _, e := range ents {
		data, rerr := os.ReadFile(tv.remote("shared/" + e.Name()))
		err = errors.Join(err, rerr)
		got = append(got, e.Name()+": "+string(data))
	}
	slices.Sort(got)
	if slices.Sort(want); err != nil || !slices.Equal(got, want) {
		t.Errorf("shared/ after unmount differs from what the clients made (%v):\n%q\nwant\n%q", err, got, want)
	}
}

// watchdog fails t if progress stays still for loadStall: it logs every
// goroutine's stack and aborts mnt's FUSE connection (found now: a stat of a
// deadlocked mount would hang), so blocked clients get ENOTCONN and return
// instead of hanging the test binary. stop ends the watchdog.
func watchdog(t *testing.T, mnt string, progress *atomic.Int64) (stop func()) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	const fusectl = "/sys/fs/fuse/connections"
	abortFile := fmt.Sprintf("%s/%d/abort", fusectl, unix.Minor(st.Dev))
	if _, err := os.Stat(abortFile); errors.Is(err, os.ErrNotExist) {
		_ = unix.Mount("fusectl", fusectl, "fusectl", 0, "") // best effort: without it a deadlock hangs
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(loadStall / 5)
		defer tick.Stop()
		last, since := progress.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				if p := progress.Load(); p != last {
					last, since = p, now
				} else if now.Sub(since) >= loadStall {
					buf := make([]byte, 32<<20)
					t.Errorf("no operation finished for %v after %d: deadlock; aborting the FUSE connection. Goroutines:\n%s",
						loadStall, last, buf[:runtime.Stack(buf, true)])
					if err := os.WriteFile(abortFile, []byte("1"), 0); err != nil {
						t.Errorf("abort the FUSE connection: %v", err)
					}
					return
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// loadNode is one entry of a client's model: a directory, or a file with
// its contents.
type loadNode struct {
	dir  bool
	data []byte
}

// loadClient is one client. Its model maps paths relative to its directory
// to entries; directories exist only at the top, so a file's parent is "."
// or a top-level directory and no directory can move into itself.
type loadClient struct {
	name, mnt string
	rng       *rand.Rand
	model     map[string]*loadNode
	shared    map[string]bool
	nshared   int
}

func (c *loadClient) abs(p string) string { return filepath.Join(c.mnt, c.name, p) }

// pick returns a random top-level name or, with nested, maybe a name in a
// top-level directory.
func (c *loadClient) pick(nested bool) string {
	parents := []string{"."}
	for _, p := range slices.Sorted(maps.Keys(c.model)) {
		if nested && c.model[p].dir {
			parents = append(parents, p)
		}
	}
	return path.Join(parents[c.rng.IntN(len(parents))], loadNames[c.rng.IntN(len(loadNames))])
}

// children lists the model's names in dir ("." for the top).
func (c *loadClient) children(dir string) []string {
	var names []string
	for p := range c.model {
		if path.Dir(p) == dir {
			names = append(names, path.Base(p))
		}
	}
	slices.Sort(names)
	return names
}

// fileErr is the model's prediction for a data operation on p.
func (c *loadClient) fileErr(p string) unix.Errno {
	if n := c.model[p]; n == nil {
		return unix.ENOENT
	} else if n.dir {
		return unix.EISDIR
	}
	return 0
}

// expect compares an operation's error with the model's prediction
// (0: success).
func expect(op string, err error, want unix.Errno) error {
	if want == 0 && err == nil || want != 0 && errors.Is(err, want) {
		return nil
	}
	return fmt.Errorf("%s: got %v, the model predicts %s", op, err, cmp.Or(unix.ErrnoName(want), "success"))
}

// step does one random operation and checks its result against the model,
// which it updates first where the model predicts success.
func (c *loadClient) step() error {
	p := c.pick(true)
	n, want := c.model[p], c.fileErr(p)
	switch k := c.rng.IntN(100); {
	case k < 12: // create or replace a whole file
		data := randBytes(c.rng, c.rng.IntN(32<<10))
		if want == unix.ENOENT {
			want, c.model[p] = 0, &loadNode{}
		}
		if want == 0 {
			c.model[p].data = data
		}
		return expect("write "+p, os.WriteFile(c.abs(p), data, 0o644), want)
	case k < 30: // pwrite, and fsync some of the time
		return c.pwrite(p, k >= 24)
	case k < 42: // read a whole file and compare with the model
		got, err := os.ReadFile(c.abs(p))
		if want != 0 || err != nil {
			return expect("read "+p, err, want)
		}
		if !bytes.Equal(got, n.data) {
			return fmt.Errorf("read %s: %d bytes, the model has %d; first difference at %d", p, len(got), len(n.data), firstDiff(got, n.data))
		}
	case k < 48:
		size := c.rng.IntN(64 << 10)
		if want == 0 {
			n.data = truncateModel(n.data, size)
		}
		return expect("truncate "+p, os.Truncate(c.abs(p), int64(size)), want)
	case k < 56:
		return c.rename(p, c.pick(n == nil || !n.dir))
	case k < 62:
		if want == 0 {
			delete(c.model, p)
		}
		return expect("unlink "+p, unix.Unlink(c.abs(p)), want)
	case k < 68:
		p, want = c.pick(false), unix.EEXIST
		if c.model[p] == nil {
			want, c.model[p] = 0, &loadNode{dir: true}
		}
		return expect("mkdir "+p, unix.Mkdir(c.abs(p), 0o755), want)
	case k < 72:
		switch {
		case want == unix.EISDIR && len(c.children(p)) > 0:
			want = unix.ENOTEMPTY
		case want == unix.EISDIR:
			want = 0
			delete(c.model, p)
		case want == 0:
			want = unix.ENOTDIR
		}
		return expect("rmdir "+p, unix.Rmdir(c.abs(p)), want)
	case k < 82:
		fi, err := os.Lstat(c.abs(p))
		if want == unix.EISDIR {
			want = 0
		}
		if want != 0 || err != nil {
			return expect("stat "+p, err, want)
		}
		if fi.IsDir() != n.dir || !n.dir && (!fi.Mode().IsRegular() || fi.Size() != int64(len(n.data))) {
			return fmt.Errorf("stat %s: mode %v size %d, the model has dir=%t size %d", p, fi.Mode(), fi.Size(), n.dir, len(n.data))
		}
	case k < 90: // list the directory that holds p
		ents, err := os.ReadDir(c.abs(path.Dir(p)))
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if err != nil || !slices.Equal(got, c.children(path.Dir(p))) {
			return fmt.Errorf("readdir %s: %v, %v; the model has %v", path.Dir(p), got, err, c.children(path.Dir(p)))
		}
	default:
		return c.sharedStep()
	}
	return nil
}

// pwrite writes a random range of the file p and with sync fsyncs it.
func (c *loadClient) pwrite(p string, sync bool) error {
	n := c.model[p]
	if n == nil || n.dir {
		return nil
	}
	f, err := os.OpenFile(c.abs(p), os.O_WRONLY, 0)
	if err != nil {
		return expect("open "+p, err, 0)
	}
	defer f.Close()
	off, data := c.rng.IntN(48<<10), randBytes(c.rng, 1+c.rng.IntN(16<<10))
	n.data = writeModel(n.data, data, off)
	if _, err := f.WriteAt(data, int64(off)); err != nil || !sync {
		return expect("pwrite "+p, err, 0)
	}
	return expect("fsync "+p, f.Sync(), 0)
}

// rename renames from to to and predicts the result.
func (c *loadClient) rename(from, to string) error {
	f, t := c.model[from], c.model[to]
	var want unix.Errno
	switch {
	case f == nil:
		want = unix.ENOENT
	case from == to:
	case path.Dir(from) == to: // the kernel's answer when the target is an ancestor
		want = unix.ENOTEMPTY
	case !f.dir && t != nil && t.dir:
		want = unix.EISDIR
	case f.dir && t != nil && !t.dir:
		want = unix.ENOTDIR
	case f.dir && t != nil && len(c.children(to)) > 0:
		want = unix.ENOTEMPTY
	default:
		moved := map[string]*loadNode{}
		for p, n := range c.model {
			if p == from || strings.HasPrefix(p, from+"/") {
				moved[to+strings.TrimPrefix(p, from)] = n
				delete(c.model, p)
			}
		}
		maps.Copy(c.model, moved)
	}
	// unix.Rename: os.Rename refuses any existing directory as the target.
	return expect("rename "+from+" "+to, unix.Rename(c.abs(from), c.abs(to)), want)
}

// sharedStep creates a uniquely named file in shared/ or removes one of
// the client's own, then lists shared/, where the client's names must be
// exactly the files it has: other clients change the directory all along.
func (c *loadClient) sharedStep() error {
	dir := filepath.Join(c.mnt, "shared")
	var err error
	if len(c.shared) == 0 || c.rng.IntN(3) > 0 {
		name := fmt.Sprintf("%s-%d", c.name, c.nshared)
		c.nshared++
		c.shared[name] = true
		err = os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644)
	} else {
		name := slices.Sorted(maps.Keys(c.shared))[0]
		delete(c.shared, name)
		err = unix.Unlink(filepath.Join(dir, name))
	}
	ents, rerr := os.ReadDir(dir)
	if err = errors.Join(err, rerr); err != nil {
		return err
	}
	var own []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), c.name+"-") {
			own = append(own, e.Name())
		}
	}
	if want := slices.Sorted(maps.Keys(c.shared)); !slices.Equal(own, want) {
		return fmt.Errorf("shared/ lists %v of the client's files, the client has %v", own, want)
	}
	return nil
}

// matchesBacking compares the client's backing directory dir with the
// model.
func (c *loadClient) matchesBacking(dir string) error {
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		seen++
		rel := strings.TrimPrefix(p, dir+"/")
		switch n := c.model[rel]; {
		case n == nil || n.dir != d.IsDir():
			return fmt.Errorf("%s (dir=%t) is not in the model", rel, d.IsDir())
		case !n.dir:
			data, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(data, n.data) {
				return fmt.Errorf("%s: %d bytes (%v), the model has %d; first difference at %d", rel, len(data), err, len(n.data), firstDiff(data, n.data))
			}
		}
		return nil
	})
	if err == nil && seen != len(c.model) {
		err = fmt.Errorf("%d entries, the model has %d", seen, len(c.model))
	}
	return err
}
