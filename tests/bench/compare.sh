#!/usr/bin/env bash
# Side-by-side benchmark of costor, restic and Borg on the same seeded corpus,
# in one run, against the targets of issue 7 (ratios to restic).
#
# Each tool, with encryption and compression on, does: an initial backup, a
# no-change backup, a backup after 1% of the files changed (and the bytes that
# added), a full restore into an empty directory; then the repository size;
# then, for costor and restic, reads of the largest file and of 10,000 small
# files through the mount. Every measured step starts with the page cache
# dropped (when root), ends with a sync, runs under a timeout, and is measured
# by GNU time (wall, user+sys CPU, peak RSS). Steps alternate between the
# tools, so all three see the same corpus at each step.
#
# Results: a markdown table on stdout and in $WORK/results.md, every raw
# figure in $WORK/results.json. See tests/bench/README.md.
#
#   sudo tests/bench/compare.sh                  # SCALE=1 SEED=1 RUNS=1
#   sudo SCALE=0.1 tests/bench/compare.sh        # a quick run
#
# Environment: SCALE, SEED, RUNS (median of RUNS), WORK (default
# /var/tmp/costor-bench-compare), KEEP=1 (keep corpus and repositories),
# RESTIC, BORG, COSTOR (other builds; default: Debian's restic and borg,
# costor built from this checkout), BORG_COMPRESSION (zstd,3),
# BORG_ENCRYPTION (repokey-blake2), STEP_TIMEOUT (seconds, 3600).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

SCALE=${SCALE:-1}
SEED=${SEED:-1}
RUNS=${RUNS:-1}
WORK=${WORK:-/var/tmp/costor-bench-compare}
KEEP=${KEEP:-0}
RESTIC=${RESTIC:-restic}
BORG=${BORG:-borg}
COSTOR=${COSTOR:-}
BORG_COMPRESSION=${BORG_COMPRESSION:-zstd,3}
BORG_ENCRYPTION=${BORG_ENCRYPTION:-repokey-blake2}
STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-300}
export PATH="$PATH:/usr/local/go/bin:/usr/lib/go/bin"

APT_PACKAGES=(time fuse3 jq python3 coreutils util-linux findutils)
[ "$RESTIC" = restic ] && APT_PACKAGES+=(restic)
[ "$BORG" = borg ] && APT_PACKAGES+=(borgbackup)

# fd 3 is our stderr, also while a step's stderr goes to its log
exec 3>&2
say() { printf 'compare.sh: %s\n' "$*" >&3; }
die() {
	say "error: $*"
	exit 1
}

[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE=$SCALE: want a positive number such as 1 or 0.1"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS: want a positive integer"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED=$SEED: want a non-negative integer"
is_root=0
[ "$(id -u)" = 0 ] && is_root=1

# --- packages (Debian only) ------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
	((is_root)) || die "missing Debian packages: ${missing[*]}; run as root (sudo $0) to install them"
	say "installing from Debian: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v "$RESTIC" >/dev/null || die "restic not found: RESTIC=$RESTIC"
command -v "$BORG" >/dev/null || die "borg not found: BORG=$BORG"
command -v go >/dev/null || die "go not found; install Go (the version in go.mod) to /usr/local/go"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time, Debian package time) not found"
((is_root)) || say "warning: not root: page caches are NOT dropped between steps (results start warm)"

# --- work directory --------------------------------------------------------
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
corpus="$WORK/corpus"
mnt="$WORK/mnt"
logs="$WORK/logs"
raw="$WORK/raw.tsv"
data_dirs=("$corpus" "$WORK/repo-costor" "$WORK/repo-restic" "$WORK/repo-borg" "$WORK/restore-costor" "$WORK/restore-restic" "$WORK/restore-borg" "$WORK/home")

bg_pids=() # mount daemons
fg_pid=""  # the bounded step running now
unmount_all() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$fg_pid" ]; then kill -TERM "$fg_pid" 2>/dev/null || true; wait "$fg_pid" 2>/dev/null || true; fi
	for p in "${bg_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for _ in $(seq 1 50); do
		local alive=0
		for p in "${bg_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.2
	done
	for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	unmount_all
	if mountpoint -q "$mnt" 2>/dev/null; then
		say "error: $mnt is still mounted; unmount it with: umount -l $mnt"
	elif [ "$KEEP" != 1 ]; then
		rm -rf "${data_dirs[@]}" "$mnt"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

