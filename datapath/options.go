package datapath

import (
	"fmt"
	"strings"

	"github.com/csi-goferfs/csi-goferfs/cache"
)

// Mode is a volume's coherence contract with its remote; see
// shared/design/interop-modes.md ("The three modes").
type Mode string

const (
	// Exclusive: only this mount touches the remote. Everything is cached,
	// writes are buffered until fsync, O_SYNC, eviction or unmount.
	Exclusive Mode = "exclusive"
	// WriteThrough: data and metadata are cached, but every write and
	// namespace change reaches the remote before the call returns.
	WriteThrough Mode = "writethrough"
	// Shared: nothing is cached; every operation is coherent with other
	// writers of the remote.
	Shared Mode = "shared"
)

// Modes lists the valid modes in the order they are documented.
var Modes = []Mode{Exclusive, WriteThrough, Shared}

// ParseMode parses an interopMode value. The empty string is Exclusive.
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return Exclusive, nil
	}
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown interop mode %q: must be one of %s", s, modeList())
}

// IsExclusive reports whether m is Exclusive (the zero value is).
func (m Mode) IsExclusive() bool { return m == Exclusive || m == "" }

func modeList() string {
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// Options configures one mounted volume.
type Options struct {
	// Mode is the interop mode; the zero value means Exclusive.
	Mode Mode
	// ForcePageCache disables the host FD (FUSE passthrough) path: all
	// file data goes through the daemon.
	ForcePageCache bool
	// FsName is shown as the mount's source in /proc/self/mountinfo.
	FsName string
	// Debug logs every FUSE request.
	Debug bool
	// Budget bounds the daemon's page cache; nil means DefaultBudget(),
	// shared by every volume of the process (C3).
	Budget *cache.Budget
	// Observer, if not nil, is told the latency of every timed FUSE
	// operation (see Op). Nil costs nothing per request.
	Observer OpObserver
}
