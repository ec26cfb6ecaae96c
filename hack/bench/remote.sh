#!/usr/bin/env bash
# Network-remote benchmark: csi-goferfs over 9P (its own gofer, each interop
# mode) side by side with sshfs and rclone mount (--vfs-cache-mode full) over
# OpenSSH sftp, every connection through Toxiproxy adding LATENCY_MS each way
# on 127.0.0.1. Two workloads:
#
#   untar  extract a tar of SRC (default /usr/local/go/src, ~11.5k files),
#          then sync the mount; both times are reported
#   read   cold sequential read of a READ_MB MiB file that is on the remote
#          (fresh mount, page caches dropped)
#
# Needs root, /dev/fuse, sshfs, rclone, sshd (openssh-server) and toxiproxy
# (go install github.com/Shopify/toxiproxy/v2/cmd/...@latest installs it as
# "server" and "cli"; set TOXIPROXY_SERVER and TOXIPROXY_CLI to those, or put
# toxiproxy-server and toxiproxy-cli on PATH). Everything listens on
# 127.0.0.1 and is removed at exit. Usage:
#
#   sudo hack/bench/remote.sh                  # all targets, full tree
#   sudo SRC=/usr/local/go/src/net TARGETS="exclusive sshfs" hack/bench/remote.sh
set -euo pipefail

SRC=${SRC:-/usr/local/go/src}
READ_MB=${READ_MB:-128}
LATENCY_MS=${LATENCY_MS:-1}
TARGETS=${TARGETS:-"exclusive writethrough shared sshfs rclone"}
PORT_BASE=${PORT_BASE:-25640}

cd "$(dirname "$0")/../.."
repo=$(pwd)
export PATH="$PATH:$(go env GOPATH)/bin:/usr/sbin"
TOXIPROXY_SERVER=${TOXIPROXY_SERVER:-toxiproxy-server}
TOXIPROXY_CLI=${TOXIPROXY_CLI:-toxiproxy-cli}
for tool in sshfs rclone sshd ssh-keygen "$TOXIPROXY_SERVER" "$TOXIPROXY_CLI" fusermount3 bc; do
	command -v "$tool" >/dev/null || { echo "remote.sh: $tool not found (see the header)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "remote.sh: run as root (FUSE mounts, drop_caches)" >&2; exit 1; }

work=$(mktemp -d /tmp/goferfs-bench.XXXXXX)
pids=()
mnt=$work/mnt
cleanup() {
	set +e
	mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

p9=$PORT_BASE; p9proxy=$((PORT_BASE + 1)); ssh=$((PORT_BASE + 2)); sshproxy=$((PORT_BASE + 3)); api=$((PORT_BASE + 4))
mkdir -p "$work/export" "$mnt" "$work/bin"
go build -o "$work/bin/csi-goferfs" ./cmd/csi-goferfs
tar -C "$(dirname "$SRC")" -cf "$work/src.tar" "$(basename "$SRC")"
files=$(tar -tf "$work/src.tar" | wc -l)
head -c $((READ_MB << 20)) /dev/urandom > "$work/export/big"

# The servers, and Toxiproxy in front of each.
"$work/bin/csi-goferfs" gofer --export "$work/export" --listen "127.0.0.1:$p9" 2>"$work/gofer.log" &
pids+=($!)
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/userkey"
cp "$work/userkey.pub" "$work/authorized_keys"
cat > "$work/sshd_config" <<CONF
Port $ssh
ListenAddress 127.0.0.1
HostKey $work/hostkey
PermitRootLogin prohibit-password
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PidFile $work/sshd.pid
Subsystem sftp internal-sftp
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
pids+=($!)
"$TOXIPROXY_SERVER" -host 127.0.0.1 -port "$api" >"$work/toxiproxy.log" 2>&1 &
pids+=($!)
tp() { "$TOXIPROXY_CLI" -h "127.0.0.1:$api" "$@" >/dev/null; }
for i in $(seq 50); do tp list 2>/dev/null && break; sleep 0.1; done
tp create -l "127.0.0.1:$p9proxy" -u "127.0.0.1:$p9" ninep
tp create -l "127.0.0.1:$sshproxy" -u "127.0.0.1:$ssh" ssh
for proxy in ninep ssh; do
	tp toxic add -t latency -a "latency=$LATENCY_MS" -n up -u "$proxy"
	tp toxic add -t latency -a "latency=$LATENCY_MS" -n down -d "$proxy"
done

sshopts=(-p "$sshproxy" -o "IdentityFile=$work/userkey" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null)
export RCLONE_CONFIG_BENCH_TYPE=sftp RCLONE_CONFIG_BENCH_HOST=127.0.0.1 RCLONE_CONFIG_BENCH_PORT=$sshproxy \
	RCLONE_CONFIG_BENCH_USER=root RCLONE_CONFIG_BENCH_KEY_FILE=$work/userkey RCLONE_CONFIG_BENCH_SHELL_TYPE=unix

# mount_target mounts the export at $mnt the way target does, in the
# background, and waits until the mount is there.
mount_target() {
	case $1 in
	exclusive | writethrough | shared)
		"$work/bin/csi-goferfs" mount --interop "$1" "9p://127.0.0.1:$p9proxy/" "$mnt" 2>>"$work/mount.log" &
		mountpid=$! ;;
	sshfs)
		sshfs -f "${sshopts[@]}" "root@127.0.0.1:$work/export" "$mnt" 2>>"$work/mount.log" &
		mountpid=$! ;;
	rclone)
		rm -rf "$work/rclone-cache"
		rclone mount "bench:$work/export" "$mnt" --vfs-cache-mode full --cache-dir "$work/rclone-cache" 2>>"$work/mount.log" &
		mountpid=$! ;;
	esac
	for i in $(seq 300); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
	echo "remote.sh: $1 did not mount; see $work/mount.log" >&2
	cat "$work/mount.log" >&2
	exit 1
}