unmount_all
mountpoint -q "$mnt" 2>/dev/null && die "$mnt is mounted and would not unmount"
rm -rf "${data_dirs[@]}" "$logs" "$WORK/results.md" "$WORK/results.json"
mkdir -p "$logs" "$mnt"
: >"$raw"

need_kib=$(python3 -c "print(int((10 << 20) * $SCALE) + (1 << 20))")
avail_kib=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
((avail_kib > need_kib)) || die "$WORK has $((avail_kib >> 20)) GiB free, needs about $((need_kib >> 20)) GiB at SCALE=$SCALE (set WORK=)"

# --- builds (before HOME moves: Go keeps its caches under the real HOME) ----
mkdir -p "$WORK/bin"
say "building the corpus generator"
go build -o "$WORK/bin/corpus" ./tests/bench/corpus
gen="$WORK/bin/corpus"
if [ -z "$COSTOR" ]; then
	say "building costor from $ROOT"
	go build -o "$WORK/bin/costor" ./cmd/costor
	COSTOR="$WORK/bin/costor"
fi
costor=$COSTOR
[ -x "$costor" ] || die "costor binary not found: COSTOR=$costor"

v_costor="$("$costor" --version 2>/dev/null | head -1) ($(git -c safe.directory="$ROOT" describe --always --dirty --tags 2>/dev/null || echo unknown))"
v_restic=$("$RESTIC" version | head -1)
v_borg=$("$BORG" --version | head -1)
v_go=$(go version)

# The tools' caches and keys live under WORK, as on a fresh machine; caches
# persist between steps, as they do for users.
export HOME="$WORK/home" XDG_CACHE_HOME="$WORK/home/.cache" XDG_CONFIG_HOME="$WORK/home/.config" XDG_DATA_HOME="$WORK/home/.local/share"
export COSTOR_PASSWORD=bench-password RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset COSTOR_REPO RESTIC_REPOSITORY BORG_REPO COSTOR_TEST_FAST_KDF

drop() {
	sync
	if ((is_root)); then echo 3 >/proc/sys/vm/drop_caches; fi
}
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$1" "$2" "$3" "$4" >>"$raw"; }

# bounded SECONDS CMD…: CMD under timeout, in the background so that a signal
# reaches our trap at once; timeout kills CMD's whole process group.
bounded() {
	local secs=$1 rc=0
	shift
	timeout -k 30 "$secs" "$@" &
	fg_pid=$!
	wait "$fg_pid" || rc=$?
	fg_pid=""
	return "$rc"
}

# measure TOOL STEP OUT CMD…: drop caches, run CMD (stdout to OUT) followed by
# a sync, bounded, under GNU time; record wall, cpu (user+sys), rss (KiB).
measure() {
	local tool=$1 step=$2 out=$3 base rc=0
	shift 3
	base="$logs/r$run.$tool.$step"
	drop
	# shellcheck disable=SC2016 # $@ and $rc are the inner shell's
	bounded "$STEP_TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$base.time" \
		bash -c '"$@"; rc=$?; sync; exit $rc' measured "$@" >"$out" 2>"$base.err" || rc=$?
	if ((rc != 0)); then
		tail -n 20 "$base.err" >&2 || true
		((rc == 124)) && die "$tool: $step timed out after ${STEP_TIMEOUT}s (run $run; STEP_TIMEOUT=); log: $base.err"
		die "$tool: $step failed with exit status $rc (run $run); log: $base.err"
	fi
	local wall user sys rss note=""
	[[ $step == mount_* ]] && note=" (of the reader; the table has the mount's)"
	read -r wall user sys rss < <(tail -n 1 "$base.time")
	record "$tool" "$step" wall "$wall"
	record "$tool" "$step" cpu "$(python3 -c "print(round($user + $sys, 2))")"
	record "$tool" "$step" rss_kib "$rss"
	say "  $tool $step: ${wall}s wall, $(python3 -c "print(round($user + $sys, 2))")s CPU, $((rss >> 10)) MiB peak RSS$note"
}

