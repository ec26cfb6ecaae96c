package driver

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/mount-utils"

	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// fakeMounter stands in for the FUSE data path. Its mounts are recorded in
// the fake mount table too, so mount-point checks see them.
type fakeMounter struct {
	table *mount.FakeMounter

	mu       sync.Mutex
	mountErr error                  // returned by the next Mount; guarded by mu
	mounts   map[string]*fakeVolume // live mounts by target; guarded by mu
	calls    int                    // Mount calls; guarded by mu
	// gate, when set, holds each Mount after it announces itself on
	// entered, until gate is closed. Guarded by mu.
	gate, entered chan struct{}
}

func newFakeMounter(table *mount.FakeMounter) *fakeMounter {
	return &fakeMounter{table: table, mounts: map[string]*fakeVolume{}}
}

func (m *fakeMounter) Mount(dir, target string, opts datapath.Options) (MountedVolume, error) {
	m.mu.Lock()
	gate, entered := m.gate, m.entered
	m.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.mountErr != nil {
		return nil, m.mountErr
	}
	if err := m.table.Mount(opts.FsName, target, "fuse.goferfs", nil); err != nil {
		return nil, err
	}
	v := &fakeVolume{m: m, dir: dir, target: target, opts: opts}
	m.mounts[target] = v
	return v, nil
}

// volume returns the live mount at target, or nil.
func (m *fakeMounter) volume(target string) *fakeVolume {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mounts[target]
}

func (m *fakeMounter) mountCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// holdMounts makes every Mount wait until release is called; waiting
// receives once per Mount that waits.
func (m *fakeMounter) holdMounts() (waiting <-chan struct{}, release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	m.gate, m.entered = gate, entered
	return entered, func() {
		m.mu.Lock()
		m.gate, m.entered = nil, nil
		m.mu.Unlock()
		close(gate)
	}
}

func (m *fakeMounter) failMounts(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mountErr = err
}

// fakeVolume is one fake FUSE session.
type fakeVolume struct {
	m      *fakeMounter
	dir    string
	target string
	opts   datapath.Options

	// The fields below are guarded by m.mu.
	unmountErr error // returned by Unmount and Release, as a failed writeback would be
	checkErr   error // returned by Check
	unmounts   int
	releases   int
}

func (v *fakeVolume) Unmount() error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	v.unmounts++
	if v.unmountErr != nil {
		return v.unmountErr
	}
	delete(v.m.mounts, v.target)
	return v.m.table.Unmount(v.target)
}

func (v *fakeVolume) Release() error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	v.releases++
	return v.unmountErr
}

func (v *fakeVolume) Check() error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	return v.checkErr
}

func (v *fakeVolume) unmountCount() int {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	return v.unmounts
}

func (v *fakeVolume) releaseCount() int {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	return v.releases
}

func (v *fakeVolume) set(unmountErr, checkErr error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	v.unmountErr, v.checkErr = unmountErr, checkErr
}

// testEnv is a Driver serving both services over a temporary Root, with
// fake FUSE and bind mounts.
type testEnv struct {
	d     *Driver
	cs    *controllerServer
	ns    *nodeServer
	fuse  *fakeMounter
	table *mount.FakeMounter
	dir   string // scratch space for staging and target paths
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWithState(t, "")
}

func newTestEnvWithState(t *testing.T, stateDir string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	table := mount.NewFakeMounter(nil)
	fuse := newFakeMounter(table)
	d, err := New(Config{
		Version:  "test",
		NodeID:   "node-1",
		Root:     root,
		StateDir: stateDir,
		Services: Services{Controller: true, Node: true},
		Mounter:  fuse,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.mount = table
	return &testEnv{d: d, cs: &controllerServer{d: d}, ns: &nodeServer{d: d}, fuse: fuse, table: table, dir: dir}
}

// mkvol makes the directory of volume id as CreateVolume would.
func (e *testEnv) mkvol(t *testing.T, id string) {
	t.Helper()
	if err := os.Mkdir(e.d.volumeDir(id), 0o777); err != nil {
		t.Fatal(err)
	}
}

// isMounted reports whether the fake mount table has path.
func (e *testEnv) isMounted(t *testing.T, path string) bool {
	t.Helper()
	mps, _ := e.table.List()
	for _, mp := range mps {
		if mp.Path == path {
			return true
		}
	}
	return false
}
