package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// helpFlag matches a flag line of Go's flag.PrintDefaults: "  -name type"
// for a flag that takes a value, "  -name" (maybe followed by a tab) for a
// boolean one. Two leading dashes are accepted too.
var helpFlag = regexp.MustCompile(`^  --?([A-Za-z0-9][-A-Za-z0-9_.]*)( \S+)?`)

// parseFlagHelp returns the flags listed in --help output, mapped to whether
// each takes a value.
func parseFlagHelp(help string) map[string]bool {
	flags := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2] != ""
		}
	}
	return flags
}

// checkArgs checks a subcommand's arguments against its flags. Every
// argument must be a known flag; a flag that takes a value must have it
// after "=", since a separate token is easy to drop or reorder in a template.
func checkArgs(args []string, flags map[string]bool) []error {
	var errs []error
	for _, arg := range args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		takesValue, known := flags[name]
		switch {
		case !strings.HasPrefix(arg, "-"):
			errs = append(errs, fmt.Errorf("%q is not a flag (no positional arguments expected)", arg))
		case !known:
			errs = append(errs, fmt.Errorf("unknown flag %q", arg))
		case takesValue && !hasValue:
			errs = append(errs, fmt.Errorf("%q takes a value: write it as --%s=VALUE", arg, name))
		}
	}
	return errs
}

func TestParseFlagHelp(t *testing.T) {
	// The fixture is what Go's flag package prints for flags shaped like
	// the binary's, so the parser follows the real format.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("endpoint", "unix:///csi/csi.sock", "CSI `address`")
	fs.String("node-id", "", "node name")
	fs.Bool("force-page-cache", false, "never use passthrough")
	fs.Int("v", 0, "log level")
	fs.Bool("x", false, "one-letter boolean")
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()

	got := parseFlagHelp("Usage of serve:\n" + help.String())
	want := map[string]bool{"endpoint": true, "node-id": true, "force-page-cache": false, "v": true, "x": false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed %v from\n%s\nwant %v", got, help.String(), want)
	}
}

func TestCheckArgs(t *testing.T) {
	flags := map[string]bool{"root": true, "debug": false}
	cases := []struct {
		args []string
		bad  int
	}{
		{[]string{"--root=/x", "--debug", "-debug=true"}, 0},
		{[]string{"--rot=/x"}, 1},
		{[]string{"--root", "/x"}, 2}, // value as separate token; then a positional
		{[]string{"serve"}, 1},
	}
	for _, tc := range cases {
		if errs := checkArgs(tc.args, flags); len(errs) != tc.bad {
			t.Errorf("checkArgs(%q) = %v, want %d errors", tc.args, errs, tc.bad)
		}
	}
}

// driverArgv returns, for each container that runs the csi-goferfs image in
// a pod that also runs the driver, the arguments after the binary: a
// subcommand and its flags.
func driverArgv(t *testing.T, spec *corev1.PodSpec) map[string][]string {
	t.Helper()
	var image string
	for _, c := range spec.Containers {
		if c.Name == "csi-goferfs" {
			image = c.Image
		}
	}
	argv := map[string][]string{}
	for _, c := range spec.Containers {
		if c.Image != image {
			continue
		}
		if len(c.Command) > 0 {
			if filepath.Base(c.Command[0]) != "csi-goferfs" {
				t.Errorf("container %q runs %q from the driver image: its flags cannot be checked", c.Name, c.Command[0])
				continue
			}
			argv[c.Name] = append(slices.Clone(c.Command[1:]), c.Args...)
			continue
		}
		argv[c.Name] = c.Args // the image's ENTRYPOINT is the binary
	}
	return argv
}

// TestChartArgsMatchBinaryFlags renders every documented value set and
// checks each argument the chart passes to csi-goferfs against the flags
// that the binary built from this checkout lists in `SUBCOMMAND --help`.
func TestChartArgsMatchBinaryFlags(t *testing.T) {
	bin := buildDriver(t)
	helps := map[string]map[string]bool{}
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			for _, ds := range objectsOf[*appsv1.DaemonSet](mustCheck(t, args...)) {
				for cname, argv := range driverArgv(t, &ds.Spec.Template.Spec) {
					if len(argv) == 0 || strings.HasPrefix(argv[0], "-") {
						t.Errorf("container %q: argv %q does not start with a subcommand", cname, argv)
						continue
					}
					sub := argv[0]
					if helps[sub] == nil {
						helps[sub] = subcommandFlags(t, bin, sub)
					}
					for _, err := range checkArgs(argv[1:], helps[sub]) {
						t.Errorf("container %q, csi-goferfs %s: %v", cname, sub, err)
					}
				}
			}
		})
	}
}

// buildDriver builds cmd/csi-goferfs of this checkout.
func buildDriver(t *testing.T) string {
	t.Helper()
	main := filepath.Join(repoRoot, "cmd", "csi-goferfs")
	if files, _ := filepath.Glob(filepath.Join(main, "*.go")); len(files) == 0 {
		t.Skipf("%s has no Go files yet: nothing to check the chart against", main)
	}
	bin := filepath.Join(t.TempDir(), "csi-goferfs")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/csi-goferfs")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/csi-goferfs: %v\n%s", err, out)
	}
	return bin
}

func subcommandFlags(t *testing.T, bin, sub string) map[string]bool {
	t.Helper()
	// flag.ExitOnError exits 0 on --help, ContinueOnError callers often 2:
	// judge by the output, not the status.
	out, _ := exec.Command(bin, sub, "--help").CombinedOutput()
	flags := parseFlagHelp(string(out))
	if len(flags) == 0 {
		t.Fatalf("csi-goferfs %s --help listed no flags:\n%s", sub, out)
	}
	return flags
}

// TestDockerfileEntrypointIsTheBinary: the chart's args start with a
// subcommand because the image's entrypoint is the binary itself.
func TestDockerfileEntrypointIsTheBinary(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]$`).FindSubmatch(src)
	if m == nil {
		t.Fatal(`Dockerfile has no exec-form ENTRYPOINT ["..."] with the binary alone`)
	}
	path := string(m[1])
	if filepath.Base(path) != "csi-goferfs" || !bytes.Contains(src, []byte(" "+path+"\n")) {
		t.Errorf("ENTRYPOINT %s is not the csi-goferfs binary copied into the image", path)
	}
}
