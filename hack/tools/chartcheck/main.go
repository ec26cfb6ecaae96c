// Command chartcheck checks rendered Kubernetes manifests (the output of
// `helm template`) against the Kubernetes API types.
//
// Each document is decoded strictly with the client-go scheme: an unknown
// field, a duplicate field or a value of the wrong type is an error. The API
// server would only drop an unknown field with a warning, so a misspelt
// template field (mountPropogation) would install "fine" and do the wrong
// thing. A few cross-field rules the API server enforces at apply time, and
// that decoding cannot see, are checked too (see lint.go).
//
// Usage:
//
//	helm template REL CHART [flags] | chartcheck [-name LABEL]
//	chartcheck FILE...
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it to prove a bad chart makes
// the command fail.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chartcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "stdin", "label for the manifest read from stdin, used in messages")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	type input struct {
		label string
		read  func() ([]byte, error)
	}
	var inputs []input
	if fs.NArg() == 0 {
		inputs = append(inputs, input{*name, func() ([]byte, error) { return io.ReadAll(stdin) }})
	}
	for _, path := range fs.Args() {
		inputs = append(inputs, input{path, func() ([]byte, error) { return os.ReadFile(path) }})
	}
	status := 0
	for _, in := range inputs {
		data, err := in.read()
		if err == nil {
			var objs []object
			objs, err = checkManifest(data)
			if err == nil {
				fmt.Fprintf(stdout, "chartcheck: %s: %d objects ok\n", in.label, len(objs))
				continue
			}
		}
		fmt.Fprintf(stderr, "chartcheck: %s: %v\n", in.label, err)
		status = 1
	}
	return status
}
