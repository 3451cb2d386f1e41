#!/usr/bin/env bash
# Measures what explicit acknowledgement (SPEC section 11: leases) costs mqfs.
#
#   bench/leases.sh [--quick] [MQFS_BINARY] [--rounds N] [--window-ms MS]
#                   [--warmup-ms MS] [--count N] [--lease-ms MS] [--expiries N]
#
# Mounts MQFS_BINARY (default build/mqfs) twice in a fresh directory under
# /dev/shm: one as run.sh does (-o maxmsg=10,msgsize=65536,read_mode=stream),
# where build-bench/leases_bench rates measures 1 writer + 1 reader of 64 B
# messages reading with auto and with explicit acknowledgement; one with
# maxmsg=COUNT (default 100000), where leases_bench inflight measures the
# daemon's memory with COUNT messages queued and then all leased, and, EXPIRIES
# times (default 3), how long after their leases run out (lease_ms, default
# 2000) all COUNT are queued again. Writes bench/results/leases.md (also
# printed) and leases.csv. Everything it started is stopped on any exit.
#
# Run as root on a quiet machine (on a busy one, under chrt -f 10: see
# README). Default: about 1 minute; --quick: about 20 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
count=100000
lease_ms=2000
expiries=3
limit=600

while [ $# -gt 0 ]; do
  case $1 in
    --quick) pass_args+=(--rounds 3 --window-ms 300 --warmup-ms 100); expiries=1; limit=300; shift ;;
    --count) count=$2; shift 2 ;;
    --lease-ms) lease_ms=$2; shift 2 ;;
    --expiries) expiries=$2; shift 2 ;;
    *) common_arg "$@"; shift "$taken" ;;
  esac
done

require_root_and_mqfs "FUSE mounts, the daemon's /proc"
require_tools cmake fusermount3

build_bench "$here" "$build"
bench=$build/leases_bench

make_work leases

rates_opts=maxmsg=10,msgsize=65536,read_mode=stream,log_level=warn
inflight_opts=maxmsg=$count,max_bytes=256M,log_level=warn
start_daemon rates "$mqfs_bin" -f -o "$rates_opts"
rates=$mounted
start_daemon inflight "$mqfs_bin" -f -o "$inflight_opts"
inflight=$mounted
daemon_pid=${inflight##*:}
[ "$(cat "/proc/$daemon_pid/comm")" = "$(basename "$mqfs_bin" | cut -c1-15)" ] ||
  { echo "leases.sh: pid $daemon_pid is not the daemon" >&2; exit 1; }

mkdir -p "$results"
report=$results/leases.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
echo "Measuring rates: auto and explicit acknowledgement"
run_step "$limit" "$bench" rates --mount "${rates%:*}" --csv "$work/rates.csv" --targets "$work/targets.md" \
  "${pass_args[@]}" >"$work/rates.md"
stop_daemon "$rates"
echo "Measuring $count messages in flight, and their leases running out (lease_ms=$lease_ms)"
inflight_status=0
run_step "$limit" "$bench" inflight --mount "${inflight%:*}" --pid "$daemon_pid" --count "$count" \
  --lease-ms "$lease_ms" --rounds "$expiries" --csv "$work/inflight.csv" --targets "$work/targets.md" \
  >"$work/inflight.md" || inflight_status=$?
[ "$inflight_status" = 0 ] || [ "$inflight_status" = 3 ] || exit "$inflight_status"
stop_daemon "$inflight"

{ cat "$work/rates.csv"; tail -n +2 "$work/inflight.csv"; } >"$results/leases.csv"
{
  echo "# mqfs leases (explicit acknowledgement): benchmark"
  echo
  report_about
  echo "- rates: mounted -f -o $rates_opts; ${pass_args[*]:-defaults (5 rounds of 1000 ms after 200 ms)}; nothing pinned"
  echo "- in flight: mounted -f -o $inflight_opts; queues with u32 framing, read_mode=stream, maxmsg=$count"
  echo "- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg); $(scheduling); the measurements took $((SECONDS - start)) s"
  echo
  echo "## Targets"
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  cat "$work/targets.md"
  echo
  cat "$work/rates.md" "$work/inflight.md"
} >"$report"
cat "$report"
echo "Wrote $report and $results/leases.csv"
[ "$inflight_status" = 0 ] || echo "leases.sh: the daemon did not follow the rules in some checks (see the report)" >&2
exit "$inflight_status"
