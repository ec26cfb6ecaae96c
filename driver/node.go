package driver

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	"k8s.io/mount-utils"
)

// nodeServer is the CSI node service.
type nodeServer struct {
	csi.UnimplementedNodeServer
	d *Driver
}

var _ csi.NodeServer = (*nodeServer)(nil)

// stagedVolume is a volume this process staged: one FUSE session at path.
type stagedVolume struct {
	id     string
	path   string
	params volumeParams
	vol    MountedVolume
	// targets are the bind mounts of path, by target path. Guarded by
	// Driver.mu.
	targets map[string]publishedTarget
}

// publishedTarget is how a volume is bind-mounted at one target path.
type publishedTarget struct {
	ReadOnly   bool                                 `json:"readOnly"`
	Flags      []string                             `json:"flags,omitempty"`
	AccessMode csi.VolumeCapability_AccessMode_Mode `json:"accessMode"`
}

func (t publishedTarget) equal(u publishedTarget) bool {
	return t.ReadOnly == u.ReadOnly && t.AccessMode == u.AccessMode && slices.Equal(t.Flags, u.Flags)
}

// mountOptions are the options of the bind mount; mount-utils remounts to
// apply anything beyond "bind".
func (t publishedTarget) mountOptions() []string {
	opts := []string{"bind"}
	for _, f := range t.Flags {
		if f != "ro" && f != "rw" {
			opts = append(opts, f)
		}
	}
	if t.ReadOnly {
		opts = append(opts, "ro")
	}
	return opts
}

func (s *nodeServer) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	path, err := absPath("staging_target_path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	if err := checkCapabilityShape("volume_capability", req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	p, err := parseParams("volume_context", req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	if err := checkCapability("volume_capability", req.GetVolumeCapability(), p); err != nil {
		return nil, err
	}
	return runLocked(ctx, d, id, func() (*csi.NodeStageVolumeResponse, error) {
		return &csi.NodeStageVolumeResponse{}, d.stage(id, path, p)
	})
}

// stage mounts volume id at path, once.
func (d *Driver) stage(id, path string, p volumeParams) error {
	if st := d.lookup(id); st != nil {
		if st.path != path {
			return status.Errorf(codes.AlreadyExists, "volume %s is already staged at %s", id, st.path)
		}
		if st.params != p {
			return status.Errorf(codes.AlreadyExists, "volume %s is already staged with %s: %s, %s: %t",
				id, ParamInteropMode, st.params.Mode, ParamForcePageCache, st.params.ForcePageCache)
		}
		return nil
	}
	if owner := d.pathOwner(path); owner != "" {
		return status.Errorf(codes.FailedPrecondition, "staging_target_path %s is in use by volume %s", path, owner)
	}
	d.mu.Lock()
	managed, owner := d.nestedPathLocked(path)
	d.mu.Unlock()
	if managed != "" {
		return status.Errorf(codes.InvalidArgument, "staging_target_path %s overlaps %s of volume %s", path, managed, owner)
	}
	dir, err := d.volumeSource(id, p)
	if err != nil {
		return err
	}
	if err := d.prepareMountPoint("staging_target_path", path); err != nil {
		return err
	}
	vol, err := d.mountVolume(id, dir, path, p)
	if err != nil {
		return mountError(id, path, p, err)
	}
	st := &stagedVolume{id: id, path: path, params: p, vol: vol, targets: map[string]publishedTarget{}}
	d.mu.Lock()
	d.staged[id] = st
	d.mu.Unlock()
	d.saveState(st)
	return nil
}

// mountVolume mounts volume id from dir at path, with its operations
// counted in the metrics. The volume's series go again if the mount fails.
func (d *Driver) mountVolume(id, dir, path string, p volumeParams) (MountedVolume, error) {
	opts := p.mountOptions(id)
	opts.Observer = d.metrics.observer(id)
	var vol MountedVolume
	var err error
	if p.Backend == Backend9P {
		vol, err = d.mountNinep(id, path, opts, p)
	} else {
		vol, err = d.mounter.Mount(dir, path, opts)
	}
	if err != nil {
		d.metrics.forget(id)
		return nil, err
	}
	return vol, nil
}

// existingVolumeDir returns the directory of volume id, or NotFound. The
// directory itself must not be a symlink: it could point anywhere.
func (d *Driver) existingVolumeDir(id string) (string, error) {
	dir := d.volumeDir(id)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", status.Errorf(codes.NotFound, "volume %s does not exist", id)
	case err != nil:
		return "", status.Errorf(codes.Internal, "check volume %s: %v", id, err)
	case !fi.IsDir():
		return "", status.Errorf(codes.NotFound, "volume %s does not exist: %s is not a directory", id, dir)
	}
	return dir, nil
}

