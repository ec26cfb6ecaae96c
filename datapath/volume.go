package datapath

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// maxRequest is the largest read or write the kernel sends in one FUSE
// request (max_write, max_pages): fewer round trips for large I/O.
const maxRequest = 1 << 20

// ErrSessionEnded is returned by Check once the FUSE session stopped serving.
var ErrSessionEnded = errors.New("FUSE session ended")

// Volume is one mounted FUSE session serving a remote.
type Volume struct {
	fs         backend.FS
	opts       Options
	mountpoint string
	root       *node
	server     *fuse.Server

	// writebackCache is fixed at mount: the kernel negotiates it in INIT.
	writebackCache bool
	// passthrough is set once the kernel has accepted a backing file
	// registration; it is false when ForcePageCache is set.
	passthrough atomic.Bool

	done      chan struct{} // closed when the session stops serving
	unmountMu sync.Mutex    // serializes Unmount

	budget *cache.Budget // node-wide page cache budget (C3)
	// cacheCounters is shared by all the volume's caches, for Stats.
	cacheCounters cache.Counters
	// remoteErrors counts replies with each of RemoteErrnos, for Stats.
	remoteErrors [len(RemoteErrnos)]atomic.Uint64

	cachesMu sync.Mutex
	// caches holds every page cache of the volume, so sync and unmount
	// can write them all back (C2). Guarded by cachesMu.
	caches map[*nodeCache]struct{}
}

// Mount serves the directory dir (the local remote) at mountpoint with one
// FUSE session and returns once the kernel has the mount.
func Mount(dir, mountpoint string, opts Options) (*Volume, error) {
	be, err := local.Open(dir)
	if err != nil {
		return nil, err
	}
	v, err := MountFS(be, mountpoint, opts)
	if err != nil {
		be.Close()
		return nil, err
	}
	return v, nil
}

var umaskOnce sync.Once

// MountFS serves the remote be at mountpoint. The Volume owns be from then
// on and closes it when the session ends.
func MountFS(be backend.FS, mountpoint string, opts Options) (*Volume, error) {
	if opts.Mode == "" {
		opts.Mode = Exclusive
	}
	if _, err := ParseMode(string(opts.Mode)); err != nil {
		return nil, err
	}
	// The kernel has already applied the caller's umask to every mode it
	// sends; the daemon's own umask must not apply a second one.
	umaskOnce.Do(func() { unix.Umask(0) })

	rootAttr, err := be.Lstat("")
	if err != nil {
		return nil, fmt.Errorf("stat volume root: %w", err)
	}
	if !isDir(&rootAttr) {
		return nil, fmt.Errorf("volume root is not a directory")
	}
	wantPassthrough := !opts.ForcePageCache
	v := &Volume{
		fs:             be,
		opts:           opts,
		mountpoint:     mountpoint,
		writebackCache: opts.Mode.usesWritebackCache(wantPassthrough),
		done:           make(chan struct{}),
		budget:         opts.Budget,
		caches:         make(map[*nodeCache]struct{}),
	}
	if v.budget == nil {
		v.budget = DefaultBudget()
	}
	v.root = &node{vol: v}
	rootStable := v.stableAttr(&rootAttr)

	entry, negative := opts.Mode.entryTimeout(), opts.Mode.negativeTimeout()
	fsOpts := &fs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &entry,
		NegativeTimeout: &negative,
		NullPermissions: true,
		RootStableAttr:  &rootStable,
		MountOptions:    v.mountOptions(),
	}
	raw := fs.NewNodeFS(v.root, fsOpts)
	if opts.Observer != nil {
		raw = &timedFS{RawFileSystem: raw, obs: opts.Observer}
	}
	mountMu.Lock()
	server, err := serve(raw, mountpoint, &fsOpts.MountOptions)
	closeOnExecFUSE()
	mountMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	v.server = server
	go func() {
		server.Wait()
		be.Close()
		close(v.done)
	}()
	if wantPassthrough {
		v.passthrough.Store(probePassthrough(server))
	}
	setKernelReadahead(mountpoint)
	klog.V(2).InfoS("Mounted volume", "mountpoint", mountpoint, "mode", opts.Mode,
		"passthrough", v.passthrough.Load(), "writebackCache", v.writebackCache)
	return v, nil
}

// serve mounts raw at mountpoint and serves it, as fs.Mount does for the
// file system it builds itself.
func serve(raw fuse.RawFileSystem, mountpoint string, opts *fuse.MountOptions) (*fuse.Server, error) {
	server, err := fuse.NewServer(raw, mountpoint, opts)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		// The serve loop ends by itself: the mount never happened.
		return nil, err
	}
	return server, nil
}

func (v *Volume) mountOptions() fuse.MountOptions {
	name := v.opts.FsName
	if name == "" {
		name = "goferfs"
	}
	mo := fuse.MountOptions{
		// Pods run as any user; the kernel checks permissions
		// against the attributes we report (default_permissions).
		AllowOther: true,
		Options:    []string{"default_permissions"},
		FsName:     name,
		Name:       "goferfs",
		MaxWrite:   maxRequest,
		// Let the kernel read ahead as far as one request reaches
		// (see setKernelReadahead for the bdi limit that also applies).
		MaxReadAhead: maxRequest,
		// The daemon is root in every supported setup: mount(2)
		// directly, and fall back to fusermount3 if that fails.
		DirectMount: true,
		// Backing directories on overlayfs (a container's root file
		// system) are one level deep already.
		MaxStackDepth:        2,
		EnableSymlinkCaching: v.opts.Mode != Shared,
		// Read replies always come from memory (the page cache or a
		// pread buffer); splicing them costs an extra pipe copy, and
		// a 1 MiB reply plus header does not fit the default pipe.
		DisableSplice: true,
		Debug:         v.opts.Debug,
	}
	if v.writebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	return mo
}

