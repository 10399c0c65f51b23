#!/usr/bin/env bash
# Benchmark of a backup to a site server on loopback against the target of
# the server issue: throughput ≥ 80% of a local-repository backup of the
# same data.
#
# A seeded corpus (SIZE_MB of random bytes in large files, plus SMALL small
# files) is backed up RUNS times into a fresh local repository and RUNS
# times to a fresh `costor server` on 127.0.0.1, alternating. Page caches
# are dropped before every run when root. Peak RSS of the client comes from
# /usr/bin/time -v, the server's from its /proc/PID/status VmHWM.
#
#   tests/bench/server.sh                 # SIZE_MB=1024 SMALL=5000 RUNS=3 SEED=1
#   SIZE_MB=256 RUNS=1 tests/bench/server.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SIZE_MB=${SIZE_MB:-1024}
SMALL=${SMALL:-5000}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
export PATH="$PATH:/usr/local/go/bin"

work=$(mktemp -d /var/tmp/costor-bench-server.XXXXXX)
server_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/costor" ./cmd/costor
costor="$work/costor"
export HOME="$work/home" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config" COSTOR_PASSWORD=bench
mkdir -p "$HOME"

drop() { sync; if [ "$(id -u)" = 0 ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
# stream N bytes of seeded random data: AES-CTR of zeros under a key from the seed.
# (openssl dies of SIGPIPE when head has enough: not an error)
seeded() { { openssl enc -aes-256-ctr -nosalt -pass "pass:costor-bench-$1" -pbkdf2 </dev/zero 2>/dev/null || true; } | head -c "$2"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

src="$work/src"
echo "generating ${SIZE_MB} MiB in large files and ${SMALL} small files (seed ${SEED})" >&2
mkdir -p "$src/large" "$src/small"
left=$SIZE_MB
i=0
while [ "$left" -gt 0 ]; do
	n=$((left < 64 ? left : 64))
	seeded "$SEED-large-$i" "$((n << 20))" >"$src/large/$(printf 'l%03d.bin' "$i")"
	left=$((left - n))
	i=$((i + 1))
done
# small files: 1-16 KiB each, cut from one seeded stream
seeded "$SEED-small" "$((SMALL * 16384))" >"$work/small.stream"
python3 - "$work/small.stream" "$src/small" "$SMALL" "$SEED" <<'PY'
import os, random, sys
stream, out, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
with open(stream, 'rb') as f:
    for i in range(n):
        d = os.path.join(out, 'd%03d' % (i // 500))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'f%05d.dat' % i), 'wb') as g:
            g.write(f.read(rng.randint(1024, 16384)))
PY
rm -f "$work/small.stream"
bytes=$(du -sb "$src" | awk '{print $1}')
mb=$(echo "scale=3; $bytes / 1048576" | bc)
echo "corpus: $mb MiB" >&2

# keys for the server runs (recovery key KDF not timed)
"$costor" -q key init --org-out "$work/org.key" --recovery-out "$work/recovery.key" >/dev/null

# timed RESULT_FILE CMD…: runs CMD under /usr/bin/time -v; prints
# "wall_seconds rss_kib cpu_seconds" (cpu: user + system)
timed() {
	local out=$1; shift
	/usr/bin/time -v -o "$out" "$@" >/dev/null
	local wall rss cpu
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out")
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
	cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$out")
	# wall is [h:]m:ss.cc
	echo "$wall" | awk -F: -v rss="$rss" -v cpu="$cpu" '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f %d %s\n", s, rss, cpu }'
}

local_run() {
	local repo="$work/local-repo"
	rm -rf "$repo" "$XDG_CACHE_HOME"
	# The cheap test KDF: what is timed is throughput, not the fixed ~0.5 s
	# password unlock a local repository costs (a server backup has none).
	COSTOR_TEST_FAST_KDF=1 COSTOR_REPO="$repo" "$costor" -q init >/dev/null 2>&1
	drop
	COSTOR_REPO="$repo" timed "$work/time.local" "$costor" -q backup --host bench "$src" >"$work/result"
	rm -rf "$repo"
}

server_run() {
	local data="$work/server-data" port
	rm -rf "$data" "$XDG_CACHE_HOME"
	port=$(free_port)
	"$costor" server --data "$data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
	server_pid=$!
	for _ in $(seq 1 400); do
		[ -s "$data/admin.token" ] && [ -s "$data/tls/cert.pem" ] && grep -q listening "$work/server.log" && break
		sleep 0.05
	done
	local common=(--repo "https://127.0.0.1:$port" --cacert "$data/tls/cert.pem")
	COSTOR_TOKEN=$(cat "$data/admin.token") "$costor" -q "${common[@]}" \
		token create --role agent --host bench --name bench >"$work/agent.token"
	rm -f "$work/host.key"
	drop
	local r
	r=$(COSTOR_TOKEN_FILE="$work/agent.token" COSTOR_ORG_KEY_FILE="$work/org.key" COSTOR_HOST_KEY_FILE="$work/host.key" \
		timed "$work/time.server" "$costor" -q "${common[@]}" backup --host bench "$src")
	local hwm scpu
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
	# utime + stime of the server, from clock ticks (fields after the comm)
	scpu=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' "/proc/$server_pid/stat")
	kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
	server_pid=""
	rm -rf "$data"
	echo "$r $hwm $scpu" >"$work/result"
}

load0=$(cut -d' ' -f1 /proc/loadavg)
rate() { awk -v a="$mb" -v b="$1" 'BEGIN { printf "%.1f", a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rows=""
local_rates=()
server_rates=()
ratios=()
for run in $(seq 1 "$RUNS"); do
	echo "run $run/$RUNS: local" >&2
	local_run
	read -r lt lrss lcpu <"$work/result"
	echo "run $run/$RUNS: server" >&2
	server_run
	read -r st srss scpu shwm sscpu <"$work/result"
	local_rates+=("$(rate "$lt")")
	server_rates+=("$(rate "$st")")
	ratios+=("$(ratio "$lt" "$st")")
	rows+="| $run | $lt | $(rate "$lt") | $lcpu | $((lrss >> 10)) | $st | $(rate "$st") | $scpu + $sscpu | $((srss >> 10)) | $((shwm >> 10)) | $(ratio "$lt" "$st") |"$'\n'
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ml=$(median "${local_rates[@]}")
ms=$(median "${server_rates[@]}")
cat <<MD
Corpus: $mb MiB ($SIZE_MB MiB in large files, $SMALL small files of 1–16 KiB), seed $SEED; $(nproc) CPUs, load average $load0 before the runs; caches $([ "$(id -u)" = 0 ] && echo dropped || echo "not dropped (not root)") before each run.

| run | local (s) | local MiB/s | local CPU (s) | local RSS (MiB) | server (s) | server MiB/s | CPU client + server (s) | client RSS (MiB) | server RSS (MiB) | server/local |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows}
median throughput: local $ml MiB/s, server $ms MiB/s; median of the per-run server/local ratios $(median "${ratios[@]}") (target ≥ 0.80)
MD