// prepareMountPoint makes path (the request field field) a directory that
// is not a mount point. A mount point whose FUSE session is gone (left by a
// previous process) is unmounted; a live one is refused.
func (d *Driver) prepareMountPoint(field, path string) error {
	// statfs, unlike stat, always reaches the FUSE server: the kernel may
	// answer stat from its attribute cache long after the server died.
	var sfs unix.Statfs_t
	err := unix.Statfs(path, &sfs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(path, 0o750); err != nil {
			return status.Errorf(codes.Internal, "create %s %s: %v", field, path, err)
		}
		return nil
	case mount.IsCorruptedMnt(err):
		klog.InfoS("Unmounting a dead mount", "path", path, "err", err)
		if err := d.mount.Unmount(path); err != nil {
			return status.Errorf(codes.Internal, "unmount dead mount at %s %s: %v", field, path, err)
		}
	case err != nil:
		return status.Errorf(codes.Internal, "check %s %s: %v", field, path, err)
	}
	mounted, err := d.mount.IsMountPoint(path)
	if err != nil {
		return status.Errorf(codes.Internal, "check %s %s: %v", field, path, err)
	}
	if mounted {
		return status.Errorf(codes.FailedPrecondition, "%s %s is already a mount point", field, path)
	}
	return nil
}

func (s *nodeServer) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	path, err := absPath("staging_target_path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	return runLocked(ctx, d, id, func() (*csi.NodeUnstageVolumeResponse, error) {
		return &csi.NodeUnstageVolumeResponse{}, d.unstage(id, path)
	})
}

// unstage writes back and unmounts volume id at path and removes path.
func (d *Driver) unstage(id, path string) error {
	switch st := d.lookup(id); {
	case st != nil && st.path == path:
		d.mu.Lock()
		targets := slices.Sorted(maps.Keys(st.targets))
		d.mu.Unlock()
		if len(targets) > 0 {
			return status.Errorf(codes.FailedPrecondition, "volume %s is still published at %v", id, targets)
		}
		if err := st.vol.Unmount(); err != nil {
			return status.Errorf(codes.Internal, "unmount volume %s at %s: %v; it stays staged so no data is lost", id, path, err)
		}
		d.mu.Lock()
		delete(d.staged, id)
		d.mu.Unlock()
		d.metrics.forget(id)
		d.removeState(id)
	case st == nil:
		d.removeState(id) // a record whose restore failed
	}
	if owner := d.pathOwner(path); owner != "" {
		klog.InfoS("Volume is not staged here; leaving the mount alone", "volumeID", id, "path", path, "owner", owner)
		return nil
	}
	if err := d.cleanupMountPoint(path); err != nil {
		return status.Errorf(codes.Internal, "clean up staging_target_path %s: %v", path, err)
	}
	return nil
}

func (s *nodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	target, err := absPath("target_path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	c := req.GetVolumeCapability()
	if err := checkCapabilityShape("volume_capability", c); err != nil {
		return nil, err
	}
	p, err := parseParams("volume_context", req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	if err := checkCapability("volume_capability", c, p); err != nil {
		return nil, err
	}
	if req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.FailedPrecondition, "staging_target_path is required: volumes are staged first (STAGE_UNSTAGE_VOLUME)")
	}
	staging, err := absPath("staging_target_path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	want := publishedTarget{
		ReadOnly:   req.GetReadonly() || readOnly(c),
		Flags:      c.GetMount().GetMountFlags(),
		AccessMode: c.GetAccessMode().GetMode(),
	}
	return runLocked(ctx, d, id, func() (*csi.NodePublishVolumeResponse, error) {
		return &csi.NodePublishVolumeResponse{}, d.publish(id, staging, target, p, want)
	})
}

// publish bind-mounts the staged volume id at target.
func (d *Driver) publish(id, staging, target string, p volumeParams, want publishedTarget) error {
	st := d.lookup(id)
	if st == nil || st.path != staging {
		if _, err := d.volumeSource(id, p); err != nil {
			return err
		}
		return status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", id, staging)
	}
	if st.params != p {
		return status.Errorf(codes.FailedPrecondition, "volume_context: volume %s is staged with %s: %s, %s: %t",
			id, ParamInteropMode, st.params.Mode, ParamForcePageCache, st.params.ForcePageCache)
	}
	if done, err := d.checkPublishable(st, target, want); done || err != nil {
		return err
	}
	if err := d.prepareMountPoint("target_path", target); err != nil {
		return err
	}
	if err := d.mount.Mount(staging, target, "", want.mountOptions()); err != nil {
		return status.Errorf(codes.Internal, "bind-mount volume %s at %s: %v", id, target, err)
	}
	d.mu.Lock()
	st.targets[target] = want
	d.mu.Unlock()
	d.saveState(st)
	return nil
}

