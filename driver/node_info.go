package driver

import (
	"context"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeGetVolumeStats reports the usage of a staged volume, seen through
// volume_path (its staging path or one of its targets). The relative paths
// some COs send for unknown volumes answer NotFound, not InvalidArgument.
func (s *nodeServer) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	d := s.d
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	if owner := d.pathOwner(filepath.Clean(path)); owner != id {
		if d.lookup(id) == nil {
			return nil, status.Errorf(codes.NotFound, "volume %s is not staged on this node", id)
		}
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at volume_path %s", id, path)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs volume_path %s: %v", path, err)
	}
	bs := blockSize(&st)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{
			Unit:      csi.VolumeUsage_BYTES,
			Total:     int64(st.Blocks) * bs,
			Available: int64(st.Bavail) * bs,
			Used:      int64(st.Blocks-min(st.Bfree, st.Blocks)) * bs,
		},
		{
			Unit:      csi.VolumeUsage_INODES,
			Total:     int64(st.Files),
			Available: int64(st.Ffree),
			Used:      int64(st.Files - min(st.Ffree, st.Files)),
		},
	}}, nil
}

// Health reasons, CamelCase for machines as the spec asks.
const (
	reasonSessionEnded    = "FUSESessionEnded"
	reasonVolumeDirGone   = "VolumeDirectoryMissing"
	reasonStorageUnusable = "StorageUnusable"
)

// NodeGetVolumeHealth reports a volume inaccessible when its FUSE session
// no longer serves or its directory is gone. It replaces the VOLUME_CONDITION
// of NodeGetVolumeStats, which CSI 1.13 removed.
func (s *nodeServer) NodeGetVolumeHealth(_ context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	d := s.d
	id := req.GetVolumeId()
	if err := checkVolumeID(id); err != nil {
		return nil, err
	}
	if path := req.GetVolumePublishPath(); path != "" {
		if _, err := absPath("volume_publish_path", path); err != nil {
			return nil, err
		}
	}
	if path := req.GetStagingTargetPath(); path != "" {
		if _, err := absPath("staging_target_path", path); err != nil {
			return nil, err
		}
	}
	h := &csi.VolumeHealth{VolumeId: id}
	unhealthy := func(reason, msg string) {
		h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: reason, Message: msg,
		})
	}
	st := d.lookup(id)
	if _, err := d.existingVolumeDir(id); err != nil {
		if st == nil {
			return nil, err
		}
		unhealthy(reasonVolumeDirGone, status.Convert(err).Message())
	}
	if st != nil {
		if err := st.vol.Check(); err != nil {
			unhealthy(reasonSessionEnded, "the FUSE session serving the volume ended: "+err.Error())
		}
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// NodeGetStorageHealth reports the storage unreachable when Root or the
// FUSE device is unusable, the same test as Probe.
func (s *nodeServer) NodeGetStorageHealth(context.Context, *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	resp := &csi.NodeGetStorageHealthResponse{}
	if err := s.d.usable(); err != nil {
		resp.BackendHealth = append(resp.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: csi.StorageHealthErrorType_STORAGE_UNREACHABLE, Reason: reasonStorageUnusable, Message: err.Error(),
		})
	}
	return resp, nil
}

func (s *nodeServer) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             s.d.nodeID,
		AccessibleTopology: &csi.Topology{Segments: s.d.topology()},
	}, nil
}

func (s *nodeServer) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, c := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		resp.Capabilities = append(resp.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}
