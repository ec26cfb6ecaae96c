#!/usr/bin/env bash
# verify.sh runs the static checks: gofmt, go vet of every module (the e2e
# tests under their build tag), helm lint, and every documented value
# combination of the chart rendered and decoded strictly against the
# Kubernetes API types, then the chart checker's own tests (which include
# proof that a misspelt template field fails, and the chart's args checked
# against the flags of the binary built from this checkout).
#
# Needs only Go and the Go module proxy; the first run builds helm (minutes).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/helm.sh
source "$repo/hack/lib/helm.sh"
cd "$repo"

step() { echo "--- $*"; }

step gofmt
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step go vet
go vet ./...
(cd hack/tools && go vet ./...)
(cd e2e && go vet ./... && go vet -tags e2e ./...)

step bash -n
for f in hack/*.sh hack/lib/*.sh hack/bench/*.sh hack/local-cluster/*; do bash -n "$f"; done

ensure_helm
chart=charts/csi-goferfs
chartcheck="$(mktemp -d)/chartcheck"
trap 'rm -rf "$(dirname "$chartcheck")"' EXIT
(cd hack/tools && go build -o "$chartcheck" ./chartcheck)

# The documented value combinations: the defaults, the chart's ci/ files and
# the values files of the e2e clusters.
value_sets=(defaults "$chart"/ci/*-values.yaml e2e/values-*.yaml)
for set in "${value_sets[@]}"; do
	args=(--kube-version "$KUBE_VERSION")
	[ "$set" = defaults ] || args+=(-f "$set")
	step "helm lint + template | chartcheck: $set"
	"$HELM" lint --strict --quiet "$chart" "${args[@]}"
	"$HELM" template goferfs "$chart" --namespace csi-goferfs "${args[@]}" |
		"$chartcheck" -name "$set"
done

step "chartcheck tests"
(cd hack/tools && HELM="$HELM" KUBE_VERSION="$KUBE_VERSION" go test -count=1 ./...)
(cd e2e && go test -count=1 ./...)
