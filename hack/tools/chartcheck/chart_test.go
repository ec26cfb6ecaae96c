package main

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

const driverName = "goferfs.csi.dev"

func objectsOf[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func nodeDaemonSet(t *testing.T, objs []object) *appsv1.DaemonSet {
	t.Helper()
	ds := objectsOf[*appsv1.DaemonSet](objs)
	if len(ds) != 1 {
		t.Fatalf("rendered %d DaemonSets, want 1", len(ds))
	}
	return ds[0]
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

// scCase is one value set and the StorageClasses it must render.
type scCase struct {
	name           string
	args           []string
	modes          []string
	isDefault      bool
	forcePageCache string
	reclaim        corev1.PersistentVolumeReclaimPolicy
}

func TestStorageClassesFollowValues(t *testing.T) {
	all := []string{"exclusive", "writethrough", "shared"}
	cases := []scCase{
		{"defaults", nil, all, false, "false", corev1.PersistentVolumeReclaimDelete},
		{"none", []string{"-f", chartDir + "/ci/no-storageclasses-values.yaml"}, nil, false, "", ""},
	}
	for _, m := range all {
		cases = append(cases, scCase{m + " only", []string{"-f", chartDir + "/ci/" + m + "-only-values.yaml"},
			[]string{m}, true, "true", corev1.PersistentVolumeReclaimRetain})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scs := objectsOf[*storagev1.StorageClass](mustCheck(t, tc.args...))
			var modes []string
			for _, sc := range scs {
				mode := sc.Parameters["interopMode"]
				modes = append(modes, mode)
				if sc.Name != "goferfs-"+mode {
					t.Errorf("class for %s is named %q", mode, sc.Name)
				}
				if sc.Provisioner != driverName {
					t.Errorf("%s: provisioner %q", sc.Name, sc.Provisioner)
				}
				// A volume is a directory on one node: it must be created
				// on the node the scheduler picked for the pod.
				if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
					t.Errorf("%s: volumeBindingMode %v, want WaitForFirstConsumer", sc.Name, sc.VolumeBindingMode)
				}
				if len(sc.AllowedTopologies) != 0 {
					t.Errorf("%s: allowedTopologies %v, want none", sc.Name, sc.AllowedTopologies)
				}
				if sc.AllowVolumeExpansion == nil || *sc.AllowVolumeExpansion {
					t.Errorf("%s: expansion is not implemented, allowVolumeExpansion must be false", sc.Name)
				}
				if got := sc.Parameters["forcePageCache"]; got != tc.forcePageCache {
					t.Errorf("%s: forcePageCache %q, want %q", sc.Name, got, tc.forcePageCache)
				}
				if len(sc.Parameters) != 2 {
					t.Errorf("%s: parameters %v: the driver rejects unknown ones", sc.Name, sc.Parameters)
				}
				if sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != tc.reclaim {
					t.Errorf("%s: reclaimPolicy %v, want %s", sc.Name, sc.ReclaimPolicy, tc.reclaim)
				}
				isDefault := sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true"
				if isDefault != tc.isDefault {
					t.Errorf("%s: default class = %v, want %v", sc.Name, isDefault, tc.isDefault)
				}
			}
			if !slices.Equal(modes, tc.modes) {
				t.Errorf("classes for modes %v, want %v", modes, tc.modes)
			}
		})
	}
}

