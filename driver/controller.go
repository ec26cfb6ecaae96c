package driver

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// controllerServer is the CSI controller service. For local volumes it runs
// on the node whose Root holds them; a 9P volume can be managed from any
// node (ninep_volume.go).
type controllerServer struct {
	csi.UnimplementedControllerServer
	d *Driver
}

var _ csi.ControllerServer = (*controllerServer)(nil)

// CreateVolume makes the directory Root/<id>, or a directory on a 9P
// server (createNinepVolume). The ID is derived from the name
// (volumeIDForName), so a retry finds the same volume. Capacity is
// recorded and reported back but not enforced: a volume may use all the
// free space of Root or of the server.
func (s *controllerServer) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	d := s.d
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities is required")
	}
	p, err := parseParams("parameters", req.GetParameters())
	if err != nil {
		return nil, err
	}
	for i, c := range req.GetVolumeCapabilities() {
		if err := checkCapability(fmt.Sprintf("volume_capabilities[%d]", i), c, p); err != nil {
			return nil, err
		}
	}
	capacity, err := requestedCapacity(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source is not supported: goferfs has no snapshots or clones")
	}
	if len(req.GetMutableParameters()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "mutable_parameters are not supported")
	}
	want := &volumeMeta{Name: name, CapacityBytes: capacity, Params: p}
	if p.Backend == Backend9P {
		// Reachable from every node, so any topology is satisfied.
		return d.createNinepVolume(ctx, want, req.GetCapacityRange())
	}
	if !d.satisfies(req.GetAccessibilityRequirements()) {
		return nil, status.Errorf(codes.ResourceExhausted,
			"accessibility_requirements: volumes of this controller live on node %s (%s=%s), which no requisite topology names",
			d.nodeID, TopologyKey, d.nodeID)
	}
	id := volumeIDForName(name)
	return runLocked(ctx, d, id, func() (*csi.CreateVolumeResponse, error) {
		m, err := d.createVolume(id, want, req.GetCapacityRange())
		if err != nil {
			return nil, err
		}
		return &csi.CreateVolumeResponse{Volume: &csi.Volume{
			VolumeId:           id,
			CapacityBytes:      m.CapacityBytes,
			VolumeContext:      m.Params.volumeContext(),
			AccessibleTopology: []*csi.Topology{{Segments: d.topology()}},
		}}, nil
	})
}

// createVolume creates local volume id as described by want, or returns
// the existing volume if it is compatible with want and cr.
//
// The metadata is written before the directory and removed after it, so a
// directory without metadata was never made by this driver and is neither
// adopted nor deleted.
func (d *Driver) createVolume(id string, want *volumeMeta, cr *csi.CapacityRange) (*volumeMeta, error) {
	if err := d.rootUsable(); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	have, err := d.readMeta(id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read metadata of volume %s: %v", id, err)
	}
	switch {
	case have == nil:
		if _, err := os.Lstat(d.volumeDir(id)); err == nil {
			return nil, status.Errorf(codes.AlreadyExists,
				"name %q: %s already exists but was not created by this driver", want.Name, d.volumeDir(id))
		}
		if err := d.writeMeta(id, want); err != nil {
			return nil, status.Errorf(codes.Internal, "write metadata of volume %s: %v", id, err)
		}
		have = want
	case have.Name != want.Name:
		return nil, status.Errorf(codes.AlreadyExists, "name %q: its volume ID %s belongs to volume %q", want.Name, id, have.Name)
	case have.Params != want.Params:
		return nil, status.Errorf(codes.AlreadyExists, "name %q: the volume exists with %s: %s, %s: %t",
			want.Name, ParamInteropMode, have.Params.Mode, ParamForcePageCache, have.Params.ForcePageCache)
	case !capacityFits(have.CapacityBytes, cr):
		return nil, status.Errorf(codes.AlreadyExists, "name %q: the volume exists with capacity %d bytes, outside capacity_range",
			want.Name, have.CapacityBytes)
	}
	// A retry after a crash may find the metadata but not the directory.
	if err := makeVolumeDir(d.volumeDir(id)); err != nil {
		return nil, status.Errorf(codes.Internal, "create volume %s: %v", id, err)
	}
	return have, nil
}

