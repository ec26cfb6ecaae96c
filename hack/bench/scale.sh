#!/usr/bin/env bash
# What staged volumes cost one node: NodeStageVolume time, and idle RSS and
# goroutines per staged volume, with 1, 10 and 100 volumes (one FUSE
# session each). Needs root and /dev/fuse. See hack/bench/scale/main.go.
#
#   sudo hack/bench/scale.sh [-n 1,10,100] [-interop exclusive]
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bin
go build -o bin/csi-goferfs ./cmd/csi-goferfs
go run ./hack/bench/scale --binary bin/csi-goferfs "$@"
