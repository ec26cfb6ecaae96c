#!/usr/bin/env bash
# Installs the system packages the tests need (Debian/Ubuntu, as root).
# Safe to rerun: it installs only what is missing.
set -euo pipefail

need=()
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v fio >/dev/null 2>&1 || need+=(fio)
# diod: an independent 9P2000.L server the 9P backend is tested against.
command -v diod >/dev/null 2>&1 || need+=(diod)
# perl: a test creates a file with set-ID bits in its open(2) mode as
# another user, which sh cannot do.
command -v perl >/dev/null 2>&1 || need+=(perl-base)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The tests mount FUSE file systems; say so early if they cannot.
if [ ! -c /dev/fuse ]; then
	echo "install-deps: /dev/fuse is missing; mount tests will skip" >&2
fi
