#!/usr/bin/env bash
# The project's test command (see README). As root with /dev/fuse it runs
# everything, real FUSE mounts included; otherwise mount tests skip and
# say why.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== static checks: gofmt, go vet, chart lint + strict render (hack/verify.sh)"
hack/verify.sh

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== benchmarks, one short iteration each (they must keep working; timings are not judged here)"
go test -short -run '^$' -bench . -benchtime 1x ./cache/ ./datapath/ ./backend/local/

echo "== csi-sanity against 'csi-goferfs serve'"
hack/sanity.sh
