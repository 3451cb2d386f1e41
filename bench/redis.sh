#!/usr/bin/env bash
# Measures the anchors the Redis store (SPEC section 10) is compared with:
# a priority queue written directly with hiredis (ZADD / BZPOPMIN), a Redis
# list (LPUSH / BRPOP) and mqfs's server functions without FUSE
# (src/store/redis_functions.lua: mqfs_send, mqfs_take + mqfs_ack, waking on
# the events of mqfs:events), all against one loopback redis-server.
#
#   bench/redis.sh [--quick] [--functions FILE] [--rounds N] [--window-ms MS]
#                  [--warmup-ms MS] [--maxmsg 1000000,10] [--samples N]
#                  [--pause-ms MS]
#
# Builds build-bench/redis_bench, starts Debian's redis-server on a free port
# of 127.0.0.1 (save "", appendonly no, its directory a fresh one under
# /dev/shm), runs redis_bench: throughput of 64-byte messages, 1 writer + 1
# reader, each command waiting for its reply (medians of rounds), and the
# wake-up latency of a blocked reader (p50, p99). FILE: the function library
# (default src/store/redis_functions.lua). Writes bench/results/redis.md
# (also printed) and redis.csv. Redis is stopped by pid on any exit.
#
# No root needed. Run on a quiet machine. Default: about 1.5 minutes (3 rounds
# of 5 s, 2000 latency samples); --quick: about 40 s (3 rounds of 2 s, 500).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
functions=$root/src/store/redis_functions.lua
limit=600

while [ $# -gt 0 ]; do
  case $1 in
    --quick) pass_args+=(--rounds 3 --window-ms 2000 --warmup-ms 300 --samples 500); limit=300; shift ;;
    --functions) functions=$2; shift 2 ;;
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

mkdir -p "$results"
report=$results/redis.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
echo "Measuring throughput and wake-up latency"
run_step "$limit" "$bench" --port "$port" --functions "$functions" --csv "$results/redis.csv" \
  "${pass_args[@]}" >"$work/tables.md"

{
  echo "# Redis: the anchors of the Redis store"
  echo
  echo "What a user would otherwise write with hiredis, next to mqfs's server functions without FUSE"
  echo "(\`bench/redis.sh\`; see bench/README.md): 64-byte messages, 1 writer + 1 reader, one connection"
  echo "each, every command waiting for its reply. direct: \`ZADD\` / \`BZPOPMIN key 0\`; list: \`LPUSH\` /"
  echo "\`BRPOP key 0\`; functions: \`FCALL mqfs_send\` / \`FCALL mqfs_take\` then \`FCALL mqfs_ack\`, an empty"
  echo "take waiting for a queued event on \`mqfs:events\`, a full send for an acknowledged one."
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -r)"
  echo "- Redis $redis_version (Debian's redis-server) on 127.0.0.1, save \"\", appendonly no; functions: $functions"
  if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "- source: commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet -- src/store/redis_functions.lua || echo ', redis_functions.lua modified')"
  fi
  echo "- options: ${pass_args[*]:-defaults (3 rounds of 5000 ms after 500 ms, maxmsg 1000000 and 10, 2000 latency samples, 2 ms apart)}; nothing pinned"
  echo "- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg); $(scheduling); the measurements took $((SECONDS - start)) s"
  echo
  cat "$work/tables.md"
} >"$report"
cat "$report"
echo "Wrote $report and $results/redis.csv"