// checkPublishable refuses a publish of st at target that conflicts with
// how st or target are already used. It reports done if st is already
// published at target just as wanted.
func (d *Driver) checkPublishable(st *stagedVolume, target string, want publishedTarget) (done bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if have, ok := st.targets[target]; ok {
		if !have.equal(want) {
			return false, status.Errorf(codes.AlreadyExists,
				"volume %s is already published at %s with readonly=%t, access mode %s, mount flags %v",
				st.id, target, have.ReadOnly, have.AccessMode, have.Flags)
		}
		return true, nil
	}
	if owner := d.pathOwnerLocked(target); owner != "" {
		return false, status.Errorf(codes.AlreadyExists, "target_path %s is in use by volume %s", target, owner)
	}
	if managed, owner := d.nestedPathLocked(target); managed != "" {
		return false, status.Errorf(codes.InvalidArgument, "target_path %s overlaps %s of volume %s", target, managed, owner)
	}
	for other, t := range st.targets {
		if want.AccessMode == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER ||
			t.AccessMode == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
			return false, status.Errorf(codes.FailedPrecondition,
				"volume %s is published at %s and access mode SINGLE_NODE_SINGLE_WRITER allows one target only", st.id, other)
		}
	}
	return false, nil
}

func (s *nodeServer) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	target, err := absPath("target_path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	return runLocked(ctx, d, id, func() (*csi.NodeUnpublishVolumeResponse, error) {
		return &csi.NodeUnpublishVolumeResponse{}, d.unpublish(id, target)
	})
}

// unpublish unmounts target and removes it. A dead mount (its FUSE session
// gone) is unmounted like a live one, and so is every mount stacked there
// by restores (restoreTarget).
func (d *Driver) unpublish(id, target string) error {
	if owner := d.pathOwner(target); owner != "" && owner != id {
		klog.InfoS("Volume is not published here; leaving the other volume's mount alone",
			"volumeID", id, "path", target, "owner", owner)
		return nil
	}
	if d.stagingPath(id) == target {
		// Unmounting it would end the volume's FUSE session while the
		// volume is still staged.
		return status.Errorf(codes.InvalidArgument, "target_path %s is the staging path of volume %s", target, id)
	}
	if err := d.cleanupMountPoint(target); err != nil {
		return status.Errorf(codes.Internal, "clean up target_path %s: %v", target, err)
	}
	if st := d.lookup(id); st != nil {
		d.mu.Lock()
		delete(st.targets, target)
		d.mu.Unlock()
		d.saveState(st)
	}
	return nil
}

// lookup returns the staged volume id, or nil.
func (d *Driver) lookup(id string) *stagedVolume {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.staged[id]
}

// stagingPath returns where volume id is staged by this process, or "".
func (d *Driver) stagingPath(id string) string {
	if st := d.lookup(id); st != nil {
		return st.path
	}
	return ""
}

// pathOwner returns the staged volume that uses path as its staging path
// or as a target, or "".
func (d *Driver) pathOwner(path string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pathOwnerLocked(path)
}

// nestedPathLocked returns a path the node manages (a staging path or a
// target) that contains path or lies inside it, and its volume; "" if none.
// Nested mount points would make one volume's unmount fail on, or hide,
// another's, and creating a mount point inside a FUSE volume writes into a
// user's data.
//
// Preconditions:
//   - d.mu is held.
func (d *Driver) nestedPathLocked(path string) (managed, owner string) {
	inside := func(a, b string) bool { // a strictly inside b
		return strings.HasPrefix(a, b+"/") || (b == "/" && a != "/")
	}
	for id, st := range d.staged {
		paths := []string{st.path}
		for t := range st.targets {
			paths = append(paths, t)
		}
		for _, m := range paths {
			if inside(path, m) || inside(m, path) {
				return m, id
			}
		}
	}
	return "", ""
}

func (d *Driver) pathOwnerLocked(path string) string {
	for id, st := range d.staged {
		if _, ok := st.targets[path]; ok || st.path == path {
			return id
		}
	}
	return ""
}
