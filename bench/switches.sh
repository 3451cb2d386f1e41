#!/usr/bin/env bash
# Counts what one message costs in context switches, on mqfs and on the
# no-op FUSE floor: N writers on CPU 0 (with the daemon) and N readers on
# CPU 1, 64-byte messages, one per write(2) and read(2) (the `split`
# placement of run.sh), for N = 1 and 4. Then many busy queues: 4 pairs, each
# on a queue of its own, nothing pinned, on mqfs (one thread) and on the floor
# run by libfuse's single-threaded loop, its multi-threaded loop, and that
# with clone_fd (a device descriptor per thread).
#
#   bench/switches.sh [MQFS_BINARY] [--rounds N] [--seconds S]
#
# Mounts MQFS_BINARY (default build/mqfs; -o maxmsg=10,msgsize=65536,
# read_mode=stream as run.sh does) and noop_fs -s, both pinned to CPU 0, and
# runs build-bench/switches under `perf stat -a -A -e context-switches`.
# Writes bench/results/switches.md (also printed): medians of the rounds.
# A diagnosis, not a claim: run.sh's numbers are the ones to compare.
# Needs root and perf (Debian: linux-perf). About 1 minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
seconds=2

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) common_arg "$@"; shift "$taken" ;;
  esac
done

require_root_and_mqfs "FUSE mounts, pinning, perf -a"
require_tools cmake fusermount3 perf taskset

build_bench "$here" "$build"
make_work switches

start_daemon mqfs taskset -c 0 "$mqfs_bin" -f -o maxmsg=10,msgsize=65536,read_mode=stream,log_level=warn
mqfs_daemon=$mounted
mqfs_mount=${mounted%:*}
touch "$mqfs_mount/q"
start_daemon floor taskset -c 0 "$build/noop_fs" -f -s -o msgsize=65536
floor_daemon=$mounted
floor_mount=${mounted%:*}

# One run: "messages/s switches-on-CPU0 switches-on-CPU1". perf counts the
# whole run (the 0.2 s warm-up, the window, the teardown), the rate only the
# window: the per-message figures below divide the counts by warm-up plus
# window, an estimate that leaves out the teardown. A third argument, `free`,
# goes to switches.
measure() {
  local file=$1 procs=$2 rate
  rate=$(perf stat -a -A -x, -e context-switches -o "$work/perf.csv" -- \
    timeout 60 "$build/switches" "$file" "$procs" "$seconds" ${3:-})
  # perf -x, lines: CPU0,COUNT,,context-switches,...
  awk -F, -v rate="$rate" '$1 == "CPU0" { c0 = $2 } $1 == "CPU1" { c1 = $2 }
    END { printf "%s %s %s\n", rate, c0, c1 }' "$work/perf.csv"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

mkdir -p "$results"
report=$results/switches.md
{
  echo "# Context switches per message: mqfs and the FUSE floor"
  echo
  report_about
  echo "- $(scheduling); $rounds rounds of $seconds s (after 0.2 s), medians; 64-byte messages"
  echo "- writers and the daemon on CPU 0, readers on CPU 1; mqfs -o maxmsg=10,msgsize=65536,read_mode=stream; floor: noop_fs -s"
  echo
  echo "| transport | writers+readers | messages/s | switches per message, CPU 0 | switches per message, CPU 1 |"
  echo "|---|---|---:|---:|---:|"
  for procs in 1 4; do
    for transport in mqfs floor; do
      file=$mqfs_mount/q
      [ "$transport" = floor ] && file=$floor_mount/q
      : >"$work/rounds"
      for _ in $(seq "$rounds"); do measure "$file" "$procs" >>"$work/rounds"; done
      rate=$(cut -d' ' -f1 "$work/rounds" | median)
      per0=$(awk -v s="$seconds" '{ print ($2 / (s + 0.2)) / $1 }' "$work/rounds" | median)
      per1=$(awk -v s="$seconds" '{ print ($3 / (s + 0.2)) / $1 }' "$work/rounds" | median)
      printf "| %s | %s+%s | %.0f | %.2f | %.2f |\n" "$transport" "$procs" "$procs" "$rate" "$per0" "$per1"
    done
  done
} | tee "$report"

stop_daemon "$mqfs_daemon"
stop_daemon "$floor_daemon"
# q0,q1,q2,q3 of the mount just started (made on mqfs; the floor has every name).
many_files() {
  for i in 0 1 2 3; do touch "${mounted%:*}/q$i" 2>/dev/null || true; printf '%s/q%s,' "${mounted%:*}" "$i"; done | sed 's/,$//'
}
start_daemon mqfs-free "$mqfs_bin" -f -o maxmsg=10,msgsize=65536,read_mode=stream,log_level=warn
many_mqfs=$(many_files)
start_daemon floor-1t "$build/noop_fs" -f -s -o msgsize=65536
many_1t=$(many_files)
start_daemon floor-mt "$build/noop_fs" -f -o msgsize=65536
many_mt=$(many_files)
start_daemon floor-mt-clone "$build/noop_fs" -f -o msgsize=65536,clone_fd
many_clone=$(many_files)
{
  echo
  echo "Many busy queues: 4 writers and 4 readers, pair i on queue i, nothing pinned (daemons neither)."
  echo
  echo "| transport | messages/s | switches per message, both CPUs |"
  echo "|---|---:|---:|"
  for transport in "mqfs (one thread):$many_mqfs" "floor, single-threaded loop:$many_1t" \
    "floor, multi-threaded loop:$many_mt" "floor, multi-threaded loop, clone_fd:$many_clone"; do
    : >"$work/rounds"
    for _ in $(seq "$rounds"); do measure "${transport#*:}" 4 free >>"$work/rounds"; done
    rate=$(cut -d' ' -f1 "$work/rounds" | median)
    per=$(awk -v s="$seconds" '{ print (($2 + $3) / (s + 0.2)) / $1 }' "$work/rounds" | median)
    printf "| %s | %.0f | %.2f |\n" "${transport%%:*}" "$rate" "$per"
  done
} | tee -a "$report"
