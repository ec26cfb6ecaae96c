//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// modes are the interop modes, each with a StorageClass from the chart.
var modes = []string{"exclusive", "writethrough", "shared"}

// nodePluginSelector selects the chart's node plugin pods.
const nodePluginSelector = "app.kubernetes.io/name=csi-goferfs,app.kubernetes.io/component=node"

// cluster is one test's view of the cluster: a client and a namespace of
// its own, deleted (with its claims and volumes) when the test ends.
type cluster struct {
	t           *testing.T
	ctx         context.Context
	client      kubernetes.Interface
	ns          string
	driverNS    string
	scPrefix    string
	image       string
	pullPolicy  corev1.PullPolicy
	hostNetwork bool
	sharedRoot  bool
	timeout     time.Duration
	// static: claims are bound to volumes made through CreateVolume on
	// csiEndpoint (static_test.go) rather than by csi-provisioner.
	static      bool
	csiEndpoint string
	// volumeRoot is the driver's --root on the nodes.
	volumeRoot string
	// cleanups run after the namespace is gone, last added first.
	cleanups []func(ctx context.Context) error
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KUBECONFIG is not set: the e2e tests need a cluster with the chart installed (see hack/e2e-kind.sh)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	timeout, err := time.ParseDuration(getenv("E2E_TIMEOUT", "5m"))
	if err != nil {
		t.Fatalf("E2E_TIMEOUT: %v", err)
	}
	c := &cluster{
		t:           t,
		ctx:         t.Context(),
		client:      kubernetes.NewForConfigOrDie(cfg),
		driverNS:    getenv("E2E_DRIVER_NAMESPACE", "csi-goferfs"),
		scPrefix:    getenv("E2E_STORAGECLASS_PREFIX", "goferfs-"),
		image:       getenv("E2E_TEST_IMAGE", "busybox:1.37"),
		pullPolicy:  corev1.PullPolicy(getenv("E2E_IMAGE_PULL_POLICY", string(corev1.PullIfNotPresent))),
		hostNetwork: os.Getenv("E2E_HOST_NETWORK") == "true",
		sharedRoot:  os.Getenv("E2E_SHARED_ROOT") == "true",
		timeout:     timeout,
		csiEndpoint: getenv("E2E_CSI_ENDPOINT", "/var/lib/kubelet/plugins/"+driverName+"/csi.sock"),
		volumeRoot:  getenv("E2E_VOLUME_ROOT", "/var/lib/csi-goferfs/volumes"),
	}
	switch p := getenv("E2E_PROVISIONING", "dynamic"); p {
	case "dynamic":
	case "static":
		c.static = true
	default:
		t.Fatalf("E2E_PROVISIONING=%q: want dynamic or static", p)
	}
	ns, err := c.client.CoreV1().Namespaces().Create(c.ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "goferfs-e2e-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.ns = ns.Name
	t.Cleanup(c.deleteNamespace)
	return c
}

// deleteNamespace removes the test's namespace and waits until it is gone:
// that needs every pod unpublished and every volume deleted by the driver,
// so a hang here is a driver bug worth failing for.
func (c *cluster) deleteNamespace() {
	// t.Context is already cancelled during Cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.client.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{}); err != nil {
		c.t.Errorf("delete namespace %s: %v", c.ns, err)
		return
	}
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, c.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		c.t.Errorf("namespace %s still exists after %s: a pod or volume is stuck", c.ns, c.timeout)
		return
	}
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		if err := c.cleanups[i](ctx); err != nil {
			c.t.Error(err)
		}
	}
}

// afterNamespace registers f to run once the test's namespace is gone.
func (c *cluster) afterNamespace(f func(ctx context.Context) error) {
	c.cleanups = append(c.cleanups, f)
}

// poll calls cond every second until it returns true, an error, or the
// step timeout passes.
func (c *cluster) poll(what string, cond func(ctx context.Context) (bool, error)) {
	c.t.Helper()
	if err := wait.PollUntilContextTimeout(c.ctx, time.Second, c.timeout, true, cond); err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// createPVC creates claim name of a new volume in interop mode mode.
func (c *cluster) createPVC(name, mode string, access corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	c.t.Helper()
	return c.createClaim(name, map[string]string{"interopMode": mode}, access)
}

// createClaim creates claim name of a new volume with the StorageClass
// parameters params: provisioned by the cluster, or made by the test when
// E2E_PROVISIONING is static. Dynamically, a claim whose parameters are
// not just an interop mode gets a StorageClass of its own.
func (c *cluster) createClaim(name string, params map[string]string, access corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	c.t.Helper()
	if c.static {
		return c.createStaticClaim(name, params, access)
	}
	sc := c.scPrefix + params["interopMode"]
	if len(params) > 1 {
		sc = c.createStorageClass(name, params)
	}
	pvc, err := c.client.CoreV1().PersistentVolumeClaims(c.ns).Create(c.ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &sc,
			AccessModes:      []corev1.PersistentVolumeAccessMode{access},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: volumeSize},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return pvc
}

// createStorageClass creates a StorageClass of the driver with params for
// claim name, deleted after the namespace (and so after its volumes).
func (c *cluster) createStorageClass(name string, params map[string]string) string {
	c.t.Helper()
	bind := storagev1.VolumeBindingWaitForFirstConsumer
	sc, err := c.client.StorageV1().StorageClasses().Create(c.ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: c.ns + "-" + name},
		Provisioner:       driverName,
		Parameters:        params,
		VolumeBindingMode: &bind,
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.afterNamespace(func(ctx context.Context) error {
		return c.client.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{})
	})
	return sc.Name
}

