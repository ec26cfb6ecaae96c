//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestWriteThenReadFromAnotherPod: for each interop mode, data a pod wrote
// and fsync'd is read back by a later pod, and is in the volume's remote
// directory. The second pod lands on the same node because the volume's PV
// is pinned there by topology.
func TestWriteThenReadFromAnotherPod(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			c.createPVC("data", mode, corev1.ReadWriteOnce)
			token := fmt.Sprintf("%s-%d", mode, time.Now().UnixNano())
			c.run(c.pod("writer", "data", "", "printf %s "+token+" > /data/f && sync /data/f"))
			reader := c.pod("reader", "data", "", "cat /data/f")
			if got := c.run(reader); got != token {
				t.Errorf("reader saw %q, want %q", got, token)
			}
			node := c.waitPod("reader", corev1.PodSucceeded).Spec.NodeName
			if got := c.remoteFile(node, c.boundVolume("data"), "f"); got != token {
				t.Errorf("the remote directory holds %q, want %q", got, token)
			}
		})
	}
}

// TestSharedModeAcrossNodes: two pods on two nodes use one shared-mode
// volume at once, and each reads what the other wrote while both run.
//
// With the local remote a volume is a directory on one node, so this needs
// every node's root to be the same directory (E2E_SHARED_ROOT, as
// hack/e2e-kind.sh sets up): it stands in for a remote shared by all nodes.
// The provisioned PV is pinned to its node by topology, so the test exposes
// the same volume through a second, node-independent PV.
func TestSharedModeAcrossNodes(t *testing.T) {
	c := newCluster(t)
	if !c.sharedRoot {
		t.Skip("E2E_SHARED_ROOT is not true: the nodes' volume roots are separate directories, so no volume is reachable from two nodes")
	}
	nodes := c.schedulableNodes()
	if len(nodes) < 2 {
		t.Skipf("requires two schedulable nodes running the node plugin (kind with two workers); have %v", nodes)
	}

	c.createPVC("seed", "shared", corev1.ReadWriteMany)
	c.run(c.pod("seed", "seed", nodes[0], "true"))
	// Unstaged before the copy is staged: the kubelet would see both PVs
	// as one volume (same driver and handle).
	c.deletePod("seed")
	claim, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Get(c.ctx, "seed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := c.client.CoreV1().PersistentVolumes().Get(c.ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.bindUnpinnedCopy(seed, "both")

	// Each pod writes its own file, then waits to see the other's.
	script := func(mine, theirs string) string {
		return fmt.Sprintf(`printf %[1]s > /data/%[1]s && sync /data/%[1]s
until [ "$(cat /data/%[2]s 2>/dev/null)" = %[2]s ]; do sleep 0.2; done
echo saw %[2]s`, mine, theirs)
	}
	c.start(c.pod("a", "both", nodes[0], script("from-a", "from-b")))
	c.start(c.pod("b", "both", nodes[1], script("from-b", "from-a")))
	for _, p := range []struct{ name, want string }{{"a", "saw from-b"}, {"b", "saw from-a"}} {
		c.waitPod(p.name, corev1.PodSucceeded)
		if got := strings.TrimSpace(c.logs(p.name)); got != p.want {
			t.Errorf("pod %s: %q, want %q", p.name, got, p.want)
		}
	}
}

// bindUnpinnedCopy creates claim name bound to a Retain PV with the same
// CSI volume as pv but no node affinity, and removes that PV at the end
// (Retain: deleting it leaves the volume to pv's claim).
func (c *cluster) bindUnpinnedCopy(pv *corev1.PersistentVolume, name string) {
	c.t.Helper()
	copyName := c.ns + "-" + name
	copyPV := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: copyName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      pv.Spec.Capacity,
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: pv.Spec.CSI.DeepCopy()},
			ClaimRef:                      &corev1.ObjectReference{Namespace: c.ns, Name: name},
		},
	}
	if _, err := c.client.CoreV1().PersistentVolumes().Create(c.ctx, copyPV, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.client.CoreV1().PersistentVolumes().Delete(ctx, copyName, metav1.DeleteOptions{})
	})
	empty := ""
	if _, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Create(c.ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &empty,
			VolumeName:       copyName,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources:        corev1.VolumeResourceRequirements{Requests: pv.Spec.Capacity},
		},
	}, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.poll("claim "+name+" to bind", func(ctx context.Context) (bool, error) {
		pvc, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, err
	})
}

