package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// maxVolumeIDLen is the longest volume ID: the CSI minimum every CO
// supports, and well below NAME_MAX.
const maxVolumeIDLen = 128

// StorageClass parameters, which travel to the node in the volume context.
const (
	ParamInteropMode    = "interopMode"
	ParamForcePageCache = "forcePageCache"
)

// kubernetesParamPrefixes mark keys that Kubernetes itself adds; they are
// accepted and ignored: "csi.storage.k8s.io/" for the external-provisioner's
// PVC/PV metadata and the kubelet's pod info, "storage.kubernetes.io/" for
// the provisioner identity the external-provisioner writes into every
// PV's volume attributes (and so into NodeStageVolume's volume context).
var kubernetesParamPrefixes = []string{"csi.storage.k8s.io/", "storage.kubernetes.io/"}

func isKubernetesParam(k string) bool {
	for _, p := range kubernetesParamPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// checkVolumeID rejects any ID that is not a single, plain path component
// of [A-Za-z0-9._-], at most maxVolumeIDLen bytes and not starting with
// '.': such an ID can never name a path outside Root (no "..", '/', NUL),
// nor the hidden metadata directory.
func checkVolumeID(id string) error {
	switch {
	case id == "":
		return status.Error(codes.InvalidArgument, "volume_id is required")
	case len(id) > maxVolumeIDLen:
		return status.Errorf(codes.InvalidArgument, "volume_id is %d bytes long; the limit is %d", len(id), maxVolumeIDLen)
	case id[0] == '.':
		return status.Errorf(codes.InvalidArgument, "volume_id %q must not start with '.'", id)
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return !safeIDRune(r) }); i >= 0 {
		return status.Errorf(codes.InvalidArgument,
			"volume_id %q contains %q; allowed are letters, digits, '.', '_' and '-'", id, id[i])
	}
	return nil
}

func safeIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// volumeIDForName derives the volume ID from a CreateVolume name, so a
// retried CreateVolume finds the volume it made before. A name that is
// already a valid ID is used as is, which keeps the directories under Root
// recognisable ("pvc-<uid>" from Kubernetes); any other name is hashed.
// The name is stored in the volume's metadata, so a valid name that happens
// to equal another name's hash is detected as a conflict. A name with the
// prefix of 9P volume IDs is hashed too, so no local volume's ID is taken
// for a 9P one.
func volumeIDForName(name string) string {
	if checkVolumeID(name) == nil && !strings.HasPrefix(name, ninepIDPrefix) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256-" + hex.EncodeToString(sum[:])
}

