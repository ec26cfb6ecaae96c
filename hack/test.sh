#!/usr/bin/env bash
# The project's test command (see README). As root with /dev/fuse it runs
# everything, real FUSE mounts included; otherwise mount tests skip and
# say why.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== csi-sanity against 'csi-goferfs serve'"
hack/sanity.sh
