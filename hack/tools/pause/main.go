// Command pause is the sandbox ("pause") container of the local cluster's
// pods: it holds the pod's namespaces and does nothing else. containerd
// needs one as its sandbox_image, and none can be pulled here. It exits
// on SIGINT or SIGTERM so stopping a pod does not wait for a SIGKILL.
//
// Build it static (CGO_ENABLED=0): the image holds nothing else.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of a pod that shares its PID namespace, orphans are
	// reparented here; reap them so they do not linger as zombies.
	signal.Notify(sigs, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
