#!/usr/bin/env bash
# Measures mqfs's durable store (-o store=DIR) against the in-memory mount,
# the kernel's POSIX queue, the disk's own fdatasync rate and Redis.
#
#   bench/durability.sh [--quick] [MQFS_BINARY] [--dir PARENT] [--rounds N]
#                       [--window-ms MS] [--warmup-ms MS] [--writers 1,4,16]
#
# In a fresh directory under PARENT (default /var/tmp: it must be a disk
# filesystem, where fdatasync means something) it mounts three mqfs: in
# memory, store=...,sync=os and store=...,sync=disk; starts Debian's
# redis-server on a free 127.0.0.1 port (appendonly yes, appendfsync always,
# its directory beside the stores; installed with apt-get if missing); runs
# build-bench/durability_bench rates; then times the recovery of 1,000,000
# queued messages and measures the store's size after pushing 10 x max_bytes
# through it. Writes bench/results/durability.md (also printed) and
# durability.csv. Everything it started is stopped by pid on any exit.
#
# Run as root on a quiet machine. Default: about 2 minutes; --quick: about 30 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
parent=/var/tmp
recoveries=3             # recovery timings (median)
recover_count=1000000    # messages queued for the recovery
churn_max_bytes=64M      # the size test's max_bytes ...
churn_push=$((640 << 20))  # ... the payload pushed through (10 x max_bytes) ...
churn_keep=$((16 << 20))   # ... and what stays queued at the end
churn_size=4096
limit=900

while [ $# -gt 0 ]; do
  case $1 in
    --quick)
      pass_args+=(--rounds 3 --window-ms 300 --warmup-ms 100); recoveries=1
      churn_max_bytes=16M; churn_push=$((160 << 20)); churn_keep=$((4 << 20)); limit=400; shift ;;
    --dir) parent=$2; shift 2 ;;
    *) common_arg "$@"; shift "$taken" ;;
  esac
done

require_root_and_mqfs "FUSE mounts, apt-get"
require_tools cmake fusermount3 findmnt du
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "Installing redis-server and redis-tools"
  timeout 300 apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends redis-server redis-tools >/dev/null
fi

build_bench "$here" "$build"
bench=$build/durability_bench

make_work durability "$parent"
fs=$(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$work" | awk '{ print $1 " on " $2 " (" $3 ")" }')
case $fs in
  tmpfs* | ramfs* | overlay*) echo "durability.sh: $work is on $fs, not a disk; use --dir" >&2; exit 1 ;;
esac

opts=maxmsg=10,msgsize=65536,read_mode=stream,log_level=warn
start_daemon memory "$mqfs_bin" -f -o "$opts"
memory=$mounted
start_daemon store-os "$mqfs_bin" -f -o "$opts,store=$work/journal-os,sync=os"
store_os=$mounted
start_daemon store-disk "$mqfs_bin" -f -o "$opts,store=$work/journal-disk,sync=disk"
store_disk=$mounted

# Redis on the first free port from 16379, its files beside the stores.
port=16379
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
mkdir "$work/redis"
redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" --appendonly yes --appendfsync always \
  --save "" --daemonize no --logfile "$work/redis.log" &
