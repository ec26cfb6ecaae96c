package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// record is the n-th fixed-size record a writer appends.
func record(n int) []byte { return []byte(fmt.Sprintf("record %08d\n", n)) }

const recordLen = 16

// writeRecords appends records to path until count are written or a write
// fails (the server died), fsyncing every syncEvery records. It returns how
// many write(2) calls returned success and how many were covered by a
// successful fsync.
func writeRecords(path string, count, syncEvery int, stopAfter int, stop func()) (acked, synced int) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	for n := 0; n < count; n++ {
		if n == stopAfter {
			stop()
		}
		if _, err := f.Write(record(n)); err != nil {
			return acked, synced
		}
		acked = n + 1
		if acked%syncEvery == 0 {
			if err := f.Sync(); err != nil {
				return acked, synced
			}
			synced = acked
		}
	}
	return acked, synced
}

// checkRecords checks that the remote file starts with want intact records.
func checkRecords(t *testing.T, path string, want int, what string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && want > 0 {
		t.Fatalf("remote file: %v", err)
	}
	for n := 0; n < want; n++ {
		if len(b) < (n+1)*recordLen || !bytes.Equal(b[n*recordLen:(n+1)*recordLen], record(n)) {
			t.Fatalf("the remote lost %s record %d of %d (it has %d bytes)", what, n, want, len(b))
		}
	}
}

var crashVariants = []struct {
	name   string
	params map[string]string
	// ackedDurable: every write(2) that returned reached the remote.
	ackedDurable bool
}{
	{"exclusive", map[string]string{"interopMode": "exclusive"}, true}, // host FD: the kernel writes the backing file
	{"exclusive-forcePageCache", map[string]string{"interopMode": "exclusive", "forcePageCache": "true"}, false},
	{"writethrough", map[string]string{"interopMode": "writethrough"}, true},
	{"writethrough-forcePageCache", map[string]string{"interopMode": "writethrough", "forcePageCache": "true"}, true},
	{"shared", map[string]string{"interopMode": "shared"}, true},
	{"shared-forcePageCache", map[string]string{"interopMode": "shared", "forcePageCache": "true"}, true},
}

// TestCrash_KillDuringWritesKeepsPromisesAndRecovers kills the server with
// SIGKILL in the middle of a write workload. Every fsync'd record must be
// in the remote in every mode, and every acknowledged one where the mode
// promises it (writethrough, shared, and any host FD). After a restart the
// same target works again for new opens, and Unpublish/Unstage succeed.
func TestCrash_KillDuringWritesKeepsPromisesAndRecovers(t *testing.T) {
	requireRoot(t)
	for _, v := range crashVariants {
		t.Run(v.name, func(t *testing.T) {
			s := newServerDirs(t)
			s.start()
			vol := s.publish("crash", v.params)
			acked, synced := writeRecords(filepath.Join(vol.target, "log"), 4000, 100, 2500, func() {
				s.cmd.Process.Signal(syscall.SIGKILL)
				s.cmd.Wait()
			})
			if acked >= 4000 || acked < 2500 {
				t.Fatalf("writer acknowledged %d records; the kill at 2500 should have stopped it", acked)
			}
			checkRecords(t, filepath.Join(vol.remote, "log"), synced, "fsync'd")
			if v.ackedDurable {
				checkRecords(t, filepath.Join(vol.remote, "log"), acked, "acknowledged")
			}

			// The new process restores the staged volume and its target
			// before it serves RPCs. The gap docs/restart.md quotes: from
			// starting it to the first new open in the target that works.
			restart := time.Now()
			s.startProcess()
			gap, err := firstOpen(filepath.Join(vol.target, "after-restart"), 20*time.Second)
			if err != nil {
				t.Fatalf("new open in the target after restart: %v", err)
			}
			t.Logf("new opens worked again %v after the new process started", gap.Sub(restart).Round(time.Millisecond))
			s.waitReady()
			s.unpublish(vol)
			if mounted(t, vol.target) || mounted(t, vol.staging) {
				t.Fatal("a mount survived NodeUnpublish/NodeUnstage after the restart")
			}
			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("server exit after SIGTERM: %v", err)
			}
		})
	}
}

