#!/usr/bin/env bash
# Benchmark of `costor mount` against the targets of the mount issue:
#   1. sequential read of a large file through the mount vs `costor dump`
#      of the same file, and vs restic's mount of the same data;
#   2. listing a directory of 100,000 entries;
#   3. mount start on a repository with 1,000 snapshots.
# Caches are dropped before every cold read. Needs root (FUSE, drop_caches)
# and restic (Debian's package; RESTIC= to use another build).
#
#   sudo tests/bench/mount.sh            # SIZE_MB=256 ENTRIES=100000 SNAPSHOTS=1000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SIZE_MB=${SIZE_MB:-256}
ENTRIES=${ENTRIES:-100000}
SNAPSHOTS=${SNAPSHOTS:-1000}
RESTIC=${RESTIC:-restic}
export PATH="$PATH:/usr/local/go/bin"

work=$(mktemp -d /var/tmp/costor-bench-mount.XXXXXX)
mnt="$work/mnt"
mkdir -p "$mnt" "$work/src/big" "$work/src/many"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	umount -l "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/costor" ./cmd/costor
costor="$work/costor"
export COSTOR_REPO="$work/repo" COSTOR_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$work/cache"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
seconds() { local s=$EPOCHREALTIME; "$@" >/dev/null; echo "$EPOCHREALTIME - $s" | bc; }
wait_for() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }

echo "generating ${SIZE_MB} MiB file and ${ENTRIES} entries" >&2
head -c "$((SIZE_MB << 20))" /dev/urandom >"$work/src/big/large.bin"
(cd "$work/src/many" && seq -f "f%06g" 1 "$ENTRIES" | xargs touch)

"$costor" init -q
"$costor" backup -q "$work/src" >/dev/null
host=$(hostname)
big="$work/src/big/large.bin"

drop
t_dump=$(seconds "$costor" dump "latest:$big")

"$costor" mount "$mnt" & pids+=($!)
wait_for "$mnt/hosts/$host/latest"
drop
t_mount=$(seconds cat "$mnt/hosts/$host/latest$big")
drop
t_list=$(seconds ls -f "$mnt/hosts/$host/latest$work/src/many")
kill -INT "${pids[-1]}"; wait "${pids[-1]}" || true

t_restic=""
if command -v "$RESTIC" >/dev/null; then
	"$RESTIC" -q init -r "$work/restic" >/dev/null
	"$RESTIC" -q -r "$work/restic" backup "$work/src" >/dev/null
	"$RESTIC" -r "$work/restic" mount "$mnt" >/dev/null 2>&1 & pids+=($!)
	wait_for "$mnt/snapshots/latest"
	drop
	t_restic=$(seconds cat "$mnt/snapshots/latest$big")
	umount "$mnt"; wait "${pids[-1]}" || true
fi

echo "adding ${SNAPSHOTS} snapshots" >&2
small=$(mktemp -d "$work/small.XXXX")
go run ./tests/bench/manysnaps -repo "$COSTOR_REPO" -src "$small" -n "$SNAPSHOTS"
# First mount fills the mount's cache index; the second is the everyday start.
for round in first again; do
	s=$EPOCHREALTIME
	"$costor" mount "$mnt" & pids+=($!)
	wait_for "$mnt/hosts/$host/latest"
	t=$(echo "$EPOCHREALTIME - $s" | bc)
	n=$(ls "$mnt/hosts/$host" | wc -l)
	kill -INT "${pids[-1]}"; wait "${pids[-1]}" || true
	eval "t_start_$round=$t"
done

mbps() { echo "scale=1; $SIZE_MB / $1" | bc; }
cat <<MD
| measurement | time (s) | rate |
|---|---:|---:|
| costor dump of ${SIZE_MB} MiB (cold) | $t_dump | $(mbps "$t_dump") MiB/s |
| cat through costor mount (cold) | $t_mount | $(mbps "$t_mount") MiB/s |
| cat through restic $("$RESTIC" version 2>/dev/null | awk '{print $2}') mount (cold) | ${t_restic:-n/a} | $([ -n "$t_restic" ] && mbps "$t_restic") MiB/s |
| ls -f of ${ENTRIES} entries (cold) | $t_list | |
| mount start, $((n - 1)) snapshots, first (fills cache index) | $t_start_first | |
| mount start, $((n - 1)) snapshots, again | $t_start_again | |

mount/dump: $(echo "scale=2; $t_dump / $t_mount" | bc) (target ≥ 0.70); mount vs restic: $([ -n "$t_restic" ] && echo "scale=2; $t_restic / $t_mount" | bc)× (target ≥ 3)
MD
