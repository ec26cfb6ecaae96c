#!/usr/bin/env bash
# Runs the csi-sanity binary (kubernetes-csi/csi-test) against a real
# 'csi-goferfs serve' with real FUSE mounts. Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
	echo "sanity: skipped: needs root and /dev/fuse to mount volumes"
	exit 0
fi

bin=$(mktemp -d)
work=$(mktemp -d)
server=""
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
	# Anything the driver left mounted is a bug the sanity run reports;
	# unmount it so the machine is clean either way.
	grep -o "$work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$bin" "$work"
}
trap cleanup EXIT

# Built from this module's go.mod, so the binary is the same csi-test
# version as the in-process sanity test.
go build -o "$bin/csi-sanity" github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity
go build -o "$bin/csi-goferfs" ./cmd/csi-goferfs

mkdir -p "$work/root" "$work/state"
"$bin/csi-goferfs" serve --endpoint "unix://$work/csi.sock" --node-id sanity-node \
	--root "$work/root" --state-dir "$work/state" --unmount-on-exit >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
	[ -S "$work/csi.sock" ] && break
	kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
	sleep 0.1
done

status=0
"$bin/csi-sanity" --csi.endpoint "unix://$work/csi.sock" \
	--csi.mountdir "$work/target" --csi.stagingdir "$work/staging" \
	--ginkgo.v=false --ginkgo.no-color || status=$?
if [ $status -ne 0 ]; then
	echo "--- csi-goferfs serve log"; tail -50 "$work/serve.log"
fi
exit $status
