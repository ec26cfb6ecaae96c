package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// object is one decoded document of a manifest.
type object struct {
	// source is the template that produced it, from helm's "# Source:" line.
	source string
	obj    runtime.Object
}

// strictDecoder rejects unknown and duplicate fields; it neither defaults
// nor converts, so the object is what the template wrote.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// checkManifest decodes every document of a multi-document YAML manifest
// strictly and lints the result. It reports every problem, not just the first.
func checkManifest(manifest []byte) ([]object, error) {
	objs, errs := decodeStrict(manifest)
	errs = append(errs, lint(objs)...)
	return objs, errors.Join(errs...)
}

func decodeStrict(manifest []byte) ([]object, []error) {
	var (
		objs []object
		errs []error
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, errs
		}
		if err != nil {
			return objs, append(errs, fmt.Errorf("document %d: %w", i, err))
		}
		source := fmt.Sprintf("document %d", i)
		if m := sourceLine.FindSubmatch(doc); m != nil {
			source = string(m[1])
		}
		// helm separates templates with "---" even when one renders to
		// nothing but comments.
		if j, err := yaml.YAMLToJSON(doc); err == nil && (string(j) == "null" || string(j) == "{}") {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(source, gvk), err))
			// A strict error still yields the object: lint it too.
			if !runtime.IsStrictDecodingError(err) || obj == nil {
				continue
			}
		}
		objs = append(objs, object{source: source, obj: obj})
	}
}

func describe(source string, gvk *schema.GroupVersionKind) string {
	if gvk == nil || gvk.Empty() {
		return source
	}
	return fmt.Sprintf("%s (%s)", source, gvk)
}
