package driver

import (
	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// Mounter mounts a volume's data path. The node service knows the FUSE
// file system only through this interface, so tests can replace it.
type Mounter interface {
	// Mount serves the directory dir at target and returns once the
	// mount is live.
	Mount(dir, target string, opts datapath.Options) (MountedVolume, error)
}

// MountedVolume is one live data-path mount.
type MountedVolume interface {
	// Unmount writes back all dirty data, then unmounts. If writeback
	// fails it returns the error and the volume stays mounted.
	Unmount() error
	// Release writes back all dirty data and leaves the volume mounted:
	// the session ends when this process exits, and the next process
	// mounts the volume again on top of the dead mount.
	Release() error
	// Check reports nil while the volume is being served, else why not.
	Check() error
}

// FUSEMounter mounts volumes with the FUSE data path of package datapath.
type FUSEMounter struct {
	// Budget is the node-wide page cache budget shared by every volume;
	// nil means datapath.DefaultBudget().
	Budget *cache.Budget
}

var (
	_ Mounter  = FUSEMounter{}
	_ statser  = (*datapath.Volume)(nil)
	_ budgeter = FUSEMounter{}
)

// Mount implements Mounter with datapath.Mount.
func (m FUSEMounter) Mount(dir, target string, opts datapath.Options) (MountedVolume, error) {
	if opts.Budget == nil {
		opts.Budget = m.Budget
	}
	v, err := datapath.Mount(dir, target, opts)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// CacheBudget returns the page cache budget that the volumes it mounts
// share, for the metrics.
func (m FUSEMounter) CacheBudget() *cache.Budget {
	if m.Budget == nil {
		return datapath.DefaultBudget()
	}
	return m.Budget
}