// pod returns a one-container pod running script with claim at /data. An
// empty node lets the scheduler choose.
func (c *cluster) pod(name, claim, node, script string) *corev1.Pod {
	grace := int64(1)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			HostNetwork:                   c.hostNetwork,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "c",
				Image:           c.image,
				ImagePullPolicy: c.pullPolicy,
				Command:         []string{"sh", "-c", script},
				VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
	}
	if node != "" {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
					Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			},
		}}
	}
	return p
}

func (c *cluster) start(p *corev1.Pod) {
	c.t.Helper()
	if _, err := c.client.CoreV1().Pods(c.ns).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// waitPod waits until pod name reaches phase and returns it. A pod that
// ends in the other terminal phase fails the test with its logs.
func (c *cluster) waitPod(name string, phase corev1.PodPhase) *corev1.Pod {
	c.t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, c.timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = c.client.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pod.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			return false, fmt.Errorf("pod failed: %s", c.logs(name))
		}
		return pod.Status.Phase == phase, nil
	})
	if err != nil {
		c.t.Fatalf("waiting for pod %s to be %s: %v\n%s", name, phase, err, c.events(name))
	}
	return pod
}

// events returns the events of object name in the test's namespace, one a
// line: why a pod is stuck (FailedMount, ...) is there.
func (c *cluster) events(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.client.CoreV1().Events(c.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return fmt.Sprintf("(no events: %v)", err)
	}
	var b strings.Builder
	for _, e := range list.Items {
		fmt.Fprintf(&b, "event %s %s (x%d): %s\n", e.Type, e.Reason, e.Count, e.Message)
	}
	return b.String()
}

// run starts p, waits for it to succeed and returns its output.
func (c *cluster) run(p *corev1.Pod) string {
	c.t.Helper()
	c.start(p)
	c.waitPod(p.Name, corev1.PodSucceeded)
	return c.logs(p.Name)
}

func (c *cluster) logs(name string) string {
	out, err := c.client.CoreV1().Pods(c.ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(c.ctx)
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	return string(out)
}

// deletePod deletes pod name and waits until it is gone, which includes the
// kubelet's NodeUnpublishVolume (and NodeUnstageVolume for the last user).
func (c *cluster) deletePod(name string) {
	c.t.Helper()
	if err := c.client.CoreV1().Pods(c.ns).Delete(c.ctx, name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.poll("pod "+name+" to be deleted", func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// schedulableNodes returns the nodes where the node plugin is ready and
// ordinary pods may run.
func (c *cluster) schedulableNodes() []string {
	c.t.Helper()
	plugins, err := c.client.CoreV1().Pods(c.driverNS).List(c.ctx, metav1.ListOptions{LabelSelector: nodePluginSelector})
	if err != nil {
		c.t.Fatal(err)
	}
	var nodes []string
	for _, p := range plugins.Items {
		if !podReady(&p) {
			continue
		}
		node, err := c.client.CoreV1().Nodes().Get(c.ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			c.t.Fatal(err)
		}
		if !node.Spec.Unschedulable && !hasNoScheduleTaint(node) {
			nodes = append(nodes, node.Name)
		}
	}
	return nodes
}

func hasNoScheduleTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restartNodePlugin deletes the node plugin pod on node and waits until the
// DaemonSet's replacement is ready.
func (c *cluster) restartNodePlugin(node string) {
	c.t.Helper()
	list := func(ctx context.Context) ([]corev1.Pod, error) {
		l, err := c.client.CoreV1().Pods(c.driverNS).List(ctx, metav1.ListOptions{
			LabelSelector: nodePluginSelector,
			FieldSelector: "spec.nodeName=" + node,
		})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	old, err := list(c.ctx)
	if err != nil || len(old) != 1 {
		c.t.Fatalf("node plugin pods on %s: %d, %v", node, len(old), err)
	}
	if err := c.client.CoreV1().Pods(c.driverNS).Delete(c.ctx, old[0].Name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.poll("a new node plugin on "+node, func(ctx context.Context) (bool, error) {
		pods, err := list(ctx)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if p.UID != old[0].UID && podReady(&p) {
				return true, nil
			}
		}
		return false, nil
	})
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
