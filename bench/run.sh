#!/usr/bin/env bash
# Benchmarks mqfs against the kernel's queues and the FUSE floor.
#
#   bench/run.sh [--quick] [MQFS_BINARY] [--OPTION VALUE ...]
#
# Builds bench/ into build-bench/, mounts MQFS_BINARY (default build/mqfs) and
# two noop_fs floors (libfuse's single- and multi-threaded loop) in a private
# temporary directory, runs mqfs_bench, and writes bench/results/latest.md
# (the report, also printed) and latest.png (the plot), with latest.dat,
# latest.vars.gp and latest.csv (every round's values) beside them.
# --OPTION VALUE pairs go to mqfs_bench (e.g. --placements cpu0,split,free,
# --rounds 7, --framing none; see build-bench/mqfs_bench --help).
# The batched cases (mqfs-u32, mqfs-line: framed queues, many messages per
# write and read) set their framing, read mode and depth (maxmsg: 10 writes'
# worth, at most 4096) on their own queues by xattrs; the mount options stay
# those of the other cases.
#
# Run as root (private IPC namespace for the kernel queues' limits, pinning
# the daemons), on a quiet machine: other load moves every number.
# Default run: about 6 minutes; --quick: about 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
limit=900  # seconds: the whole benchmark, whatever happens to a mount

while [ $# -gt 0 ]; do
  case $1 in
    --quick) pass_args+=(--quick); limit=300; shift ;;
    *) common_arg "$@"; shift "$taken" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || echo "run.sh: not root: kernel queue limits and daemon pinning will be limited" >&2
require_tools cmake fusermount3
if [ ! -x "$mqfs_bin" ]; then
  echo "run.sh: no mqfs binary at $mqfs_bin; build one first:" >&2
  echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j" >&2
  exit 1
fi
mqfs_bin=$(realpath "$mqfs_bin")

build_bench "$here" "$build"

# Mount points, FIFOs and the tmpfs reference file live on tmpfs.
make_work bench

mqfs_opts=maxmsg=10,msgsize=65536,read_mode=stream,log_level=warn
start_daemon mqfs "$mqfs_bin" -f -o "$mqfs_opts"
mqfs_mount=$mounted
start_daemon noop-st "$build/noop_fs" -f -s -o msgsize=65536
noop_st_mount=$mounted
start_daemon noop-mt "$build/noop_fs" -f -o msgsize=65536
noop_mt_mount=$mounted

# What the report's header says about what was measured.
notes=(
  "mqfs: $mqfs_bin ($("$mqfs_bin" --version 2>/dev/null | grep -m1 '^mqfs' || echo "version unknown")), mounted with -f -o $mqfs_opts"
  "libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo '?'); floors: build-bench/noop_fs -f [-s] -o msgsize=65536"
)
if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
  dirty=$(git -C "$root" status --porcelain -- src include CMakeLists.txt | head -1)
  notes+=("source: commit $(git -C "$root" rev-parse --short HEAD)${dirty:+ with uncommitted changes in src/}")
fi
note_args=()
for n in "${notes[@]}"; do note_args+=(--note "$n"); done

mkdir -p "$results"
# mqfs_bench gives up on a hung mount by itself (its watchdog kills that
# daemon); the limit here is the last resort for anything else.
"$build/mqfs_bench" \
  --mqfs "$mqfs_mount" --noop-st "$noop_st_mount" --noop-mt "$noop_mt_mount" \
  --scratch "$work" --markdown "$results/latest.md" --raw "$results/latest.csv" \
  --plot-data "$results/latest.dat" --plot-vars "$results/latest.vars.gp" \
  "${note_args[@]}" "${pass_args[@]}" &
bench_pid=$!
deadline=$((SECONDS + limit))
while kill -0 "$bench_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
if kill -0 "$bench_pid" 2>/dev/null; then
  echo "run.sh: mqfs_bench did not finish within $limit s; stopping it" >&2
  exit 124  # cleanup stops it
fi
status=0
wait "$bench_pid" || status=$?
bench_pid=
case $status in
  0) ;;
  3) echo "run.sh: some cases failed (see Failures in the report)" >&2 ;;
  *) echo "run.sh: mqfs_bench failed ($status)" >&2; exit "$status" ;;
esac

if command -v gnuplot >/dev/null; then
  timeout 60 gnuplot -e "data='$results/latest.dat'; vars='$results/latest.vars.gp'; out='$results/latest.png'" \
    "$here/plot.gp" && echo "Wrote $results/latest.md and $results/latest.png"
else
  echo "run.sh: gnuplot is missing (apt-get install gnuplot-nox): no plot; wrote $results/latest.md" >&2
fi
exit "$status"