repo_bytes() { du -sb "$1" | cut -f1; }
files_and_bytes() { { find "$1" -type f -printf '%s\n' 2>/dev/null || true; } | awk '{n++; b+=$1} END {printf "%d %d\n", n, b}'; }

# backup TOOL STEP: one backup of the corpus, with the bytes it added.
backup() {
	local tool=$1 step=$2 repo="$WORK/repo-$1" out="$logs/r$run.$1.$2.json" before after
	before=$(repo_bytes "$repo")
	case $tool in
	costor) measure costor "$step" "$out" "$costor" --repo "$repo" backup --json "$corpus" ;;
	restic) measure restic "$step" "$out" "$RESTIC" -r "$repo" backup --json --compression auto "$corpus" ;;
	borg) measure borg "$step" "$out" "$BORG" create --stats --json --compression "$BORG_COMPRESSION" "$repo::$step" "$corpus" ;;
	esac
	after=$(repo_bytes "$repo")
	record "$tool" "$step" added_du "$((after - before))"
	local reported
	case $tool in
	costor) reported=$(jq -r '.bytes_added' "$out") ;;
	restic) reported=$(jq -r 'select(.message_type == "summary") | .data_added' "$out") ;;
	borg) reported=$(jq -r '.archive.stats.deduplicated_size' "$out") ;;
	esac
	[[ $reported =~ ^[0-9]+$ ]] || die "$tool: $step: no bytes-added figure in its JSON output ($out)"
	record "$tool" "$step" added_reported "$reported"
}

# restore TOOL: a full restore into an empty directory of its own, kept until
# every tool has restored: ext4 without a journal skips inodes deleted in the
# last minutes one by one when it allocates, so a restore right after the
# previous tool's 100,000 files were removed would pay for that removal.
restore() {
	local tool=$1 repo="$WORK/repo-$1" target="$WORK/restore-$1"
	rm -rf "$target"
	mkdir -p "$target"
	# shellcheck disable=SC2016 # borg extracts into the current directory
	case $tool in
	costor) measure costor restore /dev/null "$costor" --repo "$repo" restore latest --target "$target" ;;
	restic) measure restic restore /dev/null "$RESTIC" -r "$repo" restore latest --target "$target" ;;
	borg) measure borg restore /dev/null bash -c 'cd "$0" && exec "$@"' "$target" "$BORG" extract "$repo::backup_touch" ;;
	esac
	local got
	got=$(files_and_bytes "$target$corpus")
	if [ "$got" = "$corpus_fb" ]; then
		record "$tool" restore verified 1
	else
		say "WARNING: $tool restored $got (files bytes), the corpus has $corpus_fb"
		record "$tool" restore verified 0
	fi
}

proc_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / t}' "/proc/$1/stat"; }
proc_hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

mount_reads() {
	local tool=$1 repo="$WORK/repo-$1" pid ready start
	case $tool in
	costor) "$costor" --repo "$repo" mount "$mnt" >"$logs/r$run.costor.mount.log" 2>&1 & ;;
	restic) "$RESTIC" -r "$repo" mount "$mnt" >"$logs/r$run.restic.mount.log" 2>&1 & ;;
	esac
	pid=$!
	bg_pids+=("$pid")
	start=$EPOCHREALTIME
	ready=""
	for _ in $(seq 1 $((MOUNT_TIMEOUT * 10))); do
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$logs/r$run.$tool.mount.log" >&2
			die "$tool mount exited before it was ready; log: $logs/r$run.$tool.mount.log"
		}
		if mountpoint -q "$mnt"; then
			case $tool in
			costor) ready=$(find "$mnt/hosts" -mindepth 2 -maxdepth 2 -name latest 2>/dev/null | head -n 1) ;;
			restic) [ -e "$mnt/snapshots/latest" ] && ready="$mnt/snapshots/latest" ;;
			esac
			[ -n "$ready" ] && [ -e "$ready$corpus" ] && break
			ready=""
		fi
		sleep 0.1
	done
	[ -n "$ready" ] || die "$tool mount not ready after ${MOUNT_TIMEOUT}s (MOUNT_TIMEOUT=); log: $logs/r$run.$tool.mount.log"
	record "$tool" mount_start wall "$(python3 -c "print(round($EPOCHREALTIME - $start, 2))")"
	local base="$ready$corpus" c0 c1
	c0=$(proc_cpu "$pid")
	measure "$tool" mount_large /dev/null cat "$base/$large_rel"
	c1=$(proc_cpu "$pid")
	record "$tool" mount_large daemon_cpu "$(python3 -c "print(round($c1 - $c0, 2))")"
	record "$tool" mount_large daemon_hwm_kib "$(proc_hwm "$pid")"
	# shellcheck disable=SC2016
	measure "$tool" mount_small /dev/null bash -c 'cd "$1" && xargs -d "\n" cat <"$2" >/dev/null' _ "$base" "$WORK/small.list"
	c0=$(proc_cpu "$pid")
	record "$tool" mount_small daemon_cpu "$(python3 -c "print(round($c0 - $c1, 2))")"
	record "$tool" mount_small daemon_hwm_kib "$(proc_hwm "$pid")"
	# unmount cleanly: the tool's own way first (SIGINT), umount as a fallback
	kill -INT "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "warning: $tool mount did not exit 10s after SIGINT; unmounting"
		unmount_all
		sleep 1
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	bg_pids=()
	mountpoint -q "$mnt" && {
		unmount_all
		say "warning: $tool left $mnt mounted after exiting"
	}
	return 0
}