// absPath rejects an empty or relative path in the request field field
// and returns it cleaned, so that one path has one spelling in the
// node's bookkeeping.
func absPath(field, path string) (string, error) {
	if path == "" {
		return "", status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if !filepath.IsAbs(path) {
		return "", status.Errorf(codes.InvalidArgument, "%s %q must be an absolute path", field, path)
	}
	if strings.ContainsRune(path, 0) {
		return "", status.Errorf(codes.InvalidArgument, "%s %q contains a NUL byte", field, path)
	}
	return filepath.Clean(path), nil
}

// volumeParams are a volume's settings, parsed from StorageClass
// parameters or from the volume context.
type volumeParams struct {
	Mode           datapath.Mode `json:"interopMode"`
	ForcePageCache bool          `json:"forcePageCache"`
	// Backend is "" for the local remote, Backend9P for a 9P server;
	// the other fields describe the server (ninep.go).
	Backend string `json:"backend,omitempty"`
	Server  string `json:"server,omitempty"`
	Export  string `json:"export,omitempty"`
	Msize   uint32 `json:"msize,omitempty"`
}

// parseParams parses the parameters or volume context m; field names the
// request field for error messages.
func parseParams(field string, m map[string]string) (volumeParams, error) {
	p := volumeParams{Mode: datapath.Exclusive}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same parameter on every retry
	for _, k := range keys {
		v := m[k]
		switch {
		case k == ParamInteropMode:
			mode, err := datapath.ParseMode(v)
			if err != nil {
				return p, status.Errorf(codes.InvalidArgument, "%s: %s %q is not valid; allowed values: %s",
					field, k, v, modeNames())
			}
			p.Mode = mode
		case k == ParamForcePageCache:
			switch v {
			case "true":
				p.ForcePageCache = true
			case "false":
				p.ForcePageCache = false
			default:
				return p, status.Errorf(codes.InvalidArgument, "%s: %s %q is not valid; allowed values: true, false",
					field, k, v)
			}
		case k == ParamBackend || k == ParamServer || k == ParamExport || k == ParamMsize:
			if err := parseNinepParam(field, k, v, &p); err != nil {
				return p, err
			}
		case isKubernetesParam(k):
		default:
			return p, status.Errorf(codes.InvalidArgument,
				"%s: unknown parameter %q; allowed parameters: %s (and %s* set by Kubernetes)",
				field, k, strings.Join([]string{ParamInteropMode, ParamForcePageCache, ParamBackend, ParamServer, ParamExport, ParamMsize}, ", "),
				strings.Join(kubernetesParamPrefixes, "*, "))
		}
	}
	return p, checkNinepParams(field, p)
}

func modeNames() string {
	names := make([]string, len(datapath.Modes))
	for i, m := range datapath.Modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// volumeContext is what the node needs to know about a volume; every value
// is spelled out so the node never depends on the controller's defaults.
func (p volumeParams) volumeContext() map[string]string {
	m := map[string]string{
		ParamInteropMode:    string(p.Mode),
		ParamForcePageCache: fmt.Sprint(p.ForcePageCache),
	}
	p.ninepContext(m)
	return m
}

// mountOptions are the data path options of volume id. The file system
// name makes the volume recognisable in the node's mount table.
func (p volumeParams) mountOptions(id string) datapath.Options {
	return datapath.Options{Mode: p.Mode, ForcePageCache: p.ForcePageCache, FsName: "goferfs:" + id}
}

// bindFlags are the mount flags a volume capability may carry: they are
// applied to each pod's bind mount, so only per-mount-point flags make sense.
var bindFlags = []string{
	"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
	"noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime",
	"strictatime", "nostrictatime",
}

// checkCapabilityShape rejects a capability that is missing required
// fields; field names it in the request.
func checkCapabilityShape(field string, c *csi.VolumeCapability) error {
	if c == nil {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if c.GetAccessMode() == nil || c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_UNKNOWN {
		return status.Errorf(codes.InvalidArgument, "%s.access_mode is required", field)
	}
	if _, known := csi.VolumeCapability_AccessMode_Mode_name[int32(c.GetAccessMode().GetMode())]; !known {
		return status.Errorf(codes.InvalidArgument, "%s.access_mode %d is not a known access mode", field, c.GetAccessMode().GetMode())
	}
	if c.GetBlock() == nil && c.GetMount() == nil {
		return status.Errorf(codes.InvalidArgument, "%s.access_type is required (mount)", field)
	}
	return nil
}

// capabilitySupported reports why a well-formed capability cannot be
// served for a volume with params p, or nil if it can.
func capabilitySupported(c *csi.VolumeCapability, p volumeParams) error {
	if c.GetBlock() != nil {
		return fmt.Errorf("block access is not supported: goferfs volumes are file systems (use access_type mount)")
	}
	m := c.GetMount()
	if m.GetFsType() != "" {
		return fmt.Errorf("fs_type %q is not supported: the volume is served by goferfs itself; leave fs_type empty", m.GetFsType())
	}
	if m.GetVolumeMountGroup() != "" {
		return fmt.Errorf("volume_mount_group is not supported")
	}
	for _, f := range m.GetMountFlags() {
		if !slices.Contains(bindFlags, f) {
			return fmt.Errorf("mount flag %q is not supported; allowed: %s", f, strings.Join(bindFlags, ", "))
		}
	}
	switch mode := c.GetAccessMode().GetMode(); mode {
	case csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER:
		// Only shared mode keeps no cache that another node's writes
		// could make stale (interop-modes.md).
		if p.Mode != datapath.Shared {
			return fmt.Errorf("access mode %s needs %s: %s (the volume has %s: %s)",
				mode, ParamInteropMode, datapath.Shared, ParamInteropMode, p.Mode)
		}
	}
	return nil
}

// checkCapability combines checkCapabilityShape and capabilitySupported
// for RPCs that must refuse an unsupported capability.
func checkCapability(field string, c *csi.VolumeCapability, p volumeParams) error {
	if err := checkCapabilityShape(field, c); err != nil {
		return err
	}
	if err := capabilitySupported(c, p); err != nil {
		return status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return nil
}

// readOnly reports whether a capability asks for a read-only mount.
func readOnly(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true
	}
	return slices.Contains(c.GetMount().GetMountFlags(), "ro")
}
