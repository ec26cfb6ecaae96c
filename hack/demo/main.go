// Command demo drives a running 'csi-goferfs serve' the way the kubelet and
// the external provisioner would, and shows where the data lands.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	endpoint := flag.String("endpoint", "", "CSI endpoint of csi-goferfs serve (unix:///path)")
	root := flag.String("root", "", "the server's --root, to show the remote side")
	work := flag.String("work", "", "directory for the staging and target paths")
	mode := flag.String("interop", "writethrough", "interopMode of the demo volume")
	flag.Parse()
	if err := run(*endpoint, *root, *work, *mode); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(endpoint, root, work, mode string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctrl, node := csi.NewControllerClient(conn), csi.NewNodeClient(conn)

	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	step("CreateVolume demo-volume (interopMode: %s)", mode)
	created, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name:               "demo-volume",
		VolumeCapabilities: []*csi.VolumeCapability{capability},
		Parameters:         map[string]string{"interopMode": mode},
	})
	if err != nil {
		return err
	}
	vol := created.GetVolume()
	id := vol.GetVolumeId()
	staging, target := filepath.Join(work, "staging"), filepath.Join(work, "pod-target")

	step("NodeStageVolume: one FUSE session at %s", staging)
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, VolumeCapability: capability,
		VolumeContext: vol.GetVolumeContext(),
	}); err != nil {
		return err
	}
	step("NodePublishVolume: bind mount at %s (what a pod sees)", target)
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: capability, VolumeContext: vol.GetVolumeContext(),
	}); err != nil {
		return err
	}

	msg := fmt.Sprintf("hello from csi-goferfs at %s\n", time.Now().Format(time.RFC3339))
	step("write %s/hello.txt through the mount", target)
	if err := writeSynced(filepath.Join(target, "hello.txt"), msg); err != nil {
		return err
	}
	remote := filepath.Join(root, id, "hello.txt")
	got, err := os.ReadFile(remote)
	if err != nil {
		return err
	}
	step("the remote %s holds: %q", remote, string(got))
	stats, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target})
	if err != nil {
		return err
	}
	for _, u := range stats.GetUsage() {
		step("NodeGetVolumeStats: %s used %d of %d", u.GetUnit(), u.GetUsed(), u.GetTotal())
	}

	step("NodeUnpublishVolume, NodeUnstageVolume (writes back, unmounts), DeleteVolume")
	if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		return err
	}
	if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		return err
	}
	if _, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("remote holds %q, want %q", got, msg)
	}
	step("done: the data path round trip works")
	return nil
}

func writeSynced(path, data string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
