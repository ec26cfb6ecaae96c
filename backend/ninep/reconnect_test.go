package ninep_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// TestReconnect stops the server under an open file: operations fail
// with EIO after the bounded wait, and once the server is back the same
// FS and the same open file work again.
func TestReconnect(t *testing.T) {
	for _, kind := range ninetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			srv := ninetest.Start(t, kind, dir)
			cfg := srv.Config
			cfg.Timeout = 300 * time.Millisecond
			fsys, err := ninep.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			f, err := fsys.Open("f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("before"), 0); err != nil {
				t.Fatal(err)
			}

			srv.Stop()
			if _, err := f.WriteAt([]byte("during"), 0); !errors.Is(err, syscall.EIO) {
				t.Fatalf("write while the server is away: %v, want EIO", err)
			}
			if _, err := fsys.Lstat("f"); !errors.Is(err, syscall.EIO) {
				t.Fatalf("stat while the server is away: %v, want EIO", err)
			}

			srv.Restart(t)
			// The first operation may still see the old session
			// fail; within a few bounded waits it must succeed.
			var werr error
			for i := 0; i < 20; i++ {
				if _, werr = f.WriteAt([]byte("after!"), 0); werr == nil {
					break
				}
				if !errors.Is(werr, syscall.EIO) {
					t.Fatalf("write after restart: %v", werr)
				}
			}
			if werr != nil {
				t.Fatalf("write never resumed: %v", werr)
			}
			if err := f.Sync(false); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, []byte("after!")) {
				t.Fatalf("export holds %q", b)
			}
			if a, err := fsys.Lstat("f"); err != nil || a.Size != 6 {
				t.Fatalf("stat after restart: %v", err)
			}
		})
	}
}

func rversion(version string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(13+len(version)))
	b = append(b, 101)
	b = binary.LittleEndian.AppendUint16(b, 0xffff)
	b = binary.LittleEndian.AppendUint32(b, 65536)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(version)))
	return append(b, version...)
}

// TestDialBadServers: each kind of wrong server gives a clear error
// within the timeout, never a hang.
func TestDialBadServers(t *testing.T) {
	silent := ninetest.ServeTCP(t, func(c net.Conn) { c.Read(make([]byte, 1024)); select {} })
	garbage := ninetest.ServeTCP(t, func(c net.Conn) {
		c.Read(make([]byte, 1024))
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	})
	dotU := ninetest.ServeTCP(t, func(c net.Conn) {
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			c.Write(rversion("9P2000.u"))
		}
	})
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return l.Addr().String()
	}()
	gofer := ninetest.Start(t, "gofer", t.TempDir())

	for _, tc := range []struct {
		name   string
		cfg    ninep.Config
		wantIs error
	}{
		{"silent", ninep.Config{Server: silent, Export: "/"}, ninep.ErrDialect},
		{"garbage", ninep.Config{Server: garbage, Export: "/"}, ninep.ErrDialect},
		{"9P2000.u only", ninep.Config{Server: dotU, Export: "/"}, ninep.ErrDialect},
		{"nobody listening", ninep.Config{Server: closed, Export: "/"}, syscall.ECONNREFUSED},
		{"missing export", ninep.Config{Server: gofer.Config.Server, Export: "/no/such/dir"}, syscall.ENOENT},
		{"export with dot-dot", ninep.Config{Server: gofer.Config.Server, Export: "/../etc"}, nil},
		{"no port", ninep.Config{Server: "127.0.0.1", Export: "/"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Timeout = 500 * time.Millisecond
			fsys, err := ninep.Dial(context.Background(), cfg)
			if err == nil {
				fsys.Close()
				t.Fatal("Dial succeeded")
			}
			t.Logf("error: %v", err)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("got %v, want an error that is %v", err, tc.wantIs)
			}
		})
	}
}

// TestSilentServerTimesOut: a server that stops answering after the
// handshake fails the waiting request after ReplyTimeout instead of
// hanging it.
func TestSilentServerTimesOut(t *testing.T) {
	srv := ninetest.Start(t, "gofer", t.TempDir())
	// A proxy that forwards until told to go silent.
	silent := make(chan struct{})
	proxy := ninetest.ServeTCP(t, func(c net.Conn) {
		up, err := net.Dial("tcp", srv.Config.Server)
		if err != nil {
			return
		}
		defer up.Close()
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := up.Read(buf)
				if err != nil {
					return
				}
				select {
				case <-silent:
					continue // swallow replies
				default:
				}
				c.Write(buf[:n])
			}
		}()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			up.Write(buf[:n])
		}
	})
	cfg := ninep.Config{Server: proxy, Export: "/", Timeout: 200 * time.Millisecond, ReplyTimeout: 300 * time.Millisecond}
	fsys, err := ninep.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if _, err := fsys.Lstat(""); err != nil {
		t.Fatal(err)
	}
	close(silent)
	if _, err := fsys.Lstat(""); !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat on a silent server: %v, want EIO", err)
	}
}