// makeVolumeDir creates a volume's directory, world-writable like a fresh
// file system's root would need to be for pods running as any user.
func makeVolumeDir(dir string) error {
	err := os.Mkdir(dir, 0o777)
	if errors.Is(err, os.ErrExist) {
		fi, lerr := os.Lstat(dir)
		if lerr == nil && fi.IsDir() {
			return nil
		}
		return fmt.Errorf("%s exists and is not a directory", dir)
	}
	if err != nil {
		return err
	}
	// The process umask applied to Mkdir.
	return os.Chmod(dir, 0o777)
}

// requestedCapacity returns the capacity to record for cr.
func requestedCapacity(cr *csi.CapacityRange) (int64, error) {
	req, lim := cr.GetRequiredBytes(), cr.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Error(codes.InvalidArgument, "capacity_range: required_bytes and limit_bytes must not be negative")
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d exceeds limit_bytes %d", req, lim)
	}
	return req, nil
}

// capacityFits reports whether an existing volume of capacity bytes
// satisfies cr.
func capacityFits(capacity int64, cr *csi.CapacityRange) bool {
	lim := cr.GetLimitBytes()
	return capacity >= cr.GetRequiredBytes() && (lim == 0 || capacity <= lim)
}

// satisfies reports whether volumes on this node meet the topology
// requirement r: some requisite topology must name this node. Preferred
// topologies are only preferences, so they never make CreateVolume fail.
func (d *Driver) satisfies(r *csi.TopologyRequirement) bool {
	if len(r.GetRequisite()) == 0 {
		return true
	}
	return d.namedIn(r.GetRequisite())
}

// namedIn reports whether one of ts is this node's topology.
func (d *Driver) namedIn(ts []*csi.Topology) bool {
	for _, t := range ts {
		if t.GetSegments()[TopologyKey] == d.nodeID {
			return true
		}
	}
	return false
}

// DeleteVolume removes the volume's directory, then its metadata. A volume
// without metadata was not created by this driver (or is already deleted)
// and is left alone. The metadata of a local volume, or of a 9P volume of
// the earlier scheme, is in Root; a 9P volume's ID names the server that
// holds its metadata.
func (s *controllerServer) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	return runLocked(ctx, d, id, func() (*csi.DeleteVolumeResponse, error) {
		if path := d.stagingPath(id); path != "" {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is staged on this node at %s", id, path)
		}
		m, err := d.readMeta(id)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "read metadata of volume %s: %v", id, err)
		}
		if m == nil {
			if r, ok, err := parseNinepVolumeID(id); ok {
				if err != nil {
					return nil, err
				}
				return &csi.DeleteVolumeResponse{}, d.deleteNinepVolumeByRef(ctx, id, r)
			}
			if _, err := os.Lstat(d.volumeDir(id)); err == nil {
				klog.InfoS("Not deleting a directory this driver did not create", "volumeID", id, "path", d.volumeDir(id))
			}
			return &csi.DeleteVolumeResponse{}, nil
		}
		if m.Params.Backend == Backend9P {
			if err := d.deleteNinepVolume(ctx, id, m.Params); err != nil {
				return nil, err
			}
		} else if err := os.RemoveAll(d.volumeDir(id)); err != nil {
			return nil, status.Errorf(codes.Internal, "delete volume %s: %v", id, err)
		}
		if err := d.removeMeta(id); err != nil {
			return nil, status.Errorf(codes.Internal, "delete metadata of volume %s: %v", id, err)
		}
		return &csi.DeleteVolumeResponse{}, nil
	})
}

