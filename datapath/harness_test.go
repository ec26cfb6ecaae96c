package datapath

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"golang.org/x/sys/unix"
)

// requireFUSE skips a test that mounts when the machine cannot: mounting
// needs root (CAP_SYS_ADMIN) and /dev/fuse. CI runs as root with
// /dev/fuse, so there these tests always run.
func requireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE file systems")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
}

// testVolume is a mounted volume over a fresh backing directory.
type testVolume struct {
	vol *Volume
	src string // the backing directory: the remote
	mnt string // where the volume is mounted
}

// path returns the path of name inside the mount.
func (tv *testVolume) path(name string) string { return filepath.Join(tv.mnt, name) }

// remote returns the path of name in the backing directory.
func (tv *testVolume) remote(name string) string { return filepath.Join(tv.src, name) }

// mountTest mounts a fresh backing directory with opts and unmounts it when
// the test ends.
func mountTest(t testing.TB, opts Options) *testVolume {
	t.Helper()
	return mountTestFS(t, opts, nil)
}

// mountTestFS is mountTest with the backend wrapped by wrap (nil: none),
// for tests that count or fail remote calls.
func mountTestFS(t testing.TB, opts Options, wrap func(backend.FS) backend.FS) *testVolume {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	tv := &testVolume{src: filepath.Join(dir, "remote"), mnt: filepath.Join(dir, "mnt")}
	for _, d := range []string{tv.src, tv.mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, opts := openRemote(t, tv.src, opts)
	be := root
	if wrap != nil {
		be = wrap(root)
	}
	vol, err := MountFS(be, tv.mnt, opts)
	if err != nil {
		root.Close()
		t.Fatalf("mount: %v", err)
	}
	tv.vol = vol
	unmountAtEnd(t, vol)
	return tv
}

// unmountAtEnd unmounts vol when t ends. Unmount refuses while dirty data
// cannot be written back, which fails the test; the mount is then detached
// anyway, so that no test leaves a mount behind.
func unmountAtEnd(t testing.TB, vol *Volume) {
	t.Cleanup(func() {
		err := vol.Unmount()
		if err == nil {
			return
		}
		t.Errorf("unmount: %v", err)
		if err := unix.Unmount(vol.mountpoint, unix.MNT_DETACH); err != nil {
			t.Errorf("detach %s: %v", vol.mountpoint, err)
			return
		}
		// The session ends once nothing uses the detached mount.
		select {
		case <-vol.done:
		case <-time.After(unmountTimeout):
			t.Errorf("the session of the detached mount %s did not end", vol.mountpoint)
		}
	})
}

// variant is one way to mount a volume: a mode, with or without the host FD.
type variant struct {
	name string
	opts Options
}

// allVariants lists every mode, each with passthrough and with
// forcePageCache. A 9P remote (-remote) has no host FD, so there each mode
// runs once, with forcePageCache.
func allVariants() []variant {
	var vs []variant
	if *remoteFlag != "" {
		for _, m := range Modes {
			vs = append(vs, variant{string(m), Options{Mode: m, ForcePageCache: true}})
		}
		return vs
	}
	for _, m := range Modes {
		vs = append(vs,
			variant{string(m), Options{Mode: m}},
			variant{string(m) + "-forcePageCache", Options{Mode: m, ForcePageCache: true}})
	}
	return vs
}

// forEachVariant runs fn as a subtest for each variant whose mode is in
// modes (all modes when none are given).
func forEachVariant(t *testing.T, fn func(t *testing.T, tv *testVolume), modes ...Mode) {
	for _, v := range allVariants() {
		if len(modes) > 0 && !containsMode(modes, v.opts.Mode) {
			continue
		}
		t.Run(v.name, func(t *testing.T) { fn(t, mountTest(t, v.opts)) })
	}
}

func containsMode(ms []Mode, m Mode) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