tools=(costor restic borg)
host_cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
say "SCALE=$SCALE SEED=$SEED RUNS=$RUNS WORK=$WORK; $(nproc) CPUs ($host_cpu), kernel $(uname -r)"
say "$v_costor; $v_restic; $v_borg"

for run in $(seq 1 "$RUNS"); do
	say "run $run of $RUNS: generating the corpus"
	rm -rf "$corpus" "${WORK:?}/repo-"* "${WORK:?}/home"
	mkdir -p "$WORK/home"
	s=$EPOCHREALTIME
	bounded "$STEP_TIMEOUT" "$gen" gen -dir "$corpus" -seed "$SEED" -scale "$SCALE"
	record corpus gen wall "$(python3 -c "print(round($EPOCHREALTIME - $s, 2))")"
	read -r n b < <(files_and_bytes "$corpus")
	record corpus gen files "$n"
	record corpus gen bytes "$b"
	large_rel=big/f000.bin
	record corpus gen large_bytes "$(stat -c %s "$corpus/$large_rel")"
	n_small=$(python3 -c "print(max(1, round(10000 * $SCALE)))")
	(cd "$corpus" && find small -type f | LC_ALL=C sort | awk -v n="$n_small" 'NR <= n') >"$WORK/small.list"
	record corpus gen small_read_files "$(wc -l <"$WORK/small.list")"

	say "initialising repositories (restic v2, borg $BORG_ENCRYPTION, costor local)"
	bounded 300 "$costor" init --repo "$WORK/repo-costor" >"$logs/r$run.costor.init" 2>&1 || die "costor init failed; log: $logs/r$run.costor.init"
	bounded 300 "$RESTIC" -r "$WORK/repo-restic" init --repository-version 2 >"$logs/r$run.restic.init" 2>&1 || die "restic init failed; log: $logs/r$run.restic.init"
	bounded 300 "$BORG" init -e "$BORG_ENCRYPTION" "$WORK/repo-borg" >"$logs/r$run.borg.init" 2>&1 || die "borg init failed; log: $logs/r$run.borg.init"

	say "initial backup"
	for t in "${tools[@]}"; do backup "$t" backup_initial; done
	say "no-change backup"
	for t in "${tools[@]}"; do backup "$t" backup_nochange; done
	say "changing 1% of the files"
	"$gen" touch -dir "$corpus" -seed "$SEED" -percent 1 >"$logs/r$run.touch.json"
	record corpus touch files "$(jq -r .touched "$logs/r$run.touch.json")"
	record corpus touch bytes "$(jq -r .bytes_overwritten "$logs/r$run.touch.json")"
	say "backup after the change"
	for t in "${tools[@]}"; do backup "$t" backup_touch; done
	for t in "${tools[@]}"; do record "$t" repo_size bytes "$(repo_bytes "$WORK/repo-$t")"; done
	corpus_fb=$(files_and_bytes "$corpus")
	say "full restore"
	# The order turns with each run, so that every tool restores first,
	# second and third equally often: on ext4 without a journal every file
	# creation skips, one by one, the free inodes freed in the last minutes
	# (the old corpus's, at the start of the run), and how many a restore
	# meets depends on when it runs.
	turn=$(((run - 1) % ${#tools[@]}))
	restore_order=("${tools[@]:turn}" "${tools[@]:0:turn}")
	for t in "${restore_order[@]}"; do restore "$t"; done
	for t in "${tools[@]}"; do rm -rf "${WORK:?}/restore-$t"; done
	say "reads through the mount"
	for t in costor restic; do mount_reads "$t"; done
done

say "writing $WORK/results.md and $WORK/results.json"
B_CPU=$host_cpu B_NPROC=$(nproc) B_SCALE=$SCALE B_SEED=$SEED B_RUNS=$RUNS B_ROOT=$is_root \
	B_COSTOR=$v_costor B_RESTIC=$v_restic B_BORG=$v_borg B_GO=$v_go B_BORG_ENC=$BORG_ENCRYPTION \
	B_BORG_COMP=$BORG_COMPRESSION B_TIMEOUT=$STEP_TIMEOUT python3 - "$raw" "$WORK" <<'PY'
import json, statistics, sys, datetime, os, collections
raw, work = sys.argv[1], sys.argv[2]
rows = []
for line in open(raw):
    run, tool, step, metric, value = line.rstrip("\n").split("\t")
    rows.append({"run": int(run), "tool": tool, "step": step, "metric": metric, "value": float(value)})
vals = collections.defaultdict(list)
for r in rows:
    vals[(r["tool"], r["step"], r["metric"])].append(r["value"])
med = {k: statistics.median(v) for k, v in vals.items()}
median = {}
for (tool, step, metric), v in med.items():
    median.setdefault(tool, {}).setdefault(step, {})[metric] = v

def get(tool, step, metric):
    return med.get((tool, step, metric))

def mount_cpu(tool, step):
    a, b = get(tool, step, "cpu"), get(tool, step, "daemon_cpu")
    return None if a is None or b is None else a + b

def val(tool, step, metric):
    if metric == "cpu" and step.startswith("mount_"):
        return mount_cpu(tool, step)
    if metric == "rss_kib" and step.startswith("mount_"):
        return get(tool, step, "daemon_hwm_kib")
    return get(tool, step, metric)

steps = [
    ("backup_initial", "initial backup"),
    ("backup_nochange", "no-change backup"),
    ("backup_touch", "backup after 1% changed"),
    ("restore", "full restore"),
    ("mount_large", "mount: read the %s MiB file" % round(get("corpus", "gen", "large_bytes") / 2**20)),
    ("mount_small", "mount: read %d small files" % get("corpus", "gen", "small_read_files")),
]
wall_target = {"backup_initial": 0.4, "backup_nochange": 0.5, "backup_touch": 0.5, "restore": 0.5,
               "mount_large": 0.33, "mount_small": 0.5}
table = []  # (label, unit, costor, restic, borg, target)
for step, label in steps:
    table.append((label + ", wall", "s", *(val(t, step, "wall") for t in ("costor", "restic", "borg")), wall_target[step]))
    table.append((label + ", CPU", "s", *(val(t, step, "cpu") for t in ("costor", "restic", "borg")), None))
    table.append((label + ", peak RSS", "MiB", *((lambda x: None if x is None else x / 1024)(val(t, step, "rss_kib")) for t in ("costor", "restic", "borg")), 0.5))
    if step == "backup_touch":
        table.append((label + ", bytes added (repository growth)", "MiB", *((lambda x: None if x is None else x / 2**20)(get(t, step, "added_du")) for t in ("costor", "restic", "borg")), 1.0))
        table.append((label + ", bytes added (as reported)", "MiB", *((lambda x: None if x is None else x / 2**20)(get(t, step, "added_reported")) for t in ("costor", "restic", "borg")), None))
    if step == "restore":
        table.append(("repository size after the three backups", "MiB", *((lambda x: None if x is None else x / 2**20)(get(t, "repo_size", "bytes")) for t in ("costor", "restic", "borg")), 1.0))

def fmt(x, unit):
    if x is None:
        return "n/a"
    return ("%.2f" if unit == "s" or x < 10 else "%.1f") % x + " " + unit

def ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return 0.0 if a == 0 else float("inf")
    return a / b

out = []
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
E = os.environ
cpu_model = E["B_CPU"]
out.append("## costor vs restic vs Borg (%s)" % now)
out.append("")
out.append("Machine: %s CPUs (%s), %s GiB RAM, kernel %s. Corpus: SCALE=%s SEED=%s, %d files, %.1f MiB; %d files changed (%.1f KiB overwritten). Median of %s run(s)."
           % (E["B_NPROC"], cpu_model, round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30), os.uname().release,
              E["B_SCALE"], E["B_SEED"], get("corpus", "gen", "files"), get("corpus", "gen", "bytes") / 2**20, get("corpus", "touch", "files"), get("corpus", "touch", "bytes") / 1024, E["B_RUNS"]))
out.append("")
out.append("Versions: %s; %s; %s; %s." % (E["B_COSTOR"], E["B_RESTIC"], E["B_BORG"], E["B_GO"]))
out.append("")
out.append("Settings: costor local repository (`costor init --repo`; zstd, convergent encryption); restic repository v2, `--compression auto`; borg `init -e %s`, `create --compression %s`. Page cache %s before every measured step; every step ends with `sync`. Mount rows: CPU is the reader's plus the mount process's, peak RSS the mount process's."
           % (E["B_BORG_ENC"], E["B_BORG_COMP"], "dropped (sync; echo 3 > /proc/sys/vm/drop_caches)" if E["B_ROOT"] == "1" else "NOT dropped (not root)"))
out.append("")
out.append("| step | costor | restic | borg | costor/restic | costor/borg | target |")
out.append("|---|---:|---:|---:|---:|---:|---|")
ratios = []
for label, unit, c, r, b, target in table:
    rr, rb = ratio(c, r), ratio(c, b)
    tgt = "—"
    if target is not None:
        tgt = "≤ %.2g" % target + ("" if rr is None else (" ✓" if rr <= target else " ✗"))
    out.append("| %s | %s | %s | %s | %s | %s | %s |" % (label, fmt(c, unit), fmt(r, unit), fmt(b, unit),
               "n/a" if rr is None else "%.2f" % rr, "n/a" if rb is None else "%.2f" % rb, tgt))
    ratios.append({"row": label, "unit": unit, "costor": c, "restic": r, "borg": b,
                   "costor_restic": rr, "costor_borg": rb, "target_costor_restic": target})
bad = [t for t in ("costor", "restic", "borg") if get(t, "restore", "verified") not in (None, 1.0)]
if bad:
    out.append("")
    out.append("**Warning:** the restore of %s did not reproduce the corpus (file count or bytes differ)." % ", ".join(bad))
out.append("")
out.append("Bytes added (repository growth) is `du -sb` of the repository after the backup minus before, for every tool; \"as reported\" is costor's `bytes_added`, restic's `data_added` (0.14: before compression) and borg's `deduplicated_size`.")
md = "\n".join(out) + "\n"
open(os.path.join(work, "results.md"), "w").write(md)
sys.stdout.write(md)
res = {
    "date": now,
    "machine": {"nproc": int(E["B_NPROC"]), "cpu": cpu_model, "kernel": os.uname().release,
                "mem_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")},
    "versions": {"costor": E["B_COSTOR"], "restic": E["B_RESTIC"], "borg": E["B_BORG"], "go": E["B_GO"]},
    "params": {"scale": float(E["B_SCALE"]), "seed": int(E["B_SEED"]), "runs": int(E["B_RUNS"]), "borg_encryption": E["B_BORG_ENC"],
               "borg_compression": E["B_BORG_COMP"], "restic_compression": "auto", "restic_repository_version": 2,
               "caches_dropped": E["B_ROOT"] == "1", "step_timeout_s": int(E["B_TIMEOUT"])},
    "median": median, "table": ratios, "raw": rows,
}
json.dump(res, open(os.path.join(work, "results.json"), "w"), indent=1)
PY
