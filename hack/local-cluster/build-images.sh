#!/usr/bin/env bash
# build-images.sh writes the local cluster's images as docker-save tarballs
# (for `ctr images import`; nothing is pulled) and prints their directory:
#   pause.tar        the pods' sandbox: a static Go program that waits
#   busybox.tar      the test workloads: busybox-static and its applets
#   csi-goferfs.tar  the driver: a static build of this checkout, plus
#                    busybox for mount(8) and umount(8), which
#                    k8s.io/mount-utils runs for NodePublishVolume's bind mounts
set -euo pipefail
# shellcheck source=hack/local-cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${CSI_GOFERFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-goferfs}/local-cluster-images"
mkdir -p "$out"
lc_log "building images into $out"
(cd "$LC_REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/csi-goferfs" ./cmd/csi-goferfs)
(cd "$LC_REPO/hack/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/" ./imagetar ./pause)

busybox=$(command -v busybox)
links=()
for applet in $("$busybox" --list); do
	# The list names busybox itself, which must stay the binary.
	[ "$applet" = busybox ] || links+=(-link "/bin/$applet=busybox")
done
"$out/imagetar" -o "$out/pause.tar" -tag "$LC_PAUSE_IMAGE" -file /pause="$out/pause" -entrypoint /pause
"$out/imagetar" -o "$out/busybox.tar" -tag "$LC_BUSYBOX_IMAGE" -file /bin/busybox="$busybox" \
	"${links[@]}" -dir /tmp -cmd sh
"$out/imagetar" -o "$out/csi-goferfs.tar" -tag "$LC_DRIVER_IMAGE" \
	-file /usr/local/bin/csi-goferfs="$out/csi-goferfs" -file /bin/busybox="$busybox" \
	"${links[@]}" -dir /tmp -entrypoint /usr/local/bin/csi-goferfs
echo "$out"