unmount_target() {
	# csi-goferfs writes back and unmounts on SIGTERM; the others on unmount.
	case $1 in
	exclusive | writethrough | shared) kill -TERM "$mountpid" ;;
	*) fusermount3 -u "$mnt" ;;
	esac
	wait "$mountpid" 2>/dev/null || true
}

now() { date +%s.%N; }
declare -A untar syncs readmbs
for target in $TARGETS; do
	echo "== $target" >&2
	# untar, then sync; the sync time includes writeback at unmount and,
	# for rclone, its background upload.
	mount_target "$target"
	dest=$mnt/untar-$target
	mkdir "$dest"
	t0=$(now)
	tar -C "$dest" -xf "$work/src.tar"
	t1=$(now)
	sync -f "$mnt"
	if [ "$target" = rclone ]; then
		# rclone uploads in the background and does not wait for it at
		# unmount: wait until the export has every entry (at most 10 min).
		for i in $(seq 6000); do
			[ "$(find "$work/export/untar-$target" | wc -l)" -ge "$files" ] && break
			sleep 0.1
		done
	fi
	unmount_target "$target"
	t2=$(now)
	untar[$target]=$(echo "$t1 - $t0" | bc)
	syncs[$target]=$(echo "$t2 - $t1" | bc)
	got=$(find "$work/export/untar-$target" | wc -l)
	[ "$got" -ge "$files" ] || echo "remote.sh: $target: only $got of $files entries reached the export" >&2
	rm -rf "$work/export/untar-$target"

	# cold sequential read
	sync; echo 3 >/proc/sys/vm/drop_caches
	mount_target "$target"
	t0=$(now)
	dd if="$mnt/big" of=/dev/null bs=1M status=none
	t1=$(now)
	unmount_target "$target"
	readmbs[$target]=$(echo "scale=1; $READ_MB / ($t1 - $t0)" | bc)
done

printf '\n%d ms latency each way (Toxiproxy); untar of %s (%d entries); cold read of %d MiB\n\n' "$LATENCY_MS" "$SRC" "$files" "$READ_MB"
printf '%-13s %10s %10s %12s\n' target "untar s" "+sync s" "read MiB/s"
for target in $TARGETS; do
	printf '%-13s %10.1f %10.1f %12.1f\n' "$target" "${untar[$target]}" "${syncs[$target]}" "${readmbs[$target]}"
done
for peer in sshfs rclone; do
	[ -n "${untar[$peer]:-}" ] || continue
	printf '\nratios to %s (untar+sync: peer/ours, >1 means faster; read: ours/peer)\n' "$peer"
	for target in exclusive writethrough shared; do
		[ -n "${untar[$target]:-}" ] || continue
		printf '%-13s untar %5.2fx   read %5.2fx\n' "$target" \
			"$(echo "(${untar[$peer]} + ${syncs[$peer]}) / (${untar[$target]} + ${syncs[$target]})" | bc -l)" \
			"$(echo "${readmbs[$target]} / ${readmbs[$peer]}" | bc -l)"
	done
done