// TestNinepStorageClass: the 9P class names the server (the gofer's
// Service by default) and export, binds as configured, and the node
// provisioners take claims without a selected node exactly when it binds
// immediately; the local classes still wait for the first consumer.
func TestNinepStorageClass(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		args                  []string
		server, export, msize string
		binding               storagev1.VolumeBindingMode
	}{
		{"on the gofer", []string{"-f", chartDir + "/ci/ninep-values.yaml"},
			"goferfs-csi-goferfs-gofer.csi-goferfs.svc:5640", "/", "", storagev1.VolumeBindingWaitForFirstConsumer},
		{"external server, immediate binding", []string{"--set", "backend9p.enabled=true", "--set", "backend9p.server=10.0.0.5:5640",
			"--set", "backend9p.export=/srv/volumes", "--set", "backend9p.msize=1052672",
			"--set", "backend9p.volumeBindingMode=Immediate"},
			"10.0.0.5:5640", "/srv/volumes", "1052672", storagev1.VolumeBindingImmediate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustCheck(t, tc.args...)
			var ninep []*storagev1.StorageClass
			for _, sc := range objectsOf[*storagev1.StorageClass](objs) {
				if sc.Parameters["backend"] != "9p" {
					if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
						t.Errorf("local class %s: volumeBindingMode %v", sc.Name, sc.VolumeBindingMode)
					}
					continue
				}
				ninep = append(ninep, sc)
			}
			if len(ninep) != 1 {
				t.Fatalf("%d 9P classes, want 1", len(ninep))
			}
			sc := ninep[0]
			want := map[string]string{"backend": "9p", "server": tc.server, "export": tc.export, "interopMode": "shared"}
			if tc.msize != "" {
				want["msize"] = tc.msize
			}
			if !maps.Equal(sc.Parameters, want) {
				t.Errorf("parameters %v, want %v", sc.Parameters, want)
			}
			if sc.Name != "goferfs-9p" || sc.Provisioner != driverName || len(sc.AllowedTopologies) != 0 ||
				sc.AllowVolumeExpansion == nil || *sc.AllowVolumeExpansion {
				t.Errorf("class %s: provisioner %s, allowedTopologies %v, allowVolumeExpansion %v",
					sc.Name, sc.Provisioner, sc.AllowedTopologies, sc.AllowVolumeExpansion)
			}
			if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != tc.binding {
				t.Errorf("volumeBindingMode %v, want %s", sc.VolumeBindingMode, tc.binding)
			}
			if strings.HasSuffix(tc.server, ".svc:5640") {
				name, ns, _ := strings.Cut(strings.TrimSuffix(tc.server, ".svc:5640"), ".")
				if !slices.ContainsFunc(objectsOf[*corev1.Service](objs), func(s *corev1.Service) bool {
					return s.Name == name && s.Namespace == ns && len(s.Spec.Ports) == 1 && s.Spec.Ports[0].Port == 5640
				}) {
					t.Errorf("no Service %s in %s with port 5640 for server %s", name, ns, tc.server)
				}
			}
			prov := container(t, &nodeDaemonSet(t, objs).Spec.Template.Spec, "provisioner")
			flag := fmt.Sprintf("--node-deployment-immediate-binding=%t", tc.binding == storagev1.VolumeBindingImmediate)
			if !slices.Contains(prov.Args, flag) {
				t.Errorf("provisioner args %v lack %s", prov.Args, flag)
			}
		})
	}
}

func TestNodePluginPod(t *testing.T) {
	objs := mustCheck(t)
	drivers := objectsOf[*storagev1.CSIDriver](objs)
	if len(drivers) != 1 || drivers[0].Name != driverName {
		t.Fatalf("CSIDriver objects %v, want one named %s", drivers, driverName)
	}
	d := drivers[0].Spec
	if d.AttachRequired == nil || *d.AttachRequired || d.PodInfoOnMount == nil || *d.PodInfoOnMount ||
		d.FSGroupPolicy == nil || *d.FSGroupPolicy != storagev1.FileFSGroupPolicy ||
		!slices.Equal(d.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}) {
		t.Errorf("CSIDriver spec %+v", d)
	}

	spec := &nodeDaemonSet(t, objs).Spec.Template.Spec
	plugin := container(t, spec, "csi-goferfs")
	if sc := plugin.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("the node plugin must be privileged: it mounts FUSE and bind mounts into the host")
	}
	if _, ok := plugin.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("the node plugin has no memory limit: its page cache would be unbounded")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range plugin.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m := mounts["/var/lib/kubelet"]; m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("kubelet dir mount %+v, want Bidirectional propagation", m)
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if m, ok := mounts["/dev/fuse"]; !ok || hostPaths[m.Name] != "/dev/fuse" {
		t.Error("/dev/fuse is not mounted from the host")
	}
	for _, flag := range []string{"--root=", "--state-dir="} {
		path := argValue(t, plugin.Args, flag)
		if m, ok := mounts[path]; !ok || hostPaths[m.Name] != path {
			t.Errorf("%s%s is not the same host directory inside the container", flag, path)
		}
	}

	prov := container(t, spec, "provisioner")
	for _, want := range []string{"--node-deployment=true", "--node-deployment-immediate-binding=false", "--strict-topology=true"} {
		if !slices.Contains(prov.Args, want) {
			t.Errorf("provisioner args %v lack %s", prov.Args, want)
		}
	}
	if !slices.ContainsFunc(prov.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Error("provisioner has no NODE_NAME from spec.nodeName, which --node-deployment needs")
	}
}

func argValue(t *testing.T, args []string, prefix string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	t.Fatalf("no %s in %v", prefix, args)
	return ""
}

