#!/usr/bin/env bash
# build-k8s.sh builds the Kubernetes binaries the local cluster runs from the
# Go module proxy, once, into a cache directory outside the repo. It prints
# the directory holding the binaries.
#
# k8s.io/kubernetes cannot be required as a plain module: its go.mod replaces
# each staging module (k8s.io/api, k8s.io/client-go, ...) with a relative
# path. A scratch module that replaces each of them with its published v0.X.Y
# version makes it buildable.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
cache="${CSI_GOFERFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-goferfs}/k8s-$K8S_VERSION"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

have_all() {
	local b
	for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
}
if have_all; then
	echo "$cache/bin"
	exit 0
fi

echo "build-k8s: building Kubernetes $K8S_VERSION into $cache (first run only, ~12 min)" >&2
mkdir -p "$cache/src"
cd "$cache/src"
staging_version="v0.${K8S_VERSION#v1.}"
gomod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$gomod" ] || { echo "build-k8s: no go.mod for k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")
[ ${#staging[@]} -gt 0 ] || { echo "build-k8s: no staging replaces found in $gomod" >&2; exit 1; }
go_version=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
{
	echo "module localcluster/k8s"
	echo
	echo "go $go_version"
	echo
	echo "require k8s.io/kubernetes $K8S_VERSION"
	echo
	echo "replace ("
	for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
	echo ")"
} >go.mod
printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kubelet/app"\n\nfunc main() {}\n' >tools.go
echo "build-k8s: ${#staging[@]} staging modules replaced with $staging_version" >&2
GOFLAGS=-mod=mod go mod tidy >&2

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
	ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
pkgs=()
for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
# One build process at a time keeps the linker's peak memory to one binary.
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -p 2 -trimpath -ldflags "$ld" -o "$cache/bin/" "${pkgs[@]}" >&2
have_all
echo "$cache/bin"