services+=("$!")
disown "$!"
for _ in $(seq 100); do
  [ "$(timeout 2 redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(timeout 2 redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || { echo "durability.sh: redis did not start" >&2; cat "$work/redis.log" >&2; exit 1; }

mkdir -p "$results"
report=$results/durability.md
rates_md=$work/rates.md
start=$SECONDS
echo "Measuring rates"
run_step "$limit" "$bench" rates --memory "${memory%:*}" --store "${store_os%:*}" --disk "${store_disk%:*}" \
  --sync-dir "$work" --redis "$port" --csv "$results/durability.csv" "${pass_args[@]}" >"$rates_md"
stop_daemon "$memory"
stop_daemon "$store_os"
stop_daemon "$store_disk"
kill -TERM "${services[0]}" 2>/dev/null || true

# seconds_since T0: wall time since T0 (date +%s%N), in seconds.
seconds_since() { echo "$(( $(date +%s%N) - $1 ))" | awk '{ printf "%.3f", $1 / 1e9 }'; }

# Recovery: fill a queue of the store, stop the daemon, then time starting it
# until the queue answers, with the store's files out of the page cache.
echo "Measuring recovery of $recover_count messages"
rec_opts=msgsize=65536,log_level=warn,store=$work/journal-recovery
start_daemon recovery "$mqfs_bin" -f -o "$rec_opts"
rec=${mounted%:*}
"$bench" queue "$rec/q" $((recover_count * 2))
fill_start=$(date +%s%N)
run_step 300 "$bench" fill "$rec/q" "$recover_count" 64
fill_s=$(seconds_since "$fill_start")
stop_daemon "$mounted"
rec_store_kib=$(du -sk "$work/journal-recovery" | cut -f1)
# recover COLD: one timing (cold: the store's files out of the page cache).
recover() {
  [ "$1" = cold ] && "$bench" evict "$work/journal-recovery"
  local t0
  t0=$(date +%s%N)
  start_daemon recovery "$mqfs_bin" -f -o "$rec_opts"
  until timeout 10 stat "$rec/q" >/dev/null 2>&1; do sleep 0.005; done
  took=$(seconds_since "$t0")
  got=$(timeout 10 "$bench" curmsgs "$rec/q")
  [ "$got" = "$recover_count" ] || { echo "durability.sh: recovered $got messages, not $recover_count" >&2; exit 1; }
  stop_daemon "$mounted"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
cold=() warm=()
for i in $(seq "$recoveries"); do
  recover cold; cold+=("$took")
  recover warm; warm+=("$took")
done
recovery_s=$(printf '%s\n' "${cold[@]}" | median)
warm_s=$(printf '%s\n' "${warm[@]}" | median)

# Size: push 10 x max_bytes through a queue while a reader takes all but
# churn_keep, then measure the blocks the store's directory holds.
echo "Measuring the store's size after pushing $((churn_push >> 20)) MiB through max_bytes=$churn_max_bytes"
start_daemon churn "$mqfs_bin" -f -o "msgsize=65536,log_level=warn,max_bytes=$churn_max_bytes,store=$work/journal-churn"
churn=${mounted%:*}
# A full max_bytes fails a write (ENOSPC); a full queue makes it wait.
"$bench" queue "$churn/q" $(( $(numfmt --from=iec "$churn_max_bytes") * 9 / 10 / (churn_size + 128) ))
churn_start=$(date +%s%N)
run_step 600 "$bench" churn "$churn/q" "$churn_push" "$churn_keep" "$churn_size"
churn_s=$(seconds_since "$churn_start")
live=$(stat -c %s "$churn/q")
sleep 1  # the end of a loop turn retires what it can
store_alloc=$(du -s -B1 "$work/journal-churn" | cut -f1)
store_apparent=$(du -s -b "$work/journal-churn" | cut -f1)
segments=$(ls "$work/journal-churn" | grep -c '^journal-' || true)
stop_daemon "$mounted"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
max_bytes=$(numfmt --from=iec "$churn_max_bytes")
size_limit=$((2 * live + (64 << 20)))
{
  echo "# mqfs durable store: benchmark"
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); mqfs: $mqfs_bin ($("$mqfs_bin" --version 2>/dev/null | grep -m1 '^mqfs' || echo '?'))"
  echo "- stores, the fdatasync probe and Redis's files in $parent: $fs"
  echo "- mounts: -f -o $opts, plus store=DIR,sync=os / store=DIR,sync=disk; Redis $(redis-server --version | awk '{ print $3 }') with appendonly yes, appendfsync always"
  echo "- nothing pinned; rates: ${pass_args[*]:-defaults (5 rounds of 1000 ms after 200 ms)}; the measurements took $((SECONDS - start)) s"
  if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "- source: commit $(git -C "$root" rev-parse --short HEAD)"
  fi
  echo
  cat "$rates_md"
  echo "| 4. recovery of $recover_count messages (64 B), cold cache, ≤ 2 s | $recovery_s s (warm: $warm_s s) | $(awk -v t="$recovery_s" 'BEGIN { print t <= 2 ? "**met**" : "**not met**" }') |"
  echo "| 5. store after $((churn_push >> 20)) MiB through max_bytes=$churn_max_bytes ≤ 2 × live + 64 MiB | $(mib "$store_alloc") MiB ≤ $(mib "$size_limit") MiB | $([ "$store_alloc" -le "$size_limit" ] && echo '**met**' || echo '**not met**') |"
  echo
  echo "## Recovery and size"
  echo
  echo "- Recovery: the queue filled with $recover_count u32 frames of 64 B in $fill_s s; store $((rec_store_kib / 1024)) MiB."
  echo "  Time from starting the daemon until \`stat\` of the queue answered, with the store's files dropped"
  echo "  from the page cache first (posix_fadvise), as after a reboot: ${cold[*]} s (median $recovery_s s,"
  echo "  the target's figure); with them in the page cache, as after a restart: ${warm[*]} s (median $warm_s s)."
  echo "- Size: $((churn_push >> 20)) MiB of $churn_size B messages pushed in 64 KiB u32 writes, a reader taking all but"
  echo "  $((churn_keep >> 20)) MiB, in $churn_s s (max_bytes $(mib "$max_bytes") MiB). Then: live $(mib "$live") MiB queued;"
  echo "  the store directory allocates $(mib "$store_alloc") MiB (apparent $(mib "$store_apparent") MiB) in $segments segments."
} >"$report"
cat "$report"
echo "Wrote $report and $results/durability.csv"
