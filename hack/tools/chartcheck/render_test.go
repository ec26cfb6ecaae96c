package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the csi-goferfs checkout this module lives in.
var repoRoot = filepath.Join("..", "..", "..")

var chartDir = filepath.Join(repoRoot, "charts", "csi-goferfs")

// helmBinary returns the helm that hack/verify.sh pinned and built.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	t.Skip("no helm: run hack/verify.sh, which builds the pinned helm and sets HELM")
	return ""
}

// render runs `helm template` on chart; args are extra helm flags.
func render(t *testing.T, chart string, args ...string) ([]byte, error) {
	t.Helper()
	kube := os.Getenv("KUBE_VERSION")
	if kube == "" {
		kube = "v1.37.0"
	}
	cmd := exec.Command(helmBinary(t), append([]string{"template", "goferfs", chart,
		"--namespace", "csi-goferfs", "--kube-version", kube}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &renderError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type renderError struct {
	err    error
	stderr string
}

func (e *renderError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// mustCheck renders the chart and checks it as hack/verify.sh does.
func mustCheck(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := render(t, chartDir, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	objs, err := checkManifest(out)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return objs
}

// valueSets are the documented value combinations: the defaults, the
// chart's ci/ files and the e2e clusters' values files. Each entry is a
// list of helm flags.
func valueSets(t *testing.T) map[string][]string {
	t.Helper()
	sets := map[string][]string{"defaults": nil}
	for _, pattern := range []string{
		filepath.Join(chartDir, "ci", "*-values.yaml"),
		filepath.Join(repoRoot, "e2e", "values-*.yaml"),
	} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			sets[filepath.Base(f)] = []string{"-f", f}
		}
	}
	if len(sets) < 3 {
		t.Fatalf("found only %d value sets; did the chart's ci/ directory move?", len(sets))
	}
	return sets
}

func TestDocumentedValueSetsDecodeStrictly(t *testing.T) {
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			if objs := mustCheck(t, args...); len(objs) == 0 {
				t.Fatal("rendered no objects")
			}
		})
	}
}

// TestVerifyFailsOnMisspeltTemplateField is verify's self-test: helm renders
// each of these broken templates without complaint, and the checker that
// hack/verify.sh runs must reject every one.
func TestVerifyFailsOnMisspeltTemplateField(t *testing.T) {
	cases := []struct {
		name, template, old, new, want string
	}{
		{"misspelt field", "node-daemonset.yaml",
			"mountPropagation: Bidirectional", "mountPropogation: Bidirectional",
			`unknown field "spec.template.spec.containers[0].volumeMounts[1].mountPropogation"`},
		{"field at the wrong level", "csidriver.yaml",
			"  storageCapacity:", "storageCapacity:",
			`unknown field "storageCapacity"`},
		{"wrong type", "storageclasses.yaml",
			"allowVolumeExpansion: false", "allowVolumeExpansion: no-thanks",
			"allowVolumeExpansion"},
		{"misspelt env reference", "node-daemonset.yaml",
			"--node-id=$(NODE_NAME)", "--node-id=$(NODE_NAEM)",
			"refers to $(NODE_NAEM)"},
		{"mount of a missing volume", "node-daemonset.yaml",
			"- name: dev-fuse\n              mountPath", "- name: dev-fues\n              mountPath",
			`mounts volume "dev-fues"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chart := t.TempDir()
			if err := os.CopyFS(chart, os.DirFS(chartDir)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(chart, "templates", tc.template)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(src, []byte(tc.old)) {
				t.Fatalf("%s no longer contains %q: update this test", tc.template, tc.old)
			}
			broken := bytes.Replace(src, []byte(tc.old), []byte(tc.new), 1)
			if err := os.WriteFile(path, broken, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := render(t, chart)
			if err != nil {
				t.Fatalf("helm itself rejected the broken chart, so this case no longer tests the checker: %v", err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"-name", "broken"}, bytes.NewReader(out), &stdout, &stderr); code != 1 {
				t.Fatalf("chartcheck exit code = %d, want 1; stdout: %s", code, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("chartcheck said:\n%s\nwant it to mention %s", stderr.String(), tc.want)
			}
		})
	}
}

// TestValuesAreValidated: a misspelt or unimplemented value fails the render
// instead of being ignored.
func TestValuesAreValidated(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"misspelt key", []string{"--set", "storageClasses.shared.forcePageCach=true"}, "forcePageCach"},
		{"string for a boolean", []string{"--set-string", "storageClasses.shared.forcePageCache=yes"}, "forcePageCache"},
		{"relative root", []string{"--set", "root=volumes"}, "/root"},
		{"9P class without a server or the gofer", []string{"--set", "backend9p.enabled=true"}, "backend9p.server is required"},
		{"9P msize the driver refuses", []string{"--set", "backend9p.enabled=true", "--set", "gofer.enabled=true", "--set", "backend9p.msize=100"}, "msize"},
		{"9P relative export", []string{"--set", "backend9p.export=srv"}, "export"},
		{"9P misspelt binding mode", []string{"--set", "backend9p.volumeBindingMode=Immediately"}, "volumeBindingMode"},
		{"9P unknown interop mode", []string{"--set", "backend9p.interopMode=async"}, "interopMode"},
		{"misspelt gofer key", []string{"--set", "gofer.tls.secret=x"}, "secret"},
		{"relative gofer export", []string{"--set", "gofer.exportPath=srv"}, "exportPath"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, chartDir, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error mentioning %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not mention %q", err, tc.want)
			}
		})
	}
}
