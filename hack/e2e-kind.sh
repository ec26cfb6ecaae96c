#!/usr/bin/env bash
# e2e-kind.sh runs the e2e tests (e2e/, build tag e2e) on a throwaway kind
# cluster with two workers: build the image, load it, install the chart,
# test, and delete the cluster on exit, whatever happened.
#
# Needs: docker (a running engine), kind, go, and /dev/fuse on the host
# (the kind nodes are privileged containers and see the host's devices).
# helm is built by hack/lib/helm.sh.
# Environment: KIND_NODE_IMAGE (kind's default if empty), E2E_RUN (go test
# -run pattern), ARTIFACTS (a directory: cluster logs are exported there on
# failure), KEEP_CLUSTER=true (skip the teardown, for debugging).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/helm.sh
source "$repo/hack/lib/helm.sh"

cluster=csi-goferfs-e2e
image=csi-goferfs:e2e # as in e2e/values-kind.yaml
work=$(mktemp -d)
status=1

teardown() {
	if [ "$status" -ne 0 ] && [ -n "${ARTIFACTS:-}" ]; then
		kind export logs "$ARTIFACTS" --name "$cluster" || true
	fi
	if [ "${KEEP_CLUSTER:-}" = true ]; then
		echo "keeping cluster $cluster; KUBECONFIG=$work/kubeconfig" >&2
		return
	fi
	kind delete cluster --name "$cluster" || true
	# The volumes in $work/root were written by root inside the nodes.
	rm -rf "$work" 2>/dev/null || echo "could not remove all of $work" >&2
}
trap teardown EXIT

ensure_helm

# One host directory is every worker's volume root, so a volume is reachable
# from both workers: it stands in for a remote shared by all nodes, which the
# cross-node shared-mode test needs (E2E_SHARED_ROOT below).
mkdir -p "$work/root"
cat >"$work/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
    extraMounts:
      - {hostPath: $work/root, containerPath: /var/lib/csi-goferfs/volumes}
  - role: worker
    extraMounts:
      - {hostPath: $work/root, containerPath: /var/lib/csi-goferfs/volumes}
YAML

kind create cluster --name "$cluster" --config "$work/kind.yaml" \
	--kubeconfig "$work/kubeconfig" --wait 3m ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
export KUBECONFIG="$work/kubeconfig"

docker build -t "$image" "$repo"
kind load docker-image "$image" --name "$cluster"

"$HELM" install csi-goferfs "$repo/charts/csi-goferfs" \
	--namespace csi-goferfs --create-namespace \
	-f "$repo/e2e/values-kind.yaml" --wait --timeout 5m

cd "$repo/e2e"
E2E_DRIVER_NAMESPACE=csi-goferfs E2E_SHARED_ROOT=true \
	go test -tags e2e -count=1 -timeout 40m -v ${E2E_RUN:+-run "$E2E_RUN"} ./...
status=0