// probePassthrough tells whether the kernel accepts backing files on this
// session: it needs kernel 6.9+ and CAP_SYS_ADMIN. A memfd stands in for a
// real file, so nothing appears in the volume.
func probePassthrough(server *fuse.Server) bool {
	if server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		return false
	}
	fd, err := unix.MemfdCreate("goferfs-passthrough-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		klog.InfoS("FUSE passthrough unavailable; the daemon serves file I/O", "errno", errno)
		return false
	}
	server.UnregisterBackingFd(id)
	return true
}

// Passthrough reports whether the kernel does file I/O on the backing files
// itself (the host FD path).
func (v *Volume) Passthrough() bool { return v.passthrough.Load() }

// Mountpoint returns where the volume is mounted.
func (v *Volume) Mountpoint() string { return v.mountpoint }

// Check reports nil while the FUSE session is serving.
func (v *Volume) Check() error {
	select {
	case <-v.done:
		return ErrSessionEnded
	default:
		return nil
	}
}

// unmountTimeout bounds how long Unmount waits for the session to end
// after the kernel dropped the mount.
const unmountTimeout = 30 * time.Second

// Unmount writes back all dirty data (C2), then unmounts and waits for the
// session to end. If the data cannot be written back it returns the error
// and stays mounted, so nothing is dropped. A session that already ended
// is cleaned up: its stale mount point is detached.
func (v *Volume) Unmount() error {
	v.unmountMu.Lock()
	defer v.unmountMu.Unlock()
	if v.Check() != nil {
		// The kernel side is gone, but the daemon's page cache is not:
		// write it back before letting go.
		if err := v.syncCaches(); err != nil {
			return err
		}
		v.settleOrLog()
		v.dropCaches()
		if err := unix.Unmount(v.mountpoint, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("detach dead mount %s: %w", v.mountpoint, err)
		}
		return nil
	}
	if err := v.syncKernel(); err != nil {
		// The kernel reports a writeback failure once, at the first
		// syncfs after it, even if it happened long ago. The pages that
		// failed are gone from its cache already: staying mounted would
		// not bring them back, only leave a mount nobody can remove.
		klog.ErrorS(err, "Kernel writeback failed on this volume since the last sync; unmounting anyway", "mountpoint", v.mountpoint)
	}
	if err := v.syncCaches(); err != nil {
		return err
	}
	v.settleOrLog()
	if err := v.server.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", v.mountpoint, err)
	}
	select {
	case <-v.done:
	case <-time.After(unmountTimeout):
		return fmt.Errorf("unmount %s: session did not end within %v", v.mountpoint, unmountTimeout)
	}
	// Writes that raced the unmount's sync landed in the caches; the
	// session is over, so this is the last word.
	if err := v.syncCaches(); err != nil {
		return err
	}
	v.dropCaches()
	return nil
}

// Release writes back all dirty data, like Sync, and leaves the volume
// mounted: the caller is about to exit, the kernel ends the session when
// the process's /dev/fuse descriptor closes, and the next process mounts
// the volume again on top of the dead mount. What is written between
// Release and the exit is not written back, as after a crash.
func (v *Volume) Release() error {
	v.unmountMu.Lock()
	defer v.unmountMu.Unlock()
	var kernelErr error
	if v.Check() == nil {
		kernelErr = v.syncKernel()
	}
	// The daemon's cache is written back even if the kernel reported a
	// failure: this is its last chance.
	err := errors.Join(kernelErr, v.syncCaches())
	v.settleOrLog()
	return err
}

// settleOrLog waits for the changes the remote sends in the background
// before the volume goes. One the server refused (a chmod, say) is
// logged: it is no reason to keep a volume mounted, unlike data that
// cannot be written back.
func (v *Volume) settleOrLog() {
	if err := v.settleRemote(); err != nil {
		klog.ErrorS(err, "The remote refused changes of this volume", "mountpoint", v.mountpoint)
	}
}

// Sync writes everything buffered for this volume to the remote and makes
// the remote durable, like syncfs(2) on the mount: first the kernel's
// dirty pages (they reach the daemon), then the daemon's page cache.
func (v *Volume) Sync() error {
	if err := v.syncKernel(); err != nil {
		return err
	}
	if err := v.syncCaches(); err != nil {
		return err
	}
	return v.settleRemote()
}

// syncKernel sends the kernel's dirty pages of the volume to the daemon
// (syncfs(2)) and returns any writeback error the kernel has not reported
// yet.
func (v *Volume) syncKernel() error {
	fd, err := unix.Open(v.mountpoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", v.mountpoint, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", v.mountpoint, err)
	}
	return nil
}

// stableAttr is the identity go-fuse gives the kernel for a remote file.
func (v *Volume) stableAttr(a *backend.Attr) fs.StableAttr {
	return fs.StableAttr{Mode: a.Mode & unix.S_IFMT, Ino: v.ino(a.Ino), Gen: a.Gen}
}

// ino keeps the remote's inode numbers, so hard links share one and tools
// that compare st_ino work. A volume is one directory tree of one file
// system, so the numbers are unique within it.
func (v *Volume) ino(remote uint64) uint64 { return remote }

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// Wait blocks until the session ends (unmounted, or aborted by the kernel).
func (v *Volume) Wait() { <-v.done }
