#!/usr/bin/env bash
# install-deps.sh installs the Debian packages the local cluster needs, as
# root. Safe to rerun: it installs only what is missing. Kubernetes itself
# is built from the Go module proxy by build-k8s.sh, helm by hack/lib/helm.sh.
set -euo pipefail

need=()
# command -> package
for pair in etcd:etcd-server containerd:containerd runc:runc busybox:busybox-static \
	openssl:openssl iptables:iptables curl:curl fusermount3:fuse3 ip:iproute2; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The kubelet's CNI plugins (loopback only; see up).
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "local-cluster install-deps: need root to install: ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# policy-rc.d keeps the packages' init scripts from starting a system
	# etcd or containerd: the cluster runs its own, on its own ports.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