// TestGracefulStop_SIGTERMWritesBackBufferedData stops the server with
// SIGTERM while an exclusive volume without a host FD holds buffered
// writes that were never fsync'd: nothing written before the signal is
// lost. The mounts stay for the next process, which restores the volume
// on top of them; unpublishing then leaves no mount behind.
func TestGracefulStop_SIGTERMWritesBackBufferedData(t *testing.T) {
	requireRoot(t)
	s := newServerDirs(t)
	s.start()
	vol := s.publish("graceful", map[string]string{"interopMode": "exclusive", "forcePageCache": "true"})
	const n = 3000
	acked, _ := writeRecords(filepath.Join(vol.target, "log"), n, n+1, -1, nil)
	if acked != n {
		t.Fatalf("wrote %d of %d records", acked, n)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
	checkRecords(t, filepath.Join(vol.remote, "log"), n, "buffered")
	if !mounted(t, vol.staging) || !mounted(t, vol.target) {
		t.Error("a graceful stop unmounted the volume; running containers could not get it back")
	}
	s.start()
	checkRecords(t, filepath.Join(vol.target, "log"), n, "restored")
	s.unpublish(vol)
	if mounted(t, vol.target) || mounted(t, vol.staging) {
		t.Fatal("a mount survived NodeUnpublish/NodeUnstage after the restart")
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
}

// TestRestart_RunningContainerSeesRestoredVolume stops the server under a
// running "container": a copy of the target made the way a container
// runtime makes it for mountPropagation HostToContainer (a bind of the
// target under a shared mount, turned into a slave). After the restart,
// new opens through the container's copy must work again without
// restarting it, after a graceful stop and after a crash.
func TestRestart_RunningContainerSeesRestoredVolume(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			s := newServerDirs(t)
			s.shareDir() // like /var/lib/kubelet
			s.start()
			vol := s.publish("running", map[string]string{"interopMode": "exclusive", "forcePageCache": "true"})
			ctr := containerCopy(t, vol.target, filepath.Join(s.dir, "container"))
			// fsync'd: a crash may lose what an exclusive volume without a
			// host FD buffered, but never this.
			if err := writeSynced(filepath.Join(ctr, "before"), "before"); err != nil {
				t.Fatal(err)
			}
			s.stop(sig)
			if _, err := os.ReadFile(filepath.Join(ctr, "before")); err == nil {
				t.Fatal("the container's copy still works with no server; the test cannot tell a restore from a survivor")
			}

			s.start()
			if _, err := firstOpen(filepath.Join(ctr, "after"), 20*time.Second); err != nil {
				t.Fatalf("new open in the running container after the restart: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(ctr, "before")); err != nil || string(b) != "before" {
				t.Fatalf("the container reads %q, %v after the restart; want the data written before it", b, err)
			}
			if _, err := os.Stat(filepath.Join(vol.remote, "after")); err != nil {
				t.Fatalf("a file created in the container after the restart is not in the remote: %v", err)
			}
			s.unpublish(vol)
			if mounted(t, vol.target) || mounted(t, vol.staging) {
				t.Fatal("a mount survived NodeUnpublish/NodeUnstage after the restart")
			}
			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("server exit after SIGTERM: %v", err)
			}
		})
	}
}

// writeSynced creates path with data and fsyncs it.
func writeSynced(path, data string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// firstOpen waits until the directory of path is a live FUSE mount again
// and a create through it works, or timeout passes, and returns when it
// first worked. It never creates anything before the mount is back: the
// file would land in the host directory under the mount point.
func firstOpen(path string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		var st syscall.Statfs_t
		if err = syscall.Statfs(filepath.Dir(path), &st); err == nil && st.Type == fuseSuperMagic {
			var f *os.File
			if f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644); err == nil {
				f.Close()
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no live mount after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fuseSuperMagic is the f_type statfs(2) reports for FUSE mounts.
const fuseSuperMagic = 0x65735546
