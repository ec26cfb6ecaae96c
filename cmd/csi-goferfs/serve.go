package main

import (
	"fmt"
	"os"
)

func serveMain(args []string) int {
	fmt.Fprintln(os.Stderr, "csi-goferfs serve: not wired yet")
	return 1
}
