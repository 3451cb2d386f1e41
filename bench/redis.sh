#!/usr/bin/env bash
# Measures the anchors the Redis store (SPEC section 10) is compared with:
# a priority queue written directly with hiredis (ZADD / BZPOPMIN), a Redis
# list (LPUSH / BRPOP) and mqfs's server functions without FUSE
# (src/store/redis_functions.lua: mqfs_send, mqfs_take + mqfs_ack, waking on
# the events of mqfs:events), all against one loopback redis-server; and,
# side by side in the same run, the store itself: two mqfs mounts of that
# Redis, a writer on one and a reader on the other.
#
#   bench/redis.sh [--quick] [--functions FILE] [--mqfs PATH] [--no-mounts]
#                  [--rounds N] [--window-ms MS] [--warmup-ms MS]
#                  [--maxmsg 1000000,10] [--samples N] [--pause-ms MS]
#                  [--frames N]
#
# Builds build-bench/redis_bench, starts Debian's redis-server on a free port
# of 127.0.0.1 (save "", appendonly no, its directory a fresh one under
# /dev/shm), mounts mqfs twice on it (-f -o redis=redis://127.0.0.1:PORT/1,
# redis_prefix=bench: database 1, which the other cases' FLUSHDB of database
# 0 leaves alone), runs redis_bench: throughput of 64-byte messages, 1 writer
# + 1 reader, each command (or write(2), read(2)) waiting for its reply
# (medians of rounds), and the wake-up latency of a blocked reader (p50,
# p99). FILE: the function library (default src/store/redis_functions.lua).
# PATH: the mqfs binary (default: build-rel/mqfs, built here in Release with
# -DMQFS_REDIS=ON); --no-mounts: none of the mounts' cases (no root needed).
# Writes bench/results/redis.md (also printed) and redis.csv. The mounts are
# unmounted and Redis is stopped, by pid, on any exit.
#
# Root (for mounting). Run on a quiet machine. Default: about 3.5 minutes (3
# rounds of 5 s, 2000 latency samples); --quick: about 1.5 minutes (3 rounds
# of 2 s, 500).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
functions=$root/src/store/redis_functions.lua
mqfs_bin=
with_mounts=1
limit=600

while [ $# -gt 0 ]; do
  case $1 in
    --quick) pass_args+=(--rounds 3 --window-ms 2000 --warmup-ms 300 --samples 500); limit=300; shift ;;
    --functions) functions=$2; shift 2 ;;
    --mqfs) mqfs_bin=$2; shift 2 ;;
    --no-mounts) with_mounts=0; shift ;;
    -h | --help | --*) common_arg "$@"; shift "$taken" ;;
    *) echo "redis.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done

require_tools cmake redis-server redis-cli timeout
[ -r "$functions" ] || { echo "redis.sh: no function library at $functions" >&2; exit 1; }
functions=$(realpath "$functions")

echo "Building redis_bench into $build"
timeout 600 cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
timeout 600 cmake --build "$build" -j "$(nproc)" --target redis_bench >/dev/null
bench=$build/redis_bench

if [ "$with_mounts" = 1 ]; then
  require_tools fusermount3
  if [ -z "$mqfs_bin" ]; then
    echo "Building mqfs (Release, with Redis) into $root/build-rel"
    timeout 600 cmake -S "$root" -B "$root/build-rel" -DCMAKE_BUILD_TYPE=Release -DMQFS_REDIS=ON >/dev/null
    timeout 900 cmake --build "$root/build-rel" -j "$(nproc)" --target mqfs >/dev/null
    mqfs_bin=$root/build-rel/mqfs
  fi
  require_root_and_mqfs "mounting"
fi

make_work redis

# Redis on the first free port from 16379; only ever 127.0.0.1.
port=16379
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
redis-server --bind 127.0.0.1 --port "$port" --dir "$work" --save "" --appendonly no \
  --daemonize no --logfile "$work/redis.log" &
services+=("$!")
disown "$!"
ping_redis() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; }
for _ in $(seq 100); do ping_redis && break; sleep 0.1; done
ping_redis || { echo "redis.sh: redis did not start" >&2; cat "$work/redis.log" >&2; exit 1; }
redis_version=$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" info server | tr -d '\r' | sed -n 's/^redis_version://p')

