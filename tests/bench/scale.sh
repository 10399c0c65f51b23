#!/usr/bin/env bash
# Scale benchmark for the "Scale" target of issue 7: memory must not grow
# with repository size.
#
#   1. FILES small files (0–4 KiB, seeded, in ~10,000 directories): an
#      initial backup (time only), then a no-change backup whose peak RSS
#      is measured.
#   2. A repository of BLOBS synthetic blobs in real packs (~4,000 blobs per
#      pack) plus 5 small snapshots (tests/bench/scalegen): the peak RSS of
#      `costor snapshots`, and of `costor mount` started twice — the first
#      start fills the mount's cache index from every pack header, the
#      second opens it — each time listing the mount, reading one file and
#      unmounting.
#
# Every measured command runs under /usr/bin/time -v (peak RSS = "Maximum
# resident set size") with GODEBUG=gctrace=1 (the Go heap at each GC);
# /proc/PID/status is sampled every 100 ms to split RSS into anonymous
# memory (what the process owns) and file-backed pages (mostly Badger's
# mmapped tables: page cache the kernel can drop).
#
#   sudo tests/bench/scale.sh                            # FILES=1000000 BLOBS=10000000
#   sudo FILES=200000 BLOBS=2000000 tests/bench/scale.sh
#   sudo WORK=/var/tmp/scale KEEP=1 tests/bench/scale.sh  # reuse/keep the generated data
#
# Output: a markdown table on stdout and results-scale.json (OUT= to
# change) in the current directory. Needs root (FUSE), Go, and the `time`
# and `fuse3` packages (installed with apt-get when missing).
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-$PWD/results-scale.json}
cd "$repo_root"

FILES=${FILES:-1000000}
BLOBS=${BLOBS:-10000000}
SNAPSHOTS=${SNAPSHOTS:-5}
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" != 0 ]; then
	echo "scale.sh: run as root (sudo): the mount needs FUSE" >&2
	exit 1
fi
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v fusermount3 >/dev/null || [ -e /dev/fuse ] || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -n "${WORK:-}" ]; then
	work=$WORK
	mkdir -p "$work"
	keep=${KEEP:-1}
else
	work=$(mktemp -d /var/tmp/costor-scale.XXXXXX)
	keep=${KEEP:-0}
