package ninep

import "github.com/csi-goferfs/csi-goferfs/backend"

// MarkOwnerRefused makes f behave as if the server had refused a deferred
// owner change made through it: the servers the tests start run as root
// and refuse no chown, so the tests cannot make one fail.
func MarkOwnerRefused(f backend.File) {
	fl := f.(*file)
	fl.fsys.mu.Lock()
	fl.ownerRefused = true
	fl.fsys.mu.Unlock()
}
