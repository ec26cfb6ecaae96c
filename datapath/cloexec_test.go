package datapath

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMount_ChildrenDoNotInheritFUSEConnection: a child process must not
// hold the session's /dev/fuse descriptor, or it could keep a mount alive
// (and hung) after the daemon dies.
func TestMount_ChildrenDoNotInheritFUSEConnection(t *testing.T) {
	mountTest(t, Options{Mode: Exclusive})
	out, err := exec.Command("/bin/sh", "-c", "ls -l /proc/self/fd/").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.Contains(string(out), "/dev/fuse") {
		t.Fatalf("a child inherited /dev/fuse:\n%s", out)
	}
}
