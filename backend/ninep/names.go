package ninep

import (
	"strings"
	"syscall"
)

// components splits a volume-relative name into its path components. The
// empty name is the root (no components). Anything that is not a plain
// relative path is EINVAL, so no name can walk above the attach point.
func components(name string) ([]string, error) {
	if name == "" {
		return nil, nil
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if !safeComponent(p) {
			return nil, syscall.EINVAL
		}
	}
	return parts, nil
}

// splitParent splits name into its parent's components and its final
// component; the root itself has no parent (EINVAL).
func splitParent(name string) ([]string, string, error) {
	parts, err := components(name)
	if err != nil {
		return nil, "", err
	}
	if len(parts) == 0 {
		return nil, "", syscall.EINVAL
	}
	return parts[:len(parts)-1], parts[len(parts)-1], nil
}

func safeComponent(c string) bool {
	return c != "" && c != "." && c != ".." && !strings.ContainsAny(c, "/\x00")
}

// hasPrefixPath reports whether name is dir or lies beneath it.
func hasPrefixPath(name, dir string) bool {
	return name == dir || strings.HasPrefix(name, dir+"/")
}
