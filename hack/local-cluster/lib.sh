# shellcheck shell=bash
# lib.sh is sourced by up, down and e2e.sh: where the local cluster keeps
# its files, and the helpers they share. Everything the cluster writes is
# below $LC_DIR, $LC_RUN or the kubelet's root, so down can remove it all.

LC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LC_DIR=${LOCAL_CLUSTER_DIR:-/var/lib/goferfs-local-cluster}
# Sockets live on /run: shorter paths (unix sockets allow 107 bytes).
LC_RUN=${LOCAL_CLUSTER_RUN:-/run/goferfs-local-cluster}
LC_KUBELET_DIR=/var/lib/kubelet
# The node's name is also its Hostname address, the only one the apiserver
# uses to reach the kubelet (for logs): "localhost" keeps that on 127.0.0.1.
# (The kubelet refuses a loopback --node-ip.)
LC_NODE=localhost
LC_CONTAINERD_SOCK=$LC_RUN/containerd/containerd.sock
LC_KUBECONFIG=$LC_DIR/admin.kubeconfig
# kubectl's and helm's discovery cache, kept out of ~/.kube.
export KUBECACHEDIR=$LC_DIR/kube-cache
# Image references used by the chart values (e2e/values-local.yaml) and the
# tests (E2E_TEST_IMAGE): imported, never pulled.
LC_PAUSE_IMAGE=localhost/goferfs-pause:local
LC_BUSYBOX_IMAGE=localhost/busybox:local
LC_DRIVER_IMAGE=localhost/csi-goferfs:local
# The daemons, in start order; down stops them in reverse.
LC_DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

lc_log() { echo "local-cluster: $*" >&2; }

# lc_pid prints the PID of daemon $1 if it is still running.
lc_pid() {
	local f=$LC_DIR/pids/$1 pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# lc_start NAME CMD... runs a daemon in its own session, logging to
# $LC_DIR/logs/NAME.log, and records its PID.
lc_start() {
	local name=$1
	shift
	mkdir -p "$LC_DIR/pids" "$LC_DIR/logs"
	setsid "$@" >>"$LC_DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$LC_DIR/pids/$name"
}

# lc_stop NAME stops a daemon by its recorded PID: SIGTERM, then SIGKILL
# after $2 seconds (default 20).
lc_stop() {
	local name=$1 grace=${2:-20} pid i
	pid=$(lc_pid "$name") || { rm -f "$LC_DIR/pids/$name"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		lc_log "$name (pid $pid) ignored SIGTERM for ${grace}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$LC_DIR/pids/$name"
}

# lc_wait WHAT TIMEOUT CMD... retries CMD every half second until it
# succeeds, or fails after TIMEOUT seconds naming WHAT.
lc_wait() {
	local what=$1 timeout=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			lc_log "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

# lc_kubectl runs the cluster's kubectl against the cluster.
lc_kubectl() {
	"$LC_DIR/bin/kubectl" --kubeconfig "$LC_KUBECONFIG" "$@"
}
