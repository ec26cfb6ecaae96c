#!/usr/bin/env bash
# e2e.sh runs the e2e tests (e2e/, build tag e2e) against a real kubelet on
# this machine, as root: up, install the chart with e2e/values-local.yaml,
# test, and down, also when something fails. It exits with the tests'
# status and ends with a "N passed, N failed" line (tests and subtests).
#
# Building (Kubernetes on the first run, the images, the test binary)
# happens before the cluster starts and outside the lock; the cluster
# itself runs under an exclusive flock on $LOCAL_CLUSTER_LOCK
# (/tmp/goferfs-mount.lock), so it never overlaps other FUSE-mount tests.
#
# Environment: E2E_RUN and E2E_SKIP (go test -run and -skip patterns), ARTIFACTS (a directory:
# cluster and driver logs are copied there on failure; default a temporary
# directory that is printed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/local-cluster/lib.sh
source "$here/lib.sh"
# shellcheck source=hack/lib/helm.sh
source "$LC_REPO/hack/lib/helm.sh"
lock=${LOCAL_CLUSTER_LOCK:-/tmp/goferfs-mount.lock}

if [ -z "${LC_E2E_LOCKED:-}" ]; then
	"$here/install-deps.sh"
	t0=$SECONDS
	"$here/build-k8s.sh" >/dev/null
	"$here/build-images.sh" >/dev/null
	ensure_helm
	LC_E2E_TEST_BIN=$(mktemp -d)/e2e.test
	(cd "$LC_REPO/e2e" && go test -c -tags e2e -o "$LC_E2E_TEST_BIN" .)
	lc_log "built in $((SECONDS - t0))s; waiting for $lock"
	export LC_E2E_LOCKED=1 LC_E2E_TEST_BIN
	# -o: the daemons up starts must not inherit (and so hold) the lock.
	status=0
	flock -o "$lock" "$0" "$@" || status=$?
	rm -rf "$(dirname "$LC_E2E_TEST_BIN")"
	exit "$status"
fi

log=$(mktemp)
status=1
finish() {
	if [ "$status" -ne 0 ]; then
		artifacts=${ARTIFACTS:-$(mktemp -d /tmp/goferfs-local-cluster-logs.XXXXXX)}
		mkdir -p "$artifacts"
		cp -r "$LC_DIR/logs" "$artifacts/cluster" 2>/dev/null
		lc_kubectl get pods -A -o wide >"$artifacts/pods.txt" 2>&1
		lc_kubectl get events -A --sort-by=.lastTimestamp >"$artifacts/events.txt" 2>&1
		lc_kubectl logs -n csi-goferfs -l app.kubernetes.io/component=node --all-containers --prefix \
			--tail=-1 >"$artifacts/csi-goferfs.log" 2>&1
		cp "$log" "$artifacts/go-test.log" 2>/dev/null
		lc_log "logs of the failed run are in $artifacts"
	fi
	t=$SECONDS
	"$here/down" || lc_log "down failed"
	lc_log "down in $((SECONDS - t))s"
	passed=$(grep -c -E '^\s*--- PASS' "$log" || true)
	failed=$(grep -c -E '^\s*--- FAIL' "$log" || true)
	skipped=$(grep -c -E '^\s*--- SKIP' "$log" || true)
	rm -f "$log"
	[ "$skipped" -eq 0 ] || lc_log "$skipped skipped (the reasons are in the test output above)"
	echo "$passed passed, $failed failed"
	exit "$status"
}
trap finish EXIT

t=$SECONDS
"$here/up" >/dev/null
lc_log "up in $((SECONDS - t))s"

t=$SECONDS
"$HELM" install csi-goferfs "$LC_REPO/charts/csi-goferfs" --kubeconfig "$LC_KUBECONFIG" \
	--namespace csi-goferfs --create-namespace -f "$LC_REPO/e2e/values-local.yaml" --wait --timeout 3m >/dev/null
csinode_has_driver() {
	lc_kubectl get csinode "$LC_NODE" -o jsonpath='{.spec.drivers[*].name}' | grep -qw goferfs.csi.dev
}
lc_wait "the kubelet to register goferfs.csi.dev" 120 csinode_has_driver
lc_log "driver installed and registered in $((SECONDS - t))s"

t=$SECONDS
test_status=0
(
	cd "$LC_REPO/e2e"
	KUBECONFIG=$LC_KUBECONFIG \
		E2E_DRIVER_NAMESPACE=csi-goferfs \
		E2E_PROVISIONING=static \
		E2E_CSI_ENDPOINT="$LC_KUBELET_DIR/plugins/goferfs.csi.dev/csi.sock" \
		E2E_VOLUME_ROOT=/var/lib/goferfs-local-cluster/volumes \
		E2E_TEST_IMAGE="$LC_BUSYBOX_IMAGE" \
		E2E_IMAGE_PULL_POLICY=Never \
		E2E_HOST_NETWORK=true \
		E2E_TIMEOUT=3m \
		"$LC_E2E_TEST_BIN" -test.v -test.count=1 -test.timeout=30m \
			${E2E_RUN:+-test.run "$E2E_RUN"} ${E2E_SKIP:+-test.skip "$E2E_SKIP"}
) 2>&1 | tee "$log" || test_status=$?
lc_log "tests in $((SECONDS - t))s"
status=$test_status
