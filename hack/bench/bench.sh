#!/usr/bin/env bash
# hack/bench/bench.sh: the data path benchmark suite (see docs/benchmarks.md).
#
# Mounts each target, runs a fixed set of workloads, and prints a markdown
# table of medians with ratios against native ext4 measured in the same
# run. Targets are interleaved within each round, so machine noise spreads
# over all of them instead of favouring one.
#
# Targets: native (the directory itself), csi-goferfs `mount` in each interop
# mode with and without --force-page-cache, and go-fuse's loopback example
# (the plain-FUSE peer, with passthrough): `loopback` as it runs by default
# (no kernel permission checks, a single-user mount) and `loopback-perm`
# with -allow-other, which turns on default_permissions as csi-goferfs
# must for pods of many users.
#
# Usage: sudo hack/bench/bench.sh [-r ROUNDS] [-t TARGET,...] [-w WORKLOAD,...] [-o OUT.md] [-l LOCKFILE] [-b BASELINE]
# -l takes an flock(1) lock file around each measurement, so that other
# mount-heavy jobs on a shared machine run between measurements, not during.
# -b names a csi-goferfs binary built from another commit; targets spelled
# base-MODE (base-exclusive, base-exclusive-fpc, ...) run it, so a change is
# measured against its baseline in the same run.
# Needs root (mounts, drop_caches), fio, tar, and Go.
set -euo pipefail
caller=$PWD # relative -o and -b paths are the caller's
cd "$(dirname "$0")/../.."
repo=$PWD

rounds=3
targets="native,exclusive,exclusive-fpc,writethrough,writethrough-fpc,shared,shared-fpc,loopback,loopback-perm"
workloads="seqwrite,seqread-cold,randread-direct,randread-warm,randwrite-fsync,untar,stat-all,read-all,rm-all"
out=""
lock=""
baseline=""
while getopts "r:t:w:o:l:b:" opt; do
	case $opt in
	r) rounds=$OPTARG ;;
	t) targets=$OPTARG ;;
	w) workloads=$OPTARG ;;
	o) out=$(cd "$caller" && realpath -m -- "$OPTARG") ;;
	l) lock=$OPTARG ;;
	b) baseline=$(cd "$caller" && realpath -- "$OPTARG") ;;
	*) echo "usage: $0 [-r rounds] [-t targets] [-w workloads] [-o out.md] [-l lockfile] [-b baseline-binary]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (mounts, drop_caches)" >&2; exit 1; }
command -v fio >/dev/null || { echo "bench: needs fio (apt-get install fio)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/goferfs-bench.XXXXXX) # on the same disk as the targets' backing dirs
pid=""
cleanup() {
	stop_target || true
	rm -rf "$work"
}
trap cleanup EXIT

bin=$work/bin
mkdir -p "$bin"
go build -o "$bin/csi-goferfs" ./cmd/csi-goferfs
go build -o "$bin/loopback" github.com/hanwen/go-fuse/v2/example/loopback
tar -C "$(go env GOROOT)" -cf "$work/gosrc.tar" src
files=$(tar -tf "$work/gosrc.tar" | grep -vc '/$')
mb=$(( $(stat -c %s "$work/gosrc.tar") / 1048576 ))

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# start_target NAME: prepares $dir (where workloads run) for target NAME.
start_target() {
	local name=$1
	rm -rf "$work/remote" "$work/mnt"
	mkdir -p "$work/remote" "$work/mnt"
	local args=()
	case $name in
	native) dir=$work/remote; return ;;
	loopback)
		"$bin/loopback" "$work/mnt" "$work/remote" >/dev/null 2>&1 &
		pid=$! ;;
	loopback-perm)
		"$bin/loopback" -allow-other "$work/mnt" "$work/remote" >/dev/null 2>&1 &
		pid=$! ;;
	*)
		local exe=$bin/csi-goferfs target=$name
		if [ "${name#base-}" != "$name" ]; then
			[ -n "$baseline" ] || { echo "bench: target $name needs -b" >&2; exit 2; }
			exe=$baseline target=${name#base-}
		fi
		local mode=${target%-fpc}
		args=(--interop "$mode")
		[ "$target" != "$mode" ] && args+=(--force-page-cache)
		"$exe" mount "${args[@]}" "$work/remote" "$work/mnt" 2>"$work/mount.log" &
		pid=$! ;;
	esac
	for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
	mountpoint -q "$work/mnt" || { echo "bench: $name did not mount" >&2; cat "$work/mount.log" >&2 || true; exit 1; }
	dir=$work/mnt
}

stop_target() {
	[ -n "$pid" ] || return 0
	sync
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	mountpoint -q "$work/mnt" && umount "$work/mnt" 2>/dev/null || true
	pid=""
}

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# fio_bw JOBARGS...: runs one fio job in $dir, prints MB/s (read+write).
fio_bw() {
	fio --name=job --directory="$dir" --output-format=terse --terse-version=3 "$@" |
		awk -F';' '{ printf "%.1f\n", ($7 + $48) / 1024 }'
}