fi
mnt="$work/mnt"
mkdir -p "$mnt" "$work/bin" "$work/log"
mount_pid=""
cleanup() {
	if [ -n "$mount_pid" ]; then kill -TERM "$mount_pid" 2>/dev/null || true; sleep 1; fi
	umount -l "$mnt" 2>/dev/null || true
	if [ "$keep" != 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

go build -o "$work/bin/costor" ./cmd/costor
go build -o "$work/bin/scalegen" ./tests/bench/scalegen
costor="$work/bin/costor"
scalegen="$work/bin/scalegen"
export HOME="$work/home" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data"
export COSTOR_PASSWORD=bench
mkdir -p "$HOME"
host=$(hostname)
log() { echo "[$(date +%T)] $*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# wall [h:]m:ss.cc from /usr/bin/time -v → seconds
tv_wall() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'; }
tv_rss() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
tv_cpu() { awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$1"; }
# peak heap at GC start and peak live heap after GC, MiB, from gctrace lines
# "gc N @… %: … ms cpu, A->B->C MB, D MB goal, …"
gc_peaks() {
	awk '/^gc [0-9]+ @/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB," && $i ~ /->/) { split($i, a, "->"); if (a[1] + 0 > h) h = a[1] + 0; if (a[3] + 0 > l) l = a[3] + 0; n++ } }
	     END { printf "%d %d %d\n", h, l, n }' "$1"
}

# start NAME CMD…: runs CMD in the background under /usr/bin/time -v with
# gctrace on, and samples its /proc status every 100 ms. Sets run_pid (the
# costor process) and run_tpid (time).
start() {
	local name=$1; shift
	rm -f "$work/log/$name".*
	/usr/bin/time -v -o "$work/log/$name.time" env GODEBUG=gctrace=1 "$@" >"$work/log/$name.out" 2>"$work/log/$name.err" &
	run_tpid=$!
	run_pid=""
	for _ in $(seq 1 200); do
		run_pid=$(awk '{print $1}' "/proc/$run_tpid/task/$run_tpid/children" 2>/dev/null) || true
		if [ -z "$run_pid" ]; then run_pid=$(pgrep -P "$run_tpid" | head -1) || true; fi
		[ -n "$run_pid" ] && break
		sleep 0.01
	done
	# sampler: one line per sample, "RssAnon RssFile VmHWM" in kB
	(
		while [ -n "$run_pid" ] && [ -r "/proc/$run_pid/status" ]; do
			awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} /^VmHWM:/ {h = $2} END { if (h) print a, f, h }' "/proc/$run_pid/status" 2>/dev/null || true
			sleep 0.1
		done >"$work/log/$name.samples"
	) &
	run_spid=$!
}

# finish NAME: waits for the command started by start; fails if it failed.
# Appends a result line: name wall rss_kib cpu anon_peak_kib file_peak_kib heap_peak_mib live_peak_mib gcs
finish() {
	local name=$1 rc=0
	wait "$run_tpid" || rc=$?
	wait "$run_spid" 2>/dev/null || true
	if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
		echo "scale.sh: $name failed (exit $rc):" >&2
		grep -v '^gc [0-9]* @' "$work/log/$name.err" | tail -20 >&2
		exit 1
	fi
	local anon file gc
	anon=$(awk '$1 > m {m = $1} END {print m + 0}' "$work/log/$name.samples")
	file=$(awk '$2 > m {m = $2} END {print m + 0}' "$work/log/$name.samples")
	gc=$(gc_peaks "$work/log/$name.err")
	echo "$name $(tv_wall "$work/log/$name.time") $(tv_rss "$work/log/$name.time") $(tv_cpu "$work/log/$name.time") $anon $file $gc" >>"$work/results"
	log "$name: $(tail -1 "$work/results")"
}

measure() { start "$@"; finish "$1"; }

wait_for() {
	local path=$1 limit=$2
	for _ in $(seq 1 $((limit * 10))); do
		[ -e "$path" ] && return 0
		kill -0 "$run_tpid" 2>/dev/null || { echo "scale.sh: the mount exited:" >&2; grep -v '^gc [0-9]* @' "$work/log/$3.err" | tail -20 >&2; return 1; }
		sleep 0.1
	done
	echo "scale.sh: timeout waiting for $path" >&2
	return 1
}

: >"$work/results"
declare -A info

# ---- 1. FILES small files ------------------------------------------------
src="$work/files"
if [ ! -e "$work/files.done-$FILES" ]; then
	rm -rf "$src" "$work"/files.done-*
	log "generating $FILES files"
	s=$EPOCHREALTIME
	"$scalegen" files -dir "$src" -n "$FILES" -dirs 10000 -max 4096
	info[gen_files_s]=$(since "$s")
	touch "$work/files.done-$FILES"
fi
info[files_bytes]=$(du -sb "$src" | awk '{print $1}')
info[files_dirs]=$(find "$src" -type d | wc -l)

export COSTOR_REPO="$work/repo-files"
rm -rf "$COSTOR_REPO" "$XDG_CACHE_HOME"
"$costor" -q init >/dev/null
log "initial backup of $FILES files"
measure backup_initial "$costor" -q backup --host bench "$src"
log "no-change backup"
measure backup_nochange "$costor" -q backup --host bench "$src"
info[files_repo_bytes]=$(du -sb "$COSTOR_REPO" | awk '{print $1}')
info[files_index_bytes]=$(du -sb "$COSTOR_REPO/index" | awk '{print $1}')
[ "$keep" = 1 ] || rm -rf "$COSTOR_REPO"

# ---- 2. BLOBS synthetic blobs ------------------------------------------
export COSTOR_REPO="$work/repo-blobs"
small="$work/small"
if [ ! -e "$work/blobs.done-$BLOBS" ]; then
	rm -rf "$COSTOR_REPO" "$small" "$work"/blobs.done-* "$XDG_CACHE_HOME"
	mkdir -p "$small/docs"
	head -c $((1 << 20)) /dev/zero | tr '\0' 'x' >"$small/docs/one-mib.txt"
	for i in $(seq 1 100); do echo "file $i" >"$small/docs/f$i.txt"; done
	log "generating a repository of $BLOBS blobs and $SNAPSHOTS snapshots"
	/usr/bin/time -v -o "$work/log/gen_blobs.time" "$scalegen" repo -repo "$COSTOR_REPO" -blobs "$BLOBS" -src "$small" -snapshots "$SNAPSHOTS" -host "$host"
	info[gen_blobs_s]=$(tv_wall "$work/log/gen_blobs.time")
	info[gen_blobs_rss_kib]=$(tv_rss "$work/log/gen_blobs.time")
	touch "$work/blobs.done-$BLOBS"
fi
info[blobs_packs]=$(find "$COSTOR_REPO/packs" -type f | wc -l)
info[blobs_repo_bytes]=$(du -sb "$COSTOR_REPO" | awk '{print $1}')
info[blobs_index_bytes]=$(du -sb "$COSTOR_REPO/index" | awk '{print $1}')

log "snapshots"
measure snapshots "$costor" snapshots
nsnap=$("$costor" --json snapshots | jq length 2>/dev/null || echo "?")
log "  $nsnap snapshots listed"

rm -rf "$XDG_CACHE_HOME" # the first mount builds its cache index from scratch
for round in mount_first mount_second; do
	log "$round"
	umount -l "$mnt" 2>/dev/null || true
	s=$EPOCHREALTIME
	start "$round" "$costor" mount "$mnt"
	mount_pid=$run_pid
	wait_for "$mnt/hosts/$host/latest" 7200 "$round"
	info[${round}_ready_s]=$(since "$s")
	ls "$mnt/hosts/$host" >/dev/null
	n=$(ls -la "$mnt/hosts/$host/latest$small/docs" | wc -l)
	[ "$n" -ge 100 ] || { echo "scale.sh: the mount lists only $n entries in $small/docs" >&2; exit 1; }
	cmp "$mnt/hosts/$host/latest$small/docs/one-mib.txt" "$small/docs/one-mib.txt"
	kill -TERM "$mount_pid"
	finish "$round"
	mount_pid=""
	log "  ready after ${info[${round}_ready_s]} s"
done
info[mount_cache_bytes]=$(du -sb "$XDG_CACHE_HOME" | awk '{print $1}')

# ---- report --------------------------------------------------------------
mib() { echo $(($1 / 1024)); }
date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/MemTotal/ {printf "%d", $2 / 1024}' /proc/meminfo)
commit=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$repo_root" diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
gov=$(go version | awk '{print $3}')
cver=$("$costor" --version | awk '{print $NF}')
# shellcheck disable=SC1091
os=$(. /etc/os-release && echo "$PRETTY_NAME")
kernel=$(uname -r)

{
	echo "## costor scale benchmark"
	echo
	echo "$date_utc · $(nproc) × $cpu_model, $mem_total MiB RAM · $os, Linux $kernel · costor $cver ($commit), $gov"
	echo
	echo "FILES=$FILES small files ($(mib $((info[files_bytes] / 1024))) MiB in ${info[files_dirs]} directories); BLOBS=$BLOBS blobs in ${info[blobs_packs]} packs, $nsnap snapshots (index $(mib $((info[blobs_index_bytes] / 1024))) MiB)."
	echo
	echo "| run | wall s | CPU s | peak RSS MiB | peak anon MiB | peak file MiB | Go heap peak MiB | live heap peak MiB | GCs |"
	echo "|---|---|---|---|---|---|---|---|---|"
	while read -r name wall rss cpu anon file heap live gcs; do
		echo "| $name | $wall | $cpu | $(mib "$rss") | $(mib "$anon") | $(mib "$file") | $heap | $live | $gcs |"
	done <"$work/results"
	echo
	echo "Mount ready (\`hosts/$host/latest\` visible): first start ${info[mount_first_ready_s]} s (fills the cache index from every pack header), second ${info[mount_second_ready_s]} s."
	echo "Peak RSS is /usr/bin/time's; anon and file are peaks of RssAnon and RssFile sampled every 100 ms (file ≈ Badger's mmapped tables); Go heap peak is the largest heap at the start of a GC (gctrace), live the largest after one."
} | tee "$work/report.md"

{
	printf '{\n  "date": "%s",\n' "$date_utc"
	printf '  "machine": {"cpus": %d, "cpu": "%s", "mem_mib": %d, "os": "%s", "kernel": "%s"},\n' "$(nproc)" "$cpu_model" "$mem_total" "$os" "$kernel"
	printf '  "versions": {"costor": "%s", "commit": "%s", "go": "%s"},\n' "$cver" "$commit" "$gov"
	printf '  "params": {"files": %d, "blobs": %d, "snapshots": %s, "packs": %d},\n' "$FILES" "$BLOBS" "$nsnap" "${info[blobs_packs]}"
	printf '  "sizes_bytes": {"files": %d, "files_repo": %d, "files_index": %d, "blobs_repo": %d, "blobs_index": %d, "mount_cache": %d},\n' \
		"${info[files_bytes]}" "${info[files_repo_bytes]}" "${info[files_index_bytes]}" "${info[blobs_repo_bytes]}" "${info[blobs_index_bytes]}" "${info[mount_cache_bytes]}"
	printf '  "generation_seconds": {"files": %s, "blobs": %s},\n' "${info[gen_files_s]:-null}" "${info[gen_blobs_s]:-null}"
	printf '  "mount_ready_seconds": {"first": %s, "second": %s},\n' "${info[mount_first_ready_s]}" "${info[mount_second_ready_s]}"
	printf '  "runs": {\n'
	sep=""
	while read -r name wall rss cpu anon file heap live gcs; do
		printf '%s    "%s": {"wall_s": %s, "cpu_s": %s, "peak_rss_kib": %d, "peak_anon_kib": %d, "peak_file_kib": %d, "go_heap_peak_mib": %d, "go_live_peak_mib": %d, "gcs": %d}' \
			"$sep" "$name" "$wall" "$cpu" "$rss" "$anon" "$file" "$heap" "$live" "$gcs"
		sep=$',\n'
	done <"$work/results"
	printf '\n  }\n}\n'
} >"$OUT"
jq . "$OUT" >/dev/null 2>&1 || echo "warning: $OUT is not valid JSON" >&2
log "wrote $OUT"
