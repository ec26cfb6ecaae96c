//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestTwoPodsShareOneStagingMount: for each interop mode, two pods on one
// node use the same volume at once. The kubelet stages the volume once
// (one FUSE mount, so one session and one cache) and bind-mounts it into
// both, and each pod reads what the other wrote while both run.
func TestTwoPodsShareOneStagingMount(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			c.createPVC("data", mode, corev1.ReadWriteOnce)
			// Each pod writes its own file, waits for the other's, and
			// stays up so the mounts can be inspected.
			script := func(mine, theirs string) string {
				return fmt.Sprintf(`printf %[1]s > /data/%[1]s
until [ "$(cat /data/%[2]s 2>/dev/null)" = %[2]s ]; do sleep 0.2; done
echo saw %[2]s; exec sleep 3600`, mine, theirs)
			}
			c.start(c.pod("a", "data", "", script("from-a", "from-b")))
			node := c.waitPod("a", corev1.PodRunning).Spec.NodeName
			c.start(c.pod("b", "data", node, script("from-b", "from-a")))
			for _, p := range []struct{ name, want string }{{"a", "saw from-b"}, {"b", "saw from-a"}} {
				c.poll("pod "+p.name+" to see the other's file", func(ctx context.Context) (bool, error) {
					return strings.TrimSpace(c.logs(p.name)) == p.want, nil
				})
			}

			id := c.boundVolume("data")
			mounts, _ := c.volumeMounts(node, id)
			var staging, published []mount
			for _, m := range mounts {
				switch {
				case m.staging():
					staging = append(staging, m)
				case m.published():
					published = append(published, m)
				default:
					t.Errorf("volume %s mounted at %s, neither a staging nor a pod's volume path", id, m.point)
				}
			}
			if len(staging) != 1 || len(published) != 2 {
				t.Fatalf("volume %s: %d staging and %d pod mounts, want 1 and 2: %+v", id, len(staging), len(published), mounts)
			}
			for _, m := range published {
				if m.dev != staging[0].dev {
					t.Errorf("pod mount %s is device %s, the staging mount %s: not the same FUSE session", m.point, m.dev, staging[0].dev)
				}
				if !strings.HasPrefix(m.fstype, "fuse") {
					t.Errorf("pod mount %s has type %s, want the FUSE file system", m.point, m.fstype)
				}
			}
		})
	}
}

// TestReadOnlyVolumeRefusesWrites: a pod that mounts a claim read-only
// reads the volume's data, and every kind of write fails with EROFS.
func TestReadOnlyVolumeRefusesWrites(t *testing.T) {
	c := newCluster(t)
	c.createPVC("data", "exclusive", corev1.ReadWriteOnce)
	c.run(c.pod("seed", "data", "", "printf seed > /data/f && sync /data/f"))

	ro := c.pod("reader", "data", "", `cat /data/f; echo
for op in "printf x > /data/new" "printf x >> /data/f" "mkdir /data/d" "rm /data/f" "touch /data/f"; do
  if err=$(sh -c "$op" 2>&1); then echo "$op: succeeded"; else echo "$op: $err"; fi
done`)
	ro.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly = true
	out := lines(c.run(ro))
	if len(out) != 6 || out[0] != "seed" {
		t.Fatalf("read-only pod printed %q, want the seed and one line per write", out)
	}
	// strerror(EROFS): sh, mkdir, rm and touch all report the errno so.
	for _, l := range out[1:] {
		if !strings.HasSuffix(l, "Read-only file system") {
			t.Errorf("%s: want EROFS (Read-only file system)", l)
		}
	}
	if got := c.run(c.pod("check", "data", "", "cat /data/f; ls /data")); got != "seedf\n" {
		t.Errorf("after the read-only pod the volume holds %q, want only f with its seed", got)
	}
}

// TestDeletingPodsUnstages: deleting the last pod of a volume unpublishes
// and unstages it: no FUSE mount of the volume, no bind mount of the pod,
// no staging directory left on the node, and data written without fsync is
// in the remote directory. forcePageCache keeps that data in the daemon's
// page cache (no host FD), so it is the unstage that writes it back.
func TestDeletingPodsUnstages(t *testing.T) {
	for _, params := range []map[string]string{
		{"interopMode": "exclusive"},
		{"interopMode": "exclusive", "forcePageCache": "true"},
	} {
		name := params["interopMode"]
		if params["forcePageCache"] == "true" {
			name += "-forcePageCache"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t)
			c.createClaim("data", params, corev1.ReadWriteOnce)
			c.start(c.pod("writer", "data", "",
				`dd if=/dev/urandom of=/data/blob bs=64k count=16 2>/dev/null && sha256sum /data/blob && exec sleep 3600`))
			pod := c.waitPod("writer", corev1.PodRunning)
			c.poll("the writer's checksum", func(context.Context) (bool, error) {
				return len(strings.Fields(c.logs("writer"))) == 2, nil
			})
			want := strings.Fields(c.logs("writer"))[0]
			node, id := pod.Spec.NodeName, c.boundVolume("data")

			mounts, _ := c.volumeMounts(node, id)
			// The staging target path the kubelet gave NodeStageVolume.
			var stagingDir string
			for _, m := range mounts {
				if m.staging() {
					stagingDir = m.point
				}
			}
			if stagingDir == "" {
				t.Fatalf("volume %s has no staging mount while the writer runs: %+v", id, mounts)
			}

			c.deletePod("writer")
			mounts, podMounts := c.volumeMounts(node, id)
			if len(mounts) != 0 {
				t.Errorf("volume %s still mounted after its only pod was deleted: %+v", id, mounts)
			}
			for _, m := range podMounts {
				if strings.Contains(m.point, "/pods/"+string(pod.UID)+"/") {
					t.Errorf("the deleted pod's volume is still bind-mounted at %s", m.point)
				}
			}
			if out := c.onNode(node, fmt.Sprintf(`[ -e /proc/$K/root%s ] && echo exists || echo gone`, stagingDir)); strings.TrimSpace(out) != "gone" {
				t.Errorf("staging directory %s %s after unstage", stagingDir, strings.TrimSpace(out))
			}
			got := c.onNode(node, fmt.Sprintf("sha256sum /proc/$K/root%s/%s/blob", c.volumeRoot, id))
			if f := strings.Fields(got); len(f) == 0 || f[0] != want {
				t.Errorf("remote blob: %q, want sha256 %s as the pod wrote it", got, want)
			}
		})
	}
}
