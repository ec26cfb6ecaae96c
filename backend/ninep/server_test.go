package ninep_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/hugelgupf/p9/p9"
)

// rawClient connects a plain library client (none of ninep's name
// checks) to a gofer serving export, as a hostile client would.
func rawClient(t *testing.T, export string) (*p9.Client, p9.File) {
	t.Helper()
	root, err := local.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ninep.NewServer(root).Serve(ctx, l, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p9.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := c.Attach("/")
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

// outside makes a directory next to the export holding a secret.
func outside(t *testing.T) (dir string, secret []byte) {
	dir = t.TempDir()
	secret = []byte("secret outside the export")
	if err := os.WriteFile(filepath.Join(dir, "secret"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

// readAll walks names from f, opens and reads the file; it reports what
// it read, or nil if any step failed.
func readAll(f p9.File, names ...string) []byte {
	_, g, err := f.Walk(names)
	if err != nil {
		return nil
	}
	defer g.Close()
	if _, _, err := g.Open(p9.ReadOnly); err != nil {
		return nil
	}
	buf := make([]byte, 4096)
	n, _ := g.ReadAt(buf, 0)
	return buf[:n]
}

func TestGoferConfinesSymlinksAndDotDot(t *testing.T) {
	export := t.TempDir()
	out, secret := outside(t)
	for name, target := range map[string]string{"toroot": "/", "toout": out, "up": ".."} {
		if err := os.Symlink(target, filepath.Join(export, name)); err != nil {
			t.Fatal(err)
		}
	}
	c, root := rawClient(t, export)

	for _, names := range [][]string{
		{"toout", "secret"},
		{"toroot", "etc", "passwd"},
		{"up", filepath.Base(out), "secret"},
		{"..", filepath.Base(out), "secret"},
		{"toout"}, // the symlink itself cannot be opened
	} {
		if got := readAll(root, names...); got != nil {
			t.Errorf("walk %q read %q", names, got)
		}
	}
	for _, aname := range []string{"/..", "/toout", "/../" + filepath.Base(out)} {
		a, err := c.Attach(aname)
		if err != nil {
			continue
		}
		if got := readAll(a, "secret"); got != nil {
			t.Errorf("attach %q then walk read %q", aname, got)
		}
		a.Close()
	}
	// Names with a slash or dot-dot are refused by every creating call.
	_, dir, err := root.Walk(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"..", "a/b", "../x", "."} {
		if _, err := dir.Mkdir(bad, 0o755, p9.NoUID, p9.NoGID); err == nil {
			t.Errorf("mkdir %q succeeded", bad)
		}
		if _, err := dir.Symlink("/", bad, p9.NoUID, p9.NoGID); err == nil {
			t.Errorf("symlink %q succeeded", bad)
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(export), "x")); err == nil {
		t.Error("a file appeared next to the export")
	}
	if !bytes.Equal(mustRead(t, filepath.Join(out, "secret")), secret) {
		t.Error("the secret changed")
	}
}

// TestGoferConfinesRenameRace swaps a directory of the export with a
// symlink to a directory outside it while a client walks through it: no
// walk may ever read the outside file.
func TestGoferConfinesRenameRace(t *testing.T) {
	export := t.TempDir()
	out, secret := outside(t)
	d := filepath.Join(export, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "secret"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, root := rawClient(t, export)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			os.Rename(d, d+".real")
			os.Symlink(out, d)
			os.Remove(d)
			os.Rename(d+".real", d)
		}
	}()
	var inside int
	for i := 0; i < 3000; i++ {
		got := readAll(root, "d", "secret")
		if bytes.Equal(got, secret) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("iteration %d: a walk through a swapped directory read the outside file", i)
		}
		if got != nil {
			inside++
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d of 3000 walks read the inside file; none the outside one", inside)
}

func mustRead(t *testing.T, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
