# syntax=docker/dockerfile:1
#
# csi-goferfs node plugin image: one static binary on Debian slim.
#
# Reproducible binary: same source + same Go toolchain => same bytes
# (-trimpath, no build ID, no VCS stamp, no cgo). For a reproducible image
# as well, pin the base images by digest (--build-arg GO_IMAGE=...@sha256:...,
# RUNTIME_IMAGE=...) and build with SOURCE_DATE_EPOCH set, which BuildKit
# uses for the layer timestamps.
#
# Privileges at run time (see charts/csi-goferfs): the container must be
# privileged. It calls mount(2) for the FUSE session and for the bind mounts
# into pods' volume directories (CAP_SYS_ADMIN), registers passthrough
# backing files with the FUSE device (also CAP_SYS_ADMIN), opens /dev/fuse
# (a hostPath device), and its mounts must propagate to the host
# (Bidirectional propagation, allowed only for privileged containers).
# Running as non-root is therefore not possible.

ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=debian:trixie-slim

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
# Dependencies first, so a source change does not refetch modules.
COPY go.mod go.sum ./
# The patched 9P library the root go.mod replaces (third_party/hugelgupf-p9/PATCHES.md).
COPY third_party/ third_party/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" \
      -o /out/csi-goferfs ./cmd/csi-goferfs

FROM ${RUNTIME_IMAGE}
# fuse3: fusermount3, go-fuse's fallback when mounting directly fails. As
#   root the daemon mounts FUSE itself (go-fuse DirectMount) and needs no
#   helper; the fallback keeps mounts working where direct mount is refused.
# mount (util-linux): k8s.io/mount-utils runs mount(8)/umount(8) for the
#   bind mounts of NodePublishVolume.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 mount \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY --from=build /out/csi-goferfs /usr/local/bin/csi-goferfs
# The chart passes a subcommand and its flags as args (serve ...).
ENTRYPOINT ["/usr/local/bin/csi-goferfs"]
