package main

import (
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// lint checks rules that strict decoding cannot see. The first three are
// rejected by the API server at install time; the last is accepted and
// silently wrong, which is worse.
//   - a workload's selector selects its own pod template;
//   - every volumeMount names a volume of the pod; names are unique;
//   - a probe's named port is a port of its container;
//   - every $(VAR) in command/args is an env var of the container (the
//     kubelet passes an unknown reference through as literal text).
func lint(objs []object) []error {
	var errs []error
	for _, o := range objs {
		meta, spec, selector := podTemplateOf(o)
		if spec == nil {
			continue
		}
		where := fmt.Sprintf("%s (%s)", o.source, o.obj.GetObjectKind().GroupVersionKind().Kind)
		if selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(selector)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: selector: %w", where, err))
			} else if sel.Empty() || !sel.Matches(labels.Set(meta.Labels)) {
				errs = append(errs, fmt.Errorf("%s: selector %s does not select the pod template's labels %v", where, sel, meta.Labels))
			}
		}
		errs = append(errs, lintPodSpec(where, spec)...)
	}
	return errs
}

func podTemplateOf(o object) (*metav1.ObjectMeta, *corev1.PodSpec, *metav1.LabelSelector) {
	switch w := o.obj.(type) {
	case *appsv1.DaemonSet:
		return &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec, w.Spec.Selector
	case *appsv1.Deployment:
		return &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec, w.Spec.Selector
	case *appsv1.StatefulSet:
		return &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec, w.Spec.Selector
	case *batchv1.Job:
		return &w.Spec.Template.ObjectMeta, &w.Spec.Template.Spec, nil
	case *corev1.Pod:
		return &w.ObjectMeta, &w.Spec, nil
	}
	return nil, nil, nil
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func lintPodSpec(where string, spec *corev1.PodSpec) []error {
	var errs []error
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			errs = append(errs, fmt.Errorf("%s: volume %q defined twice", where, v.Name))
		}
		volumes[v.Name] = true
	}
	containers := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		in := fmt.Sprintf("%s: container %q", where, c.Name)
		if containers[c.Name] {
			errs = append(errs, fmt.Errorf("%s defined twice", in))
		}
		containers[c.Name] = true
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				errs = append(errs, fmt.Errorf("%s mounts volume %q, which the pod does not define", in, m.Name))
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name != "" {
				ports[p.Name] = true
			}
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if port, ok := namedProbePort(p); ok && !ports[port] {
				errs = append(errs, fmt.Errorf("%s probes port %q, which it does not declare", in, port))
			}
		}
		if len(c.EnvFrom) > 0 {
			continue // the variables are not knowable from the manifest
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		for _, arg := range append(append([]string{}, c.Command...), c.Args...) {
			for _, m := range varRef.FindAllStringSubmatch(arg, -1) {
				if !env[m[1]] {
					errs = append(errs, fmt.Errorf("%s: %q refers to $(%s), which is not in its env", in, arg, m[1]))
				}
			}
		}
	}
	return errs
}

func namedProbePort(p *corev1.Probe) (string, bool) {
	if p == nil {
		return "", false
	}
	var port *intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = &p.HTTPGet.Port
	case p.TCPSocket != nil:
		port = &p.TCPSocket.Port
	}
	if port == nil || port.Type != intstr.String {
		return "", false
	}
	return port.StrVal, true
}
