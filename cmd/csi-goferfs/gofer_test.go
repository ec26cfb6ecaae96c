package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"golang.org/x/sys/unix"
)

// proc is a running subcommand of the binary.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{} // closed when it exited; err is then set
	err    error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), exited: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	return p
}

// stop sends SIGTERM and returns how the process exited.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	return p.err
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// TestGoferAndNinepMount runs the gofer and a 9P mount of it as the
// binary's subcommands: a write through the mount reaches the export,
// and both stop cleanly on SIGTERM.
func TestGoferAndNinepMount(t *testing.T) {
	requireRoot(t)
	export, mnt := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(export, "vol"), 0o777); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	gofer := start(t, "gofer", "--export", export, "--listen", addr)
	for {
		fsys, err := ninep.Dial(context.Background(), ninep.Config{Server: addr, Export: "/", Timeout: time.Second})
		if err == nil {
			fsys.Close()
			break
		}
		if !gofer.running() {
			t.Fatalf("gofer exited: %v\n%s", gofer.err, gofer.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	mount := start(t, "mount", "--interop", "writethrough", "9p://"+addr+"/vol", mnt)
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err == nil && st.Type == unix.FUSE_SUPER_MAGIC {
			break
		}
		if !mount.running() {
			t.Fatalf("mount exited: %v\n%s", mount.err, mount.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("through the gofer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(export, "vol", "f")); err != nil || string(b) != "through the gofer" {
		t.Fatalf("export holds %q, %v", b, err)
	}
	if err := mount.stop(); err != nil {
		t.Fatalf("mount after SIGTERM: %v\n%s", err, mount.stderr.String())
	}
	if err := gofer.stop(); err != nil {
		t.Fatalf("gofer after SIGTERM: %v\n%s", err, gofer.stderr.String())
	}
}

func TestGoferAndMountRefuseBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"gofer"}, // no --export
		{"gofer", "--export", t.TempDir(), "--tls-cert", "c.pem"}, // TLS needs all three
		{"mount", "9p://127.0.0.1/x", t.TempDir()},                // no port
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v: %v, want a failure exit\n%s", args, err, out)
		}
	}
}
