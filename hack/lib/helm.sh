# shellcheck shell=bash
# helm.sh is sourced by hack/ scripts: the one pinned helm, built from the Go
# module proxy (no release tarball download) and cached outside the repo.

HELM_VERSION=v3.22.0
# Stamped into helm the way its own release build does (client-go v0.37 ->
# Kubernetes 1.37); without it helm assumes Kubernetes 1.20.
HELM_K8S_MINOR=37
# The Kubernetes version charts are linted and rendered for.
KUBE_VERSION=v1.37.0

# ensure_helm sets HELM to the pinned helm binary, building it on first use.
ensure_helm() {
	local dir="${CSI_GOFERFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-goferfs}/helm-$HELM_VERSION"
	HELM="$dir/helm"
	if [ ! -x "$HELM" ]; then
		echo "building helm $HELM_VERSION into $dir (first run only, a few minutes)" >&2
		local pkg=helm.sh/helm/v3
		GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -ldflags "-s -w \
			-X $pkg/internal/version.version=$HELM_VERSION \
			-X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
			-X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
			"$pkg/cmd/helm@$HELM_VERSION"
	fi
	export HELM KUBE_VERSION
}
