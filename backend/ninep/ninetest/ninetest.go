// Package ninetest starts 9P servers for tests: csi-goferfs's own gofer
// in the test process, and diod (an independent 9P2000.L server) as a
// child process, both on 127.0.0.1 with a free port.
package ninetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
)

// Server is a running 9P server exporting a directory.
type Server struct {
	Name   string // "gofer" or "diod"
	Dir    string // the exported directory
	Config ninep.Config
	// restart stops the server and starts it again on the same address.
	stop  func()
	start func() error
	// log returns what the server logged (diod's stderr).
	log func() string
}

// Log returns what the server logged, for failure messages.
func (s *Server) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log()
}

// Kinds are the servers tests run against.
var Kinds = []string{"gofer", "diod"}

// Start starts a server of kind exporting dir, stopped at the end of t.
// It skips t, saying why, when diod is not installed or the test does
// not run as root (diod must be able to act as any user).
func Start(t testing.TB, kind, dir string) *Server {
	t.Helper()
	switch kind {
	case "gofer":
		return startGofer(t, dir)
	case "diod":
		return startDiod(t, dir)
	}
	t.Fatalf("unknown 9P server %q", kind)
	return nil
}

// Stop stops the server; clients see their connections fail.
func (s *Server) Stop() { s.stop() }

// Restart starts a stopped server again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restart %s: %v", s.Name, err)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startGofer(t testing.TB, dir string) *Server {
	root, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	addr := freeAddr(t)
	s := &Server{Name: "gofer", Dir: dir, Config: ninep.Config{Server: addr, Export: "/"}}
	var cancel context.CancelFunc
	var done chan struct{}
	s.start = func() error {
		var l net.Listener
		var err error
		// The port was just released (freeAddr, or the previous
		// instance); retry briefly if something else raced for it.
		for i := 0; i < 50; i++ {
			if l, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan struct{})
		srv := ninep.NewServer(root)
		go func() { defer close(done); srv.Serve(ctx, l, nil) }()
		return nil
	}
	s.stop = func() {
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
		}
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// diodAvailable tells whether diod tests can run, and if not, why.
func diodAvailable() (bool, string) {
	if _, err := exec.LookPath("diod"); err != nil {
		return false, "diod is not installed (apt-get install diod; hack/install-deps.sh installs it)"
	}
	if os.Geteuid() != 0 {
		return false, "diod must run as root to serve files of every user"
	}
	return true, ""
}

// RequireDiod skips t, saying why, when diod cannot run here. Under CI
// (CI set), where hack/install-deps.sh installs diod and the tests run as
// root, it fails instead: a missing diod there is a broken setup, not a
// reason to test less.
func RequireDiod(t testing.TB) {
	t.Helper()
	ok, why := diodAvailable()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run the diod variants, but %s", why)
	}
	t.Skipf("needs the diod 9P server: %s", why)
}

func startDiod(t testing.TB, dir string) *Server {
	RequireDiod(t)
	addr := freeAddr(t)
	s := &Server{Name: "diod", Dir: dir, Config: ninep.Config{Server: addr, Export: dir}}
	var cmd *exec.Cmd
	var exited chan struct{}
	s.start = func() error {
		// -n: no authentication (diod's is MUNGE); -N: no user database
		// lookups (numeric ids); -S -U root: every attach acts as root,
		// which the data path needs to create files and give them away.
		//
		// diod does not ignore SIGPIPE itself (systemd, which usually
		// runs it, does: IgnoreSIGPIPE=yes); without that, a client
		// hanging up while diod writes a reply kills the server.
		cmd = exec.Command("sh", "-c", `trap "" PIPE; exec diod "$@"`, "diod",
			"-f", "-n", "-N", "-S", "-U", "root", "-l", addr, "-e", dir, "-L", "stderr")
		stderr := &syncBuilder{}
		cmd.Stderr = stderr
		s.log = stderr.String
		// No Pdeathsig: Linux sends it when the forking *thread* exits,
		// and the Go runtime retires threads, which killed diod in the
		// middle of tests. Stop (and the test's cleanup) kills it.
		if err := cmd.Start(); err != nil {
			return err
		}
		exited = make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		// Ready once a 9P session attaches: diod may accept before it
		// serves.
		deadline := time.Now().Add(10 * time.Second)
		for {
			cfg := s.Config
			cfg.Timeout = time.Second
			fsys, err := ninep.Dial(context.Background(), cfg)
			if err == nil {
				fsys.Close()
				return nil
			}
			select {
			case <-exited:
				return fmt.Errorf("diod exited: %s", stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("diod did not serve within 10s: %v: %s", err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.stop = func() {
		if cmd != nil {
			cmd.Process.Kill()
			<-exited
			cmd = nil
		}
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// syncBuilder is a strings.Builder that a child process writes to while
// the test reads it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuilder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuilder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// ServeTCP accepts connections on 127.0.0.1 until the test ends and hands
// each to serve on its own goroutine: a stand-in server that speaks
// whatever a test needs (another dialect, garbage, silence). It returns
// the address.
func ServeTCP(t testing.TB, serve func(c net.Conn)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return l.Addr().String()
}
