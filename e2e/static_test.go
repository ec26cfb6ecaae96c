//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Static provisioning stands in for csi-provisioner on clusters without its
// image (hack/local-cluster): the test calls the driver's own CreateVolume
// over the node plugin's socket, as the provisioner would, and binds the
// claim to a PersistentVolume made from the answer. The CSI calls are the
// same; only the Kubernetes objects are made by the test.

// driverName is the CSI driver name compiled into csi-goferfs.
const driverName = "goferfs.csi.dev"

// volumeSize is every test volume's requested capacity.
var volumeSize = resource.MustParse("64Mi")

// csiAccessMode maps a claim's access mode to the CSI one, as
// csi-provisioner does.
var csiAccessMode = map[corev1.PersistentVolumeAccessMode]csi.VolumeCapability_AccessMode_Mode{
	corev1.ReadWriteOnce:    csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
	corev1.ReadOnlyMany:     csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
	corev1.ReadWriteMany:    csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
	corev1.ReadWriteOncePod: csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
}

// createStaticClaim creates volume name through CreateVolume with params,
// a PersistentVolume for it pinned to the topology the driver reported, and
// claim name bound to that PV. The PV and the volume are deleted after the
// namespace, when no pod can be using them any more.
func (c *cluster) createStaticClaim(name string, params map[string]string, access corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	c.t.Helper()
	conn, err := grpc.NewClient("unix://"+c.csiEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatalf("E2E_CSI_ENDPOINT %s: %v", c.csiEndpoint, err)
	}
	defer conn.Close()
	ctrl := csi.NewControllerClient(conn)
	resp, err := ctrl.CreateVolume(c.ctx, &csi.CreateVolumeRequest{
		Name:          c.ns + "-" + name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: volumeSize.Value()},
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csiAccessMode[access]},
		}},
		Parameters: params,
	})
	if err != nil {
		c.t.Fatalf("CreateVolume %s on %s: %v", name, c.csiEndpoint, err)
	}
	vol := resp.GetVolume()
	pvName := c.ns + "-" + name
	c.afterNamespace(func(ctx context.Context) error {
		return c.deleteStaticVolume(ctx, pvName, vol.GetVolumeId())
	})

	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: volumeSize},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{access},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver:           driverName,
				VolumeHandle:     vol.GetVolumeId(),
				VolumeAttributes: vol.GetVolumeContext(),
			}},
			ClaimRef:     &corev1.ObjectReference{Namespace: c.ns, Name: name},
			NodeAffinity: nodeAffinity(vol.GetAccessibleTopology()),
		},
	}
	if _, err := c.client.CoreV1().PersistentVolumes().Create(c.ctx, pv, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	empty := ""
	pvc, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Create(c.ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &empty,
			VolumeName:       pvName,
			AccessModes:      []corev1.PersistentVolumeAccessMode{access},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: volumeSize}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return pvc
}

// nodeAffinity pins a PV to the nodes of the driver's accessible topology.
func nodeAffinity(topology []*csi.Topology) *corev1.VolumeNodeAffinity {
	var terms []corev1.NodeSelectorTerm
	for _, t := range topology {
		var reqs []corev1.NodeSelectorRequirement
		for k, v := range t.GetSegments() {
			reqs = append(reqs, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{v}})
		}
		terms = append(terms, corev1.NodeSelectorTerm{MatchExpressions: reqs})
	}
	if len(terms) == 0 {
		return nil
	}
	return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: terms}}
}

// deleteStaticVolume deletes the PV, waits until it is gone, then deletes
// the volume with DeleteVolume, as csi-provisioner does for a Delete PV.
func (c *cluster) deleteStaticVolume(ctx context.Context, pvName, volumeID string) error {
	err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pvName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete PV %s: %w", pvName, err)
	}
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("PV %s still exists: %w", pvName, err)
	}
	conn, err := grpc.NewClient("unix://"+c.csiEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := csi.NewControllerClient(conn).DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: volumeID}); err != nil {
		return fmt.Errorf("DeleteVolume %s: %w", volumeID, err)
	}
	return nil
}