# Two mounts of one filesystem in Redis's database 1: a writer's (A) and a
# reader's (B).
mount_opts="redis=redis://127.0.0.1:$port/1,redis_prefix=bench"
mount_args=()
if [ "$with_mounts" = 1 ]; then
  start_daemon mount-a "$mqfs_bin" -f -o "$mount_opts"
  mount_a=$mounted
  start_daemon mount-b "$mqfs_bin" -f -o "$mount_opts"
  mount_b=$mounted
  mount_args=(--mounts "${mount_a%:*},${mount_b%:*}")
fi

mkdir -p "$results"
report=$results/redis.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
echo "Measuring throughput and wake-up latency"
run_step "$limit" "$bench" --port "$port" --functions "$functions" --csv "$results/redis.csv" \
  "${mount_args[@]}" "${pass_args[@]}" >"$work/tables.md"

# Unmounted while Redis is still there; what the daemons logged besides
# mounting and unmounting goes into the report.
mount_log=
if [ "$with_mounts" = 1 ]; then
  stop_daemon "$mount_a"
  stop_daemon "$mount_b"
  mount_log=$(cat "$work/mount-a.log" "$work/mount-b.log" | grep -v -e ': info: mounted at ' -e ': info: unmounted ' || true)
fi

{
  echo "# Redis: the Redis store through two mounts, and its anchors"
  echo
  echo "What a user would otherwise write with hiredis, next to mqfs's server functions without FUSE"
  echo "(\`bench/redis.sh\`; see bench/README.md): 64-byte messages, 1 writer + 1 reader, one connection"
  echo "each, every command waiting for its reply. direct: \`ZADD\` / \`BZPOPMIN key 0\`; list: \`LPUSH\` /"
  echo "\`BRPOP key 0\`; functions: \`FCALL mqfs_send\` / \`FCALL mqfs_take\` then \`FCALL mqfs_ack\`, an empty"
  echo "take waiting for a queued event on \`mqfs:events\`, a full send for an acknowledged one."
  if [ "$with_mounts" = 1 ]; then
    echo
    echo "mounts: the Redis store itself, two mqfs mounts A and B of that Redis (same prefix), a writer process on"
    echo "A and a reader process on B, both blocking, the reader in stream mode (\`MQFS_IOC_SET_READ_MODE\`); each"
    echo "case and round a new queue (its \`maxmsg\` as the functions case's), removed after. 64 B: one message per"
    echo "\`write(2)\` and per \`read(2)\`. u32: \`user.mq.framing=u32\`, many frames of 64 B per \`write(2)\`, \`read(2)\`"
    echo "of 64 KiB returning as many whole frames as are there; messages/s counts frames. The wake-up latency row:"
    echo "a thread blocked in \`read(2)\` on B, the message (its send time inside) written on A."
  fi
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -r)"
  echo "- Redis $redis_version (Debian's redis-server) on 127.0.0.1, save \"\", appendonly no; functions: $functions"
  if [ "$with_mounts" = 1 ]; then
    echo "- mqfs: $mqfs_bin ($("$mqfs_bin" --version 2>/dev/null | grep -m1 '^mqfs' || echo '?')), twice: \`-f -o $mount_opts\` (other cases: database 0)"
  fi
  if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "- source: commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet -- src/store/redis_functions.lua || echo ', redis_functions.lua modified')$([ "$with_mounts" = 0 ] || git -C "$root" diff --quiet -- src include || echo ', src/ or include/ modified')"
  fi
  echo "- options: ${pass_args[*]:-defaults (3 rounds of 5000 ms after 500 ms, maxmsg 1000000 and 10, 64 u32 frames per write, 2000 latency samples, 2 ms apart)}; nothing pinned"
  echo "- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg); $(scheduling); the measurements took $((SECONDS - start)) s"
  echo
  cat "$work/tables.md"
  if [ -n "$mount_log" ]; then
    echo
    echo "## The mounts' logs (besides mounting and unmounting)"
    echo
    echo '```'
    echo "$mount_log" | head -50
    echo '```'
  fi
} >"$report"
cat "$report"
echo "Wrote $report and $results/redis.csv"
