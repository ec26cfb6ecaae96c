package driver

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/mount-utils"
)

// The FUSE sessions die with the process that serves them, but the CO
// still believes the volumes are staged and published: the kubelet does
// not stage again after a restart. So the node records each staged volume
// in StateDir, and the next process mounts it again at the same staging
// path and re-binds its targets. Pods that start after that (or restart)
// see a working volume, and so do running containers whose volume mount
// has mountPropagation HostToContainer (restoreTarget); other running
// containers keep the old mount and see ENOTCONN until they restart.

// stateRecord is the record of one staged volume.
type stateRecord struct {
	VolumeID    string                     `json:"volumeID"`
	StagingPath string                     `json:"stagingPath"`
	Params      volumeParams               `json:"params"`
	Targets     map[string]publishedTarget `json:"targets,omitempty"`
}

func (d *Driver) stateFile(id string) string {
	return filepath.Join(d.stateDir, "staged", id+".json")
}

// saveState records st. A failure is logged, not returned: the volume is
// mounted and usable, only a restart would not restore it.
func (d *Driver) saveState(st *stagedVolume) {
	if d.stateDir == "" {
		return
	}
	d.mu.Lock()
	rec := stateRecord{VolumeID: st.id, StagingPath: st.path, Params: st.params, Targets: maps.Clone(st.targets)}
	d.mu.Unlock()
	if err := writeJSON(d.stateFile(st.id), &rec); err != nil {
		klog.ErrorS(err, "Record staged volume; it will not be restored after a restart", "volumeID", st.id)
	}
}

func (d *Driver) removeState(id string) {
	if d.stateDir == "" {
		return
	}
	if err := removeFile(d.stateFile(id)); err != nil {
		klog.ErrorS(err, "Remove record of unstaged volume", "volumeID", id)
	}
}

// restore mounts again every volume recorded in StateDir. It runs before
// the server accepts RPCs. A volume that cannot be restored keeps its
// record, so the next start tries again, and NodeUnstageVolume removes it.
func (d *Driver) restore() {
	if d.stateDir == "" {
		return
	}
	dir := filepath.Join(d.stateDir, "staged")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			klog.ErrorS(err, "Read staged volume records", "dir", dir)
		}
		return
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkVolumeID(id) != nil {
			continue // a temporary file, or not ours
		}
		var rec stateRecord
		if _, err := readJSON(filepath.Join(dir, e.Name()), &rec); err != nil {
			klog.ErrorS(err, "Read staged volume record", "volumeID", id)
			continue
		}
		if err := d.restoreVolume(id, &rec); err != nil {
			klog.ErrorS(err, "Restore staged volume", "volumeID", id, "stagingPath", rec.StagingPath)
			continue
		}
		klog.InfoS("Restored staged volume", "volumeID", id, "stagingPath", rec.StagingPath, "targets", len(rec.Targets))
	}
}

// restoreVolume stages rec again and re-binds those of its targets that
// can be; a target that cannot is dropped and logged.
func (d *Driver) restoreVolume(id string, rec *stateRecord) error {
	if rec.VolumeID != id || !filepath.IsAbs(rec.StagingPath) {
		return fmt.Errorf("malformed record")
	}
	if !parentExists(rec.StagingPath) {
		// The CO cleaned up the staging path's directory: nothing will
		// ever use this volume here again.
		d.removeState(id)
		return fmt.Errorf("the parent of the staging path is gone; record dropped")
	}
	vdir, err := d.volumeSource(id, rec.Params)
	if err != nil {
		return err
	}
	if err := d.prepareMountPoint("staging_target_path", rec.StagingPath); err != nil {
		return err
	}
	vol, err := d.mountVolume(id, vdir, rec.StagingPath, rec.Params)
	if err != nil {
		return err
	}
	st := &stagedVolume{id: id, path: rec.StagingPath, params: rec.Params, vol: vol, targets: map[string]publishedTarget{}}
	for target, t := range rec.Targets {
		// A missing parent means the pod is gone: recreating its
		// directories would leave a mount nobody unpublishes.
		if !filepath.IsAbs(target) || !parentExists(target) {
			klog.InfoS("Not restoring a target whose directory is gone", "volumeID", id, "target", target)
			continue
		}
		if err := d.restoreTarget(rec.StagingPath, target, t); err != nil {
			klog.ErrorS(err, "Restore target", "volumeID", id, "target", target)
			continue
		}
		st.targets[target] = t
	}
	d.mu.Lock()
	d.staged[id] = st
	d.mu.Unlock()
	d.saveState(st)
	return nil
}

// restoreTarget binds the restored staging path at target. The previous
// process left a dead mount there (Run keeps the mounts when it stops, and
// a crash leaves them too). The new bind goes on top of it rather than in
// its place: a running container's copy of the target (a slave of it, with
// mountPropagation HostToContainer) receives the mounts made on top of the
// mount it copied, and nothing else. Unmounting the dead one first would
// leave the container's copy dead until the container restarts. The dead
// layers go when the target is unpublished (cleanupMountPoint).
func (d *Driver) restoreTarget(staging, target string, t publishedTarget) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(target, &sfs); !mount.IsCorruptedMnt(err) {
		if err := d.prepareMountPoint("target_path", target); err != nil {
			return err
		}
	}
	return d.mount.Mount(staging, target, "", t.mountOptions())
}

func parentExists(path string) bool {
	fi, err := os.Stat(filepath.Dir(path))
	return err == nil && fi.IsDir()
}
