#!/usr/bin/env bash
# Page cache benchmarks, reported as ratios measured in one run (these
# machines are noisy: never compare numbers from different runs).
#
#   1. Go benchmarks on real mounts (datapath/bench_test.go), -count runs
#      each, medians: warm re-read without a host FD vs passthrough; 4 KiB
#      random writes over a remote with 200 us latency, exclusive vs shared;
#      cache peak vs budget under a working set 4x the budget.
#   2. fio through 'csi-goferfs mount' on the local remote: warm re-read,
#      passthrough vs --force-page-cache, targets interleaved.
#
# Needs root, /dev/fuse and fio. Usage: sudo hack/bench-cache.sh [count]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}

echo "## Go benchmarks (median of $count)"
go test -run '^$' -bench 'WarmReRead|RandomWrite4K|CacheWorkingSet4x' -count "$count" ./datapath/ |
	awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		for (i = 3; i <= NF; i++) {
			if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
			if ($(i+1) == "peak/budget") peak[name] = peak[name] " " $i
		}
	}
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		pt = median(ns["BenchmarkWarmReRead/passthrough"])
		printf "| measure | value | target |\n|---|---|---|\n"
		printf "| warm re-read without host FD, exclusive (kernel cache) / passthrough | %.2fx | >= 0.8x |\n", pt / median(ns["BenchmarkWarmReRead/pagecache-exclusive"])
		printf "| warm re-read without host FD, writethrough read-only open (kernel cache) / passthrough | %.2fx | >= 0.8x |\n", pt / median(ns["BenchmarkWarmReRead/pagecache-writethrough"])
		printf "| warm re-read without host FD, writethrough read-write open (daemon cache, direct I/O) / passthrough | %.2fx | (none) |\n", pt / median(ns["BenchmarkWarmReRead/daemoncache-writethrough-rw"])
		sh = median(ns["BenchmarkRandomWrite4K/shared"])
		printf "| 4 KiB random write over a slow remote, exclusive vs shared | %.1fx | >= 10x |\n", sh / median(ns["BenchmarkRandomWrite4K/exclusive"])
		printf "| 4 KiB random write over a slow remote, writethrough vs shared | %.1fx | (none) |\n", sh / median(ns["BenchmarkRandomWrite4K/writethrough"])
		printf "| cache peak / budget, working set 4x the budget | %.3f | <= 1 |\n", median(peak["BenchmarkCacheWorkingSet4x"])
	}'

if ! command -v fio >/dev/null; then
	echo "fio not installed: skipping the fio part (apt-get install fio)"
	exit 0
fi
echo
echo "## fio warm re-read through csi-goferfs mount (median of $count, interleaved)"
work=$(mktemp -d /tmp/bench-cache.XXXXXX)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/csi-goferfs" ./cmd/csi-goferfs
mkdir -p "$work/remote" "$work/mnt"
dd if=/dev/urandom of="$work/remote/file" bs=1M count=256 status=none

fio_read() { # mount flags... ; prints MB/s
	"$work/csi-goferfs" mount "$@" "$work/remote" "$work/mnt" 2>/dev/null &
	pid=$!
	for _ in $(seq 50); do mountpoint -q "$work/mnt" && break; sleep 0.1; done
	cat "$work/mnt/file" >/dev/null # warm
	fio --name=warm --filename="$work/mnt/file" --rw=read --bs=1M --size=256M \
		--loops=4 --ioengine=psync --output-format=terse --terse-version=3 |
		awk -F';' '{printf "%.0f\n", $7 / 1024}'
	kill -INT "$pid"; wait "$pid" || true; pid=""
}
for _ in $(seq "$count"); do
	echo "passthrough $(fio_read --interop exclusive)"
	echo "forcePageCache-exclusive $(fio_read --interop exclusive --force-page-cache)"
	echo "forcePageCache-writethrough $(fio_read --interop writethrough --force-page-cache)"
done | awk '
	{ v[$1] = v[$1] " " $2 }
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		pt = median(v["passthrough"])
		printf "| target | MB/s | ratio to passthrough |\n|---|---|---|\n"
		printf "| passthrough | %d | 1.00x |\n", pt
		for (k in v) if (k != "passthrough") printf "| %s | %d | %.2fx |\n", k, median(v[k]), median(v[k]) / pt
	}'
