package datapath

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// remoteFlag makes every test volume a 9P remote: the backing directory
// is served by csi-goferfs's gofer ("9p-gofer") or by diod ("9p-diod")
// on 127.0.0.1, and the volume dials it. TestNinepRemotes runs the rule
// and stress tests that way.
var remoteFlag = flag.String("remote", "", "serve test volumes over 9P: 9p-gofer or 9p-diod (default: the local directory)")

// openRemote returns the remote of a test volume backed by dir, and the
// options to mount it with: a 9P remote has no host FD, so it always
// mounts with ForcePageCache (which is what it gets without one).
func openRemote(t testing.TB, dir string, opts Options) (backend.FS, Options) {
	t.Helper()
	if *remoteFlag == "" {
		root, err := local.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return root, opts
	}
	kind, ok := strings.CutPrefix(*remoteFlag, "9p-")
	if !ok {
		t.Fatalf("-remote=%q: want 9p-gofer or 9p-diod", *remoteFlag)
	}
	srv := ninetest.Start(t, kind, dir)
	cfg := srv.Config
	cfg.Exclusive = opts.Mode.IsExclusive()
	fsys, err := ninep.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.Name, err)
	}
	opts.ForcePageCache = true
	return fsys, opts
}

// TestNinepRemotes runs the rule tests and the integrity stress test
// with every volume on a 9P remote, once per server, in a child test
// process with -remote (the flag is read when volumes are mounted, so the
// child sees it everywhere).
func TestNinepRemotes(t *testing.T) {
	if *remoteFlag != "" {
		t.Skipf("this process is the child that runs the tests over -remote=%s; it must not start children of its own", *remoteFlag)
	}
	requireFUSE(t)
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			if kind == "diod" {
				ninetest.RequireDiod(t)
			}
			args := []string{"-test.run=^(TestRule_|TestDataIntegrityStress$)", "-test.count=1", "-remote=9p-" + kind}
			if testing.Verbose() {
				args = append(args, "-test.v")
			}
			cmd := exec.Command(os.Args[0], args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if testing.Verbose() || err != nil {
				t.Logf("%s", out.Bytes())
			}
			if err != nil {
				t.Fatalf("rule and stress tests over 9P (%s): %v", kind, err)
			}
		})
	}
}

// ninepMount is a volume mounted over a 9P server.
type ninepMount struct {
	vol  *Volume
	mnt  string
	fsys *ninep.FS
}

// mountNinep dials srv (cfg's zero fields from srv) and mounts it with
// opts; the volume is unmounted when t ends.
func mountNinep(t testing.TB, srv *ninetest.Server, opts Options, timeout time.Duration) *ninepMount {
	t.Helper()
	cfg := srv.Config
	cfg.Timeout = timeout
	cfg.Exclusive = opts.Mode.IsExclusive()
	fsys, err := ninep.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", srv.Name, err, srv.Log())
	}
	mnt := t.TempDir()
	opts.ForcePageCache = true
	vol, err := MountFS(fsys, mnt, opts)
	if err != nil {
		fsys.Close()
		t.Fatalf("mount: %v", err)
	}
	unmountAtEnd(t, vol)
	return &ninepMount{vol: vol, mnt: mnt, fsys: fsys}
}

// forEachServer runs fn against a fresh export on each 9P server.
func forEachServer(t *testing.T, fn func(t *testing.T, srv *ninetest.Server)) {
	requireFUSE(t)
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) { fn(t, ninetest.Start(t, kind, t.TempDir())) })
	}
}

// TestRule_N1_NinepSharedMountsSeeEachOthersWrites mounts one export
// twice in shared mode (two clients, as on two nodes): a write through one
// is read through the other at once, with its size.
func TestRule_N1_NinepSharedMountsSeeEachOthersWrites(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		a := mountNinep(t, srv, Options{Mode: Shared}, 0)
		b := mountNinep(t, srv, Options{Mode: Shared}, 0)
		wf := openT(t, filepath.Join(a.mnt, "f"), os.O_RDWR|os.O_CREATE)
		rf := openT(t, filepath.Join(b.mnt, "f"), os.O_RDONLY)
		for i := range 50 {
			rec := []byte(fmt.Sprintf("record %03d;", i))
			if _, err := wf.WriteAt(rec, int64(i*len(rec))); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(rec))
			if n, err := rf.ReadAt(got, int64(i*len(rec))); n != len(rec) || !bytes.Equal(got, rec) {
				t.Fatalf("write %d: the other mount reads %q (%v), want %q", i, got[:n], err, rec)
			}
			st, err := os.Stat(filepath.Join(b.mnt, "f"))
			if err != nil || st.Size() != int64((i+1)*len(rec)) {
				t.Fatalf("write %d: the other mount sees size %d (%v)", i, st.Size(), err)
			}
		}
		// A name made through one mount is there through the other.
		if err := os.Mkdir(filepath.Join(a.mnt, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(b.mnt, "dir")); err != nil || !st.IsDir() {
			t.Fatalf("mkdir through one mount: the other sees %v", err)
		}
	})
}

