#!/usr/bin/env bash
# Builds csi-goferfs, runs 'csi-goferfs serve' on a temporary root with the
# local-directory remote, and drives one volume through the CSI calls a
# kubelet makes (see hack/demo/main.go). Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
	echo "demo: needs root and /dev/fuse (it mounts a FUSE file system)" >&2
	exit 1
fi
command -v fusermount3 >/dev/null 2>&1 || echo "demo: note: fuse3 is not installed; mounting directly as root" >&2

work=$(mktemp -d /tmp/csi-goferfs-demo.XXXXXX)
server=""
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p bin "$work/root" "$work/state"
go build -o bin/csi-goferfs ./cmd/csi-goferfs
echo "==> built bin/csi-goferfs ($(bin/csi-goferfs version))"
bin/csi-goferfs serve --endpoint "unix://$work/csi.sock" --node-id demo-node \
	--root "$work/root" --state-dir "$work/state" --unmount-on-exit 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
	[ -S "$work/csi.sock" ] && break
	kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
	sleep 0.1
done
echo "==> csi-goferfs serve is listening on unix://$work/csi.sock"
go run ./hack/demo --endpoint "unix://$work/csi.sock" --root "$work/root" --work "$work" "$@"