// TestNodePluginRestartKeepsPromisedData deletes the node plugin pod while a
// pod appends numbered lines to a file, and checks what each mode promises
// (interop-modes.md) survived: every line whose fsync returned (all modes);
// in writethrough and shared every line whose write returned, fsync or not.
// The writer prints "ack N" only after that point.
func TestNodePluginRestartKeepsPromisedData(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t)
			c.createPVC("data", mode, corev1.ReadWriteOnce)
			writer := c.startAppender(mode, nil)
			c.restartNodePlugin(writer.Spec.NodeName)
			promised := acked(c.logs("writer"))
			c.deletePod("writer")
			c.checkKept(promised)
		})
	}
}

// TestNodePluginRestartRecoversRunningPod deletes the node plugin pod while
// a pod keeps appending to a file, opening it anew for each line: once the
// DaemonSet's new plugin has restored the volume, the pod's opens must work
// again without restarting it, and nothing acknowledged may be lost.
func TestNodePluginRestartRecoversRunningPod(t *testing.T) {
	c := newCluster(t)
	c.createPVC("data", "exclusive", corev1.ReadWriteOnce)
	// The restored mount is made on the node after the pod started; only
	// a HostToContainer mount can let the running container see it. With
	// the default (None) the container keeps its own copy of the dead
	// mount until it is restarted.
	hostToContainer := corev1.MountPropagationHostToContainer
	writer := c.startAppender("exclusive", &hostToContainer)
	c.restartNodePlugin(writer.Spec.NodeName)
	before := len(acked(c.logs("writer")))
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, c.timeout, true, func(context.Context) (bool, error) {
		return len(acked(c.logs("writer"))) >= before+5, nil
	})
	if err != nil {
		log := lines(c.logs("writer"))
		t.Fatalf("no new acknowledged write in the running pod within %s of the new node plugin being ready (%v); the writer's last output:\n%s",
			c.timeout, err, strings.Join(log[max(0, len(log)-5):], "\n"))
	}
	promised := acked(c.logs("writer"))
	c.deletePod("writer")
	c.checkKept(promised)
}

// startAppender starts pod "writer" appending numbered lines to d/log in
// claim "data", a new open(2) for each, and waits for its first
// acknowledgements. propagation, if set, is its volume mount's.
//
// The log is in a directory that exists only on the volume: while the
// plugin is away the pod's mount point may be the empty directory beneath
// the volume, and a write there must fail rather than be acknowledged and
// then hidden by the restored mount.
func (c *cluster) startAppender(mode string, propagation *corev1.MountPropagationMode) *corev1.Pod {
	c.t.Helper()
	durable := `echo $i >> /data/d/log`
	if mode == "exclusive" {
		durable += ` && sync /data/d/log`
	}
	// The pause only keeps the log short; nothing waits on it.
	p := c.pod("writer", "data", "",
		`mkdir -p /data/d; i=0; while :; do i=$((i+1)); `+durable+` && echo ack $i; sleep 0.05; done`)
	p.Spec.Containers[0].VolumeMounts[0].MountPropagation = propagation
	c.start(p)
	writer := c.waitPod("writer", corev1.PodRunning)
	c.poll("the writer's first acknowledged writes", func(context.Context) (bool, error) {
		return len(acked(c.logs("writer"))) >= 5, nil
	})
	return writer
}

// checkKept reads d/log of claim "data" from a new pod and fails the test
// for each promised line it lacks.
func (c *cluster) checkKept(promised []string) {
	c.t.Helper()
	kept := lines(c.run(c.pod("reader", "data", "", "cat /data/d/log")))
	var lost []string
	for _, n := range promised {
		if !slices.Contains(kept, n) {
			lost = append(lost, n)
		}
	}
	if len(lost) > 0 {
		c.t.Errorf("%d of %d acknowledged writes lost across a node plugin restart: %v", len(lost), len(promised), lost)
	}
	c.t.Logf("%d acknowledged writes, all kept; the volume holds %d lines", len(promised), len(kept))
}

// acked returns N of each "ack N" line of the writer's output.
func acked(logs string) []string {
	var out []string
	for _, l := range lines(logs) {
		if n, ok := strings.CutPrefix(l, "ack "); ok {
			out = append(out, n)
		}
	}
	return out
}
