//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The tests look at a node from a privileged pod in the node's PID
// namespace: /proc/<kubelet>/mountinfo lists the mounts the kubelet sees
// (the FUSE staging mount and the bind mounts into pods) and
// /proc/<kubelet>/root is the node's file system, with the volumes' remote
// directories. Nothing of the node is mounted into the pod, so it holds no
// reference to a volume's mounts. This works the same on a kind node (a
// container) and on a host.

var inspectorCount atomic.Int64

// onNode runs script on node as described above and returns its output.
// $K in the script is the node's kubelet PID.
func (c *cluster) onNode(node, script string) string {
	c.t.Helper()
	name := fmt.Sprintf("inspect-%d", inspectorCount.Add(1))
	privileged := true
	p := c.pod(name, "", node, `set -e; K=$(pidof kubelet); [ -n "$K" ] || { echo "no kubelet process" >&2; exit 1; }; `+script)
	p.Spec.Volumes = nil
	p.Spec.Containers[0].VolumeMounts = nil
	p.Spec.HostPID = true
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
	out := c.run(p)
	// Its logs are read; the pod itself is of no further use.
	_ = c.client.CoreV1().Pods(c.ns).Delete(c.ctx, name, metav1.DeleteOptions{})
	return out
}

// remoteFile returns the content of file in the remote directory of
// volumeID on node: what the driver wrote back, bypassing every cache.
func (c *cluster) remoteFile(node, volumeID, file string) string {
	c.t.Helper()
	return c.onNode(node, fmt.Sprintf("cat /proc/$K/root%s/%s/%s", c.volumeRoot, volumeID, file))
}

// mount is one line of mountinfo.
type mount struct {
	dev, point, fstype, source string
}

// staging reports whether m is a volume's staging mount (the kubelet's
// .../plugins/kubernetes.io/csi/<driver>/<hash>/globalmount).
func (m mount) staging() bool {
	return strings.Contains(m.point, "/plugins/kubernetes.io/csi/") && strings.HasSuffix(m.point, "/globalmount")
}

// published reports whether m is a volume's bind mount into a pod
// (.../pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount).
func (m mount) published() bool {
	return strings.Contains(m.point, "/volumes/kubernetes.io~csi/") && strings.HasSuffix(m.point, "/mount")
}

// parseMountinfo parses /proc/PID/mountinfo (proc(5)).
func parseMountinfo(s string) []mount {
	var out []mount
	for _, line := range lines(s) {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mount{dev: f[2], point: unescapeMountinfo(f[4]), fstype: f[sep+1], source: unescapeMountinfo(f[sep+2])})
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// volumeMounts returns the node's mounts of volumeID's FUSE file system
// (the driver names its source goferfs:<volume ID>), and every bind mount of
// the kubelet's pod volume directories whatever its source.
func (c *cluster) volumeMounts(node, volumeID string) (volume, podVolumes []mount) {
	c.t.Helper()
	for _, m := range parseMountinfo(c.onNode(node, "cat /proc/$K/mountinfo")) {
		if m.source == "goferfs:"+volumeID {
			volume = append(volume, m)
		}
		if m.published() {
			podVolumes = append(podVolumes, m)
		}
	}
	return volume, podVolumes
}

// boundVolume waits until claim is bound and returns its CSI volume ID.
func (c *cluster) boundVolume(claim string) string {
	c.t.Helper()
	var id string
	c.poll("claim "+claim+" to be bound", func(ctx context.Context) (bool, error) {
		pvc, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimBound {
			return false, err
		}
		pv, err := c.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pv.Spec.CSI == nil {
			return false, fmt.Errorf("PV %s of claim %s is not a CSI volume", pv.Name, claim)
		}
		id = pv.Spec.CSI.VolumeHandle
		return true, nil
	})
	return id
}