func TestKubeletDirFollowsValue(t *testing.T) {
	out, err := render(t, chartDir, "-f", chartDir+"/ci/kubelet-dir-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("/var/lib/kubelet")) {
		t.Error("a path still names /var/lib/kubelet although kubeletDir moved")
	}
	if bytes.Contains(out, []byte("kubelet//")) {
		t.Error("a trailing slash in kubeletDir doubled a slash")
	}
	spec := &nodeDaemonSet(t, mustCheck(t, "-f", chartDir+"/ci/kubelet-dir-values.yaml")).Spec.Template.Spec
	reg := container(t, spec, "registrar")
	want := "/var/lib/k0s/kubelet/plugins/goferfs.csi.dev/csi.sock"
	if !slices.ContainsFunc(reg.Env, func(e corev1.EnvVar) bool { return e.Name == "DRIVER_REG_SOCK_PATH" && e.Value == want }) {
		t.Errorf("registrar env %v: want DRIVER_REG_SOCK_PATH=%s", reg.Env, want)
	}
}

// TestRegistrarIsSwappable: a cluster without node-driver-registrar runs a
// registrar built into the driver image instead.
func TestRegistrarIsSwappable(t *testing.T) {
	objs := mustCheck(t,
		"--set", "sidecars.registrar.image.repository=",
		"--set-json", `sidecars.registrar.command=["/usr/local/bin/csi-goferfs"]`,
		"--set-json", `sidecars.registrar.args=["register","--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)"]`,
		"--set-json", `sidecars.registrar.livenessProbe=null`)
	spec := &nodeDaemonSet(t, objs).Spec.Template.Spec
	reg, plugin := container(t, spec, "registrar"), container(t, spec, "csi-goferfs")
	if reg.Image != plugin.Image {
		t.Errorf("registrar image %q, want the driver's %q", reg.Image, plugin.Image)
	}
	if !slices.Equal(reg.Command, []string{"/usr/local/bin/csi-goferfs"}) || len(reg.Args) != 2 || reg.Args[0] != "register" {
		t.Errorf("registrar command %v args %v", reg.Command, reg.Args)
	}
	if reg.LivenessProbe != nil {
		t.Errorf("registrar probe %+v, want none", reg.LivenessProbe)
	}
}

// TestBuiltinRegistrar: one value switches the registrar to the driver
// image's `csi-goferfs register`, with the socket paths from its env and no
// probe of node-driver-registrar's.
func TestBuiltinRegistrar(t *testing.T) {
	spec := &nodeDaemonSet(t, mustCheck(t, "--set", "sidecars.registrar.builtin=true")).Spec.Template.Spec
	reg, plugin := container(t, spec, "registrar"), container(t, spec, "csi-goferfs")
	if reg.Image != plugin.Image || len(reg.Command) != 0 {
		t.Errorf("registrar image %q command %v, want the driver's image %q and its entrypoint", reg.Image, reg.Command, plugin.Image)
	}
	if len(reg.Args) == 0 || reg.Args[0] != "register" ||
		!slices.Contains(reg.Args, "--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)") {
		t.Errorf("registrar args %v", reg.Args)
	}
	if reg.LivenessProbe != nil {
		t.Errorf("registrar probe %+v, want none", reg.LivenessProbe)
	}
}

// TestOptionalSidecars: a cluster without the provisioner and livenessprobe
// images runs the driver and a registrar only, and gets no API token.
func TestOptionalSidecars(t *testing.T) {
	spec := &nodeDaemonSet(t, mustCheck(t, "-f", chartDir+"/ci/no-provisioner-values.yaml")).Spec.Template.Spec
	var names []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"csi-goferfs", "registrar"}) {
		t.Errorf("containers %v, want csi-goferfs and registrar", names)
	}
	if p := container(t, spec, "csi-goferfs").LivenessProbe; p != nil {
		t.Errorf("driver probe %+v without the livenessprobe sidecar that serves it", p)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("a pod without the provisioner must not mount an API token")
	}
}

// TestMetricsPort: the driver serves metrics on the port the container
// declares, and neither the flag nor the port is there when disabled.
func TestMetricsPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		port int32
	}{
		{"defaults", nil, 9810},
		{"host network", []string{"-f", chartDir + "/ci/capacity-values.yaml"}, 29810},
		{"disabled", []string{"-f", chartDir + "/ci/no-provisioner-values.yaml"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &nodeDaemonSet(t, mustCheck(t, tc.args...)).Spec.Template.Spec
			plugin := container(t, spec, "csi-goferfs")
			var declared int32
			for _, p := range plugin.Ports {
				if p.Name == "metrics" {
					declared = p.ContainerPort
				}
			}
			hasFlag := slices.ContainsFunc(plugin.Args, func(a string) bool { return strings.HasPrefix(a, "--metrics-address=") })
			if tc.port == 0 {
				if hasFlag || declared != 0 {
					t.Errorf("metrics disabled, but args %v and port %d", plugin.Args, declared)
				}
				return
			}
			if got := argValue(t, plugin.Args, "--metrics-address="); got != fmt.Sprintf(":%d", tc.port) || declared != tc.port {
				t.Errorf("--metrics-address=%s and container port %d, want both %d", got, declared, tc.port)
			}
		})
	}
}
