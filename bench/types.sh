#!/usr/bin/env bash
# Measures what message types (SPEC section 12: selective receive) and topics
# (section 13: publish/subscribe) cost mqfs.
#
#   bench/types.sh [--quick] [MQFS_BINARY] [--rounds N] [--types T]
#                  [--count N] [--depths 1000,10000,100000] [--subs 1,10,100]
#                  [--publish-count N] [--batched-count N]
#                  [--mem-count N] [--mem-size B] [--parts select,publish,memory]
#
# Mounts MQFS_BINARY (default build/mqfs) in a fresh directory under /dev/shm
# (-o msgsize=65536,max_bytes=1G; queues get their maxmsg by xattr) and runs
# build-bench/types_bench:
#   select: COUNT (10,000) messages of 64 B, types 1..T (100) round-robin,
#     drained one per read unselective, each type in turn, lowest type first
#     and all but one type; the same at every depth; a type queued behind
#     DEPTH others (the needle);
#   publish: 64 B to a topic with each count of subscribers (1, 10, 100):
#     lasting subscriber queues and descriptor subscribers reading meanwhile,
#     PUBLISH-COUNT (5,000) one per write and BATCHED-COUNT (20,000) in 64 KiB
#     u32 writes;
#   memory: a fresh daemon per count S (0 = a plain queue, then the subs
#     counts), MEM-COUNT (20,000) messages of MEM-SIZE (1024) bytes published
#     to S subscriber queues; the daemon's memory per message.
# --parts runs only the parts named (default: all three).
# Writes bench/results/types.md (also printed) and types.csv. Everything it
# started is stopped on any exit.
#
# Run as root on a quiet machine. Default: about 2 minutes; --quick: about
# 20 s (1 round, depths 1,000 and 10,000, subs 1 and 10, fewer messages).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
types=100
count=10000
depths=1000,10000,100000
subs=1,10,100
publish_count=5000
batched_count=20000
mem_count=20000
mem_size=1024
limit=600
parts=select,publish,memory

while [ $# -gt 0 ]; do
  case $1 in
    --quick)
      rounds=1; depths=1000,10000; subs=1,10; publish_count=1000; batched_count=5000; mem_count=5000; limit=300
      shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --depths) depths=$2; shift 2 ;;
    --subs) subs=$2; shift 2 ;;
    --publish-count) publish_count=$2; shift 2 ;;
    --batched-count) batched_count=$2; shift 2 ;;
    --mem-count) mem_count=$2; shift 2 ;;
    --mem-size) mem_size=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --*) echo "types.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) common_arg "$@"; shift "$taken" ;;
  esac
done

require_root_and_mqfs "FUSE mounts, the daemon's /proc"
require_tools cmake fusermount3

build_bench "$here" "$build"
bench=$build/types_bench

make_work types

opts=msgsize=65536,max_bytes=1G,log_level=warn
mem_opts=msgsize=65536,max_bytes=2G,log_level=warn

mkdir -p "$results"
report=$results/types.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
status=0
# A step's status: 0, or 3 (a check failed: noted, the run goes on); else the end.
step() {
  local s=0
  run_step "$limit" "$@" || s=$?
  [ "$s" = 0 ] || [ "$s" = 3 ] || exit "$s"
  [ "$s" = 0 ] || status=3
}

wanted() { [[ ",$parts," == *",$1,"* ]]; }
touch "$work/targets.md"

if wanted select; then
  start_daemon select "$mqfs_bin" -f -o "$opts"
  echo "Measuring selective receive: $count messages, $types types, depths $depths"
  step "$bench" select --mount "${mounted%:*}" --rounds "$rounds" --types "$types" --count "$count" \
    --depths "$depths" --csv "$work/select.csv" --targets "$work/targets.md" >"$work/select.md"
  stop_daemon "$mounted"
fi

if wanted publish; then
  start_daemon publish "$mqfs_bin" -f -o "$opts"
  echo "Measuring publishing to topics with $subs subscribers"
  step "$bench" publish --mount "${mounted%:*}" --rounds "$rounds" --subs "$subs" --count "$publish_count" \
    --batched-count "$batched_count" --csv "$work/publish.csv" --targets "$work/targets.md" >"$work/publish.md"
  stop_daemon "$mounted"
fi

if wanted memory; then
  for s in 0 ${subs//,/ }; do
    echo "Measuring memory: $mem_count messages of $mem_size B, $s subscriber queues"
    start_daemon "memory-$s" "$mqfs_bin" -f -o "$mem_opts"
    step "$bench" memory --mount "${mounted%:*}" --pid "${mounted##*:}" --subs "$s" --count "$mem_count" \
      --size "$mem_size" --csv "$work/memory.csv"
    stop_daemon "$mounted"
  done
  step "$bench" memory-report --csv "$work/memory.csv" --targets "$work/targets.md" >"$work/memory.md"
fi

echo "key,round,value" >"$results/types.csv"
for part in select publish memory; do
  [ -f "$work/$part.csv" ] && tail -n +2 "$work/$part.csv" >>"$results/types.csv"
done
{
  echo "# mqfs message types and topics: benchmark"
  echo
  report_about
  echo "- parts: $parts; select and publish: mounted -f -o $opts; memory: a fresh daemon per row, -o $mem_opts; nothing pinned"
  echo "- $rounds round(s); load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg); $(scheduling); the measurements took $((SECONDS - start)) s"
  echo
  echo "## Targets"
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  cat "$work/targets.md"
  echo
  for part in select publish memory; do [ -f "$work/$part.md" ] && cat "$work/$part.md"; done
} >"$report"
cat "$report"
echo "Wrote $report and $results/types.csv"
[ "$status" = 0 ] || echo "types.sh: the daemon did not follow the rules in some checks (see the report)" >&2
exit "$status"