// TestRule_W7_NinepWritethroughRemoteHasEveryAcknowledgedWrite checks
// the export itself while a writer runs: every write that returned is
// there, at every moment.
func TestRule_W7_NinepWritethroughRemoteHasEveryAcknowledgedWrite(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		m := mountNinep(t, srv, Options{Mode: WriteThrough}, 0)
		const records, size = 400, 1000
		f := openT(t, filepath.Join(m.mnt, "log"), os.O_RDWR|os.O_CREATE)
		var acked atomic.Int64 // records whose write returned
		done := make(chan error, 1)
		go func() {
			for i := range records {
				rec := bytes.Repeat([]byte{byte('A' + i%26)}, size)
				if _, err := f.WriteAt(rec, int64(i*size)); err != nil {
					done <- err
					return
				}
				acked.Store(int64(i + 1))
			}
			done <- nil
		}()
		checks := 0
		for running := true; running; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				running = false
			default:
			}
			n := acked.Load() // before reading: these must all be there
			b, err := os.ReadFile(filepath.Join(srv.Dir, "log"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for i := range int(n) {
				want := byte('A' + i%26)
				if len(b) < (i+1)*size || b[i*size] != want || b[(i+1)*size-1] != want {
					t.Fatalf("record %d was acknowledged but the export lacks it (export has %d bytes)", i, len(b))
				}
			}
			checks++
		}
		t.Logf("checked the export %d times while %d records were written", checks, records)
	})
}

// TestNinepServerRestartDuringWorkload stops the server under a running
// workload: operations fail with EIO (never hang, never succeed wrongly),
// resume once the server is back, and data dirty in the daemon's cache,
// which could not be written back meanwhile, reaches the export
// afterwards (C1).
func TestNinepServerRestartDuringWorkload(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *ninetest.Server) {
		for _, mode := range []Mode{Exclusive, WriteThrough, Shared} {
			t.Run(string(mode), func(t *testing.T) {
				restartDuringWorkload(t, srv, mode)
			})
		}
	})
}

func restartDuringWorkload(t *testing.T, srv *ninetest.Server, mode Mode) {
	m := mountNinep(t, srv, Options{Mode: mode}, 300*time.Millisecond)
	dir := filepath.Join(m.mnt, string(mode))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Data that exclusive mode keeps dirty in the daemon's cache: a
	// write over pages the cache holds (a read filled them).
	dirty := filepath.Join(dir, "dirty")
	df := openT(t, dirty, os.O_RDWR|os.O_CREATE)
	if _, err := df.WriteAt([]byte("written before the outage!"), 0); err != nil {
		t.Fatal(err)
	}
	if err := df.Sync(); err != nil {
		t.Fatal(err)
	}
	// Drop the kernel's copy so the read below reaches the daemon,
	// whose cache then holds the pages.
	if err := unix.Fadvise(int(df.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if got := readAllAt(t, df); got != "written before the outage!" {
		t.Fatalf("reads %q", got)
	}
	if _, err := df.WriteAt([]byte("buffered before the outage"), 0); err != nil {
		t.Fatal(err)
	}

	// The workload: create, write, read back, each on a new file.
	var stop atomic.Bool
	var okBefore, okAfter, eio atomic.Int64
	var restarted atomic.Bool
	errs := make(chan error, 1)
	go func() {
		for i := 0; !stop.Load(); i++ {
			name := filepath.Join(dir, fmt.Sprintf("w%d", i))
			data := []byte(fmt.Sprintf("file %d", i))
			err := writeSync(name, data)
			if err == nil {
				var got []byte
				got, err = os.ReadFile(name)
				if err == nil && !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s reads %q, want %q", name, got, data)
					return
				}
			}
			switch {
			case err == nil && restarted.Load():
				okAfter.Add(1)
			case err == nil:
				okBefore.Add(1)
			case errors.Is(err, syscall.EIO):
				eio.Add(1)
			default:
				errs <- fmt.Errorf("workload: %v, want EIO or success", err)
				return
			}
		}
		errs <- nil
	}()
	waitFor(t, func() bool { return okBefore.Load() >= 20 })
	srv.Stop()
	// Writeback cannot reach the server: fsync fails and the data stays.
	if err := df.Sync(); mode == Exclusive && !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync while the server is away: %v, want EIO", err)
	}
	waitFor(t, func() bool { return eio.Load() >= 3 })
	srv.Restart(t)
	restarted.Store(true)
	waitFor(t, func() bool { return okAfter.Load() >= 20 })
	stop.Store(true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ops before the outage, %d failed with EIO during it, %d after", okBefore.Load(), eio.Load(), okAfter.Load())
	if err := df.Sync(); err != nil {
		t.Fatalf("fsync after the server came back: %v", err)
	}
	if got := readFile(t, filepath.Join(srv.Dir, string(mode), "dirty")); got != "buffered before the outage" {
		t.Fatalf("export holds %q after the outage", got)
	}
}

// writeSync writes a new file and fsyncs it, so success means the data
// reached the remote.
func writeSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