// ValidateVolumeCapabilities confirms the capabilities a volume can serve.
// The volume's recorded parameters decide; a volume without metadata (made
// outside the driver) is judged by the request's volume context.
func (s *controllerServer) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities is required")
	}
	for i, c := range req.GetVolumeCapabilities() {
		if err := checkCapabilityShape(fmt.Sprintf("volume_capabilities[%d]", i), c); err != nil {
			return nil, err
		}
	}
	ctxParams, err := parseParams("volume_context", req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	reqParams, err := parseParams("parameters", req.GetParameters())
	if err != nil {
		return nil, err
	}
	p := ctxParams
	m, err := d.lookupVolume(ctx, id, ctxParams)
	if err != nil {
		return nil, err
	}
	if m != nil {
		p = m.Params
		if len(req.GetParameters()) > 0 && reqParams != p {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf(
				"parameters differ from the volume's: it has %s: %s, %s: %t",
				ParamInteropMode, p.Mode, ParamForcePageCache, p.ForcePageCache)}, nil
		}
	}
	for i, c := range req.GetVolumeCapabilities() {
		if err := capabilitySupported(c, p); err != nil {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf("volume_capabilities[%d]: %v", i, err)}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
		MutableParameters:  req.GetMutableParameters(),
	}}, nil
}

// lookupVolume returns the metadata of volume id (nil for a volume made
// outside the driver), or NotFound if its directory does not exist. A
// volume without metadata in Root or on the server its ID names is looked
// for where ctxParams, its volume context, say.
func (d *Driver) lookupVolume(ctx context.Context, id string, ctxParams volumeParams) (*volumeMeta, error) {
	notFound := status.Errorf(codes.NotFound, "volume %s does not exist", id)
	m, err := d.readMeta(id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read metadata of volume %s: %v", id, err)
	}
	if m == nil {
		r, ok, err := parseNinepVolumeID(id)
		if err != nil {
			return nil, err
		}
		if ok {
			m, exists, err := d.lookupNinepVolume(ctx, id, r)
			if err != nil {
				return nil, err
			}
			if !exists {
				return nil, notFound
			}
			return m, nil
		}
	}
	p := ctxParams
	if m != nil {
		p = m.Params
	}
	if p.Backend == Backend9P {
		// The earlier scheme, or a static volume: the directory is id.
		exists, err := d.ninepVolumeExists(ctx, id, p)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, notFound
		}
	} else if fi, err := os.Lstat(d.volumeDir(id)); err != nil || !fi.IsDir() {
		return nil, notFound
	}
	return m, nil
}

// GetCapacity reports the free space of Root, or zero for parameters,
// capabilities or a topology this node cannot serve. A 9P server's free
// space is the same from every node, so topology does not matter for it.
func (s *controllerServer) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	d := s.d
	p, err := parseParams("parameters", req.GetParameters())
	if err != nil {
		return nil, err
	}
	for i, c := range req.GetVolumeCapabilities() {
		if err := checkCapabilityShape(fmt.Sprintf("volume_capabilities[%d]", i), c); err != nil {
			return nil, err
		}
		if capabilitySupported(c, p) != nil {
			return &csi.GetCapacityResponse{}, nil
		}
	}
	if p.Backend == Backend9P {
		avail, err := d.ninepCapacity(ctx, p)
		if err != nil {
			return nil, err
		}
		return &csi.GetCapacityResponse{AvailableCapacity: avail}, nil
	}
	if t := req.GetAccessibleTopology(); t != nil && !d.namedIn([]*csi.Topology{t}) {
		return &csi.GetCapacityResponse{}, nil
	}
	if err := d.rootUsable(); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.root, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", d.root, err)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: int64(st.Bavail) * blockSize(&st)}, nil
}

// blockSize is the unit of a statfs result's block counts.
func blockSize(st *unix.Statfs_t) int64 {
	if st.Frsize > 0 {
		return st.Frsize
	}
	return st.Bsize
}

func (s *controllerServer) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) is enforced by
		// the node service.
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}