# run_workload NAME: prints "value unit" where higher or lower is better per unit.
run_workload() {
	case $1 in
	seqwrite) echo "$(fio_bw --rw=write --bs=1M --size=512M --end_fsync=1 --ioengine=psync) MB/s" ;;
	seqread-cold)
		fio_bw --rw=write --bs=1M --size=512M --end_fsync=1 >/dev/null
		drop_caches
		echo "$(fio_bw --rw=read --bs=1M --size=512M --ioengine=psync) MB/s" ;;
	randread-direct)
		fio_bw --rw=write --bs=1M --size=256M --end_fsync=1 >/dev/null
		echo "$(fio_bw --rw=randread --bs=4k --size=256M --direct=1 --runtime=10 --time_based --ioengine=psync) MB/s" ;;
	randread-warm)
		fio_bw --rw=write --bs=1M --size=256M --end_fsync=1 >/dev/null
		cat "$dir/job.0.0" >/dev/null
		# --invalidate=0: fio drops the file's page cache before a job by
		# default, which would make this a cold read for native.
		echo "$(fio_bw --rw=randread --bs=4k --size=256M --invalidate=0 --runtime=10 --time_based --ioengine=psync) MB/s" ;;
	randwrite-fsync) echo "$(fio_bw --rw=randwrite --bs=4k --size=32M --fsync=1 --runtime=10 --time_based --ioengine=psync) MB/s" ;;
	untar)
		local t0; t0=$(now)
		tar -C "$dir" -xf "$work/gosrc.tar"
		sync
		echo "$(elapsed "$t0") s" ;;
	stat-all)
		[ -d "$dir/src" ] || tar -C "$dir" -xf "$work/gosrc.tar"
		drop_caches
		local t0; t0=$(now)
		find "$dir/src" -type f -exec stat -c %s {} + >/dev/null
		echo "$(elapsed "$t0") s" ;;
	read-all)
		[ -d "$dir/src" ] || tar -C "$dir" -xf "$work/gosrc.tar"
		drop_caches
		local t0; t0=$(now)
		find "$dir/src" -type f -print0 | xargs -0 cat >/dev/null
		echo "$(elapsed "$t0") s" ;;
	rm-all)
		[ -d "$dir/src" ] || { tar -C "$dir" -xf "$work/gosrc.tar"; sync; }
		local t0; t0=$(now)
		rm -rf "$dir/src"
		sync
		echo "$(elapsed "$t0") s" ;;
	*) echo "bench: unknown workload $1" >&2; exit 2 ;;
	esac
}

[ -z "$lock" ] || exec 9>"$lock"
results=$work/results.tsv
: >"$results"
IFS=, read -ra T <<<"$targets"
IFS=, read -ra W <<<"$workloads"
for round in $(seq "$rounds"); do
	for w in "${W[@]}"; do
		# Rotate the order each round: no target always runs first.
		n=${#T[@]}
		for i in $(seq 0 $((n - 1))); do
			t=${T[$(((i + round) % n))]}
			[ -z "$lock" ] || flock 9
			start_target "$t"
			r=$(run_workload "$w")
			stop_target
			[ -z "$lock" ] || flock -u 9
			echo "round $round $w $t: $r" >&2
			printf '%s\t%s\t%s\n' "$w" "$t" "$r" >>"$results"
		done
	done
done

table=$work/table.md
{
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(df -T "$work" | awk 'NR==2 {print $2}') on the backing disk."
	echo "Go source tree: $files files, $mb MB. Median of $rounds rounds; targets interleaved."
	echo
	awk -F'\t' -v targets="$targets" '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ split($3, vu, " "); v[$1 SUBSEP $2] = v[$1 SUBSEP $2] " " vu[1]; unit[$1] = vu[2]; if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 } }
	END {
		nt = split(targets, T, ",")
		printf "| workload |"; for (i = 1; i <= nt; i++) printf " %s |", T[i]; printf "\n|---|"
		for (i = 1; i <= nt; i++) printf "---|"; printf "\n"
		for (k = 1; k <= nw; k++) {
			w = order[k]; base = median(v[w SUBSEP "native"])
			printf "| %s (%s) |", w, unit[w]
			for (i = 1; i <= nt; i++) {
				m = median(v[w SUBSEP T[i]])
				# ratio: how many times native speed (>1 is faster than native)
				r = (unit[w] == "s") ? base / m : m / base
				printf " %.3g (%.2fx) |", m, r
			}
			printf "\n"
		}
	}' "$results"
	echo
	echo "Each cell: median, and in brackets the speed relative to native (1.00x = native; for times, native time / target time)."
} >"$table"
cat "$table"
if [ -n "$out" ]; then
	cp "$results" "${out%.md}.tsv"
	cp "$table" "$out"
	(cd hack/tools && go run ./benchchart -in "${out%.md}.tsv" -out "${out%.md}.png") &&
		echo "chart: ${out%.md}.png"
fi
