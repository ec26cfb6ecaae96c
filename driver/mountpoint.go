package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// maxStackedMounts bounds how many mounts cleanupMountPoint removes from
// one path. A restore stacks one bind per restart of the node plugin (see
// restoreTarget); more than this means something else keeps mounting there.
const maxStackedMounts = 64

// cleanupMountPoint unmounts every mount at path, top first, and removes
// the directory. Unlike mount-utils' CleanupMountPoint it does not stop
// after one unmount: a target that outlived restarts of the node plugin
// holds the live bind on top of its dead predecessors.
func (d *Driver) cleanupMountPoint(path string) error {
	for range maxStackedMounts {
		n, err := d.mountsAt(path)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		}
		if err := d.mount.Unmount(path); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s is still a mount point after %d unmounts", path, maxStackedMounts)
}

// mountsAt counts the mounts whose mount point is path, from the mount
// table rather than stat(2): a dead FUSE mount answers stat with ENOTCONN.
func (d *Driver) mountsAt(path string) (int, error) {
	// The table holds resolved paths. Resolve only the parent: path itself
	// may be a dead mount.
	parent, err := filepath.EvalSymlinks(filepath.Dir(path))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	resolved := filepath.Join(parent, filepath.Base(path))
	mps, err := d.mount.List()
	if err != nil {
		return 0, fmt.Errorf("read the mount table: %w", err)
	}
	n := 0
	for _, mp := range mps {
		if mp.Path == resolved {
			n++
		}
	}
	return n, nil
}
