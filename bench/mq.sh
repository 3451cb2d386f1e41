#!/usr/bin/env bash
# Measures what `mq` costs a shell user, beside the shell tools that do the
# same on the same mount in the same run: per message, `mq send` against
# `/bin/echo > q` and `mq recv` against `cat q` (each a new process: what a
# script pays); many messages in one process (`mq send q M1 .. MN`, `mq recv
# -n N`); and `mq work` running `true` per message (-j 1 and -j 4) against
# the shell loop `while m=$(cat q); do true; done`.
#
#   bench/mq.sh [MQFS_BINARY] [MQ_BINARY] [--count N] [--rounds R]
#
# MQFS_BINARY and MQ_BINARY default to build/mqfs and build/mq. Mounts a fresh
# mqfs under /dev/shm (-o maxmsg=100000), runs each case ROUNDS times (3) over
# COUNT messages (1000; the one-process cases 10 x COUNT) and keeps the
# median. Writes bench/results/mq.md (also printed). Run as root on a quiet
# machine; about a minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mq_bin=$root/build/mq
count=1000
rounds=3
positional=0
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) common_arg "$1" ;;
    --count) count=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) if [ $positional -eq 0 ]; then mqfs_bin=$1; else mq_bin=$1; fi; positional=$((positional + 1)); shift ;;
  esac
done
require_root_and_mqfs "mounting"
mq_bin=$(realpath "$mq_bin")
make_work mq
mnt=$work/mnt
mkdir "$mnt"
"$mqfs_bin" -o maxmsg=100000 "$mnt"
mounts+=("$mnt")
q=$mnt/q
touch "$q"

now() { echo "${EPOCHREALTIME/./}"; }  # microseconds
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
drain() { "$mq_bin" recv -w 0 -n 1000000 "$q" >/dev/null 2>&1 || true; }
fill() {  # N messages, in batches of 1000 arguments
  local n=$1 batch
  while [ "$n" -gt 0 ]; do
    batch=$((n < 1000 ? n : 1000))
    "$mq_bin" send "$q" $(seq -f "m%g" "$batch")
    n=$((n - batch))
  done
}

# run NAME N COMMAND...: runs COMMAND (a shell function) ROUNDS times after
# `prepare_NAME N` if defined; prints the median rate in messages/s.
rate() {
  local n=$1 start end
  shift
  local -a rates=()
  for _ in $(seq "$rounds"); do
    drain
    if declare -F "prepare_$1" >/dev/null; then "prepare_$1" "$n"; fi
    start=$(now)
    "$@" "$n"
    end=$(now)
    rates+=("$(awk -v n="$n" -v us=$((end - start)) 'BEGIN { printf "%.0f", n * 1e6 / us }')")
  done
  printf '%s\n' "${rates[@]}" | median
}

echo_each() { for ((i = 0; i < $1; i++)); do /bin/echo m > "$q"; done; }
send_each() { for ((i = 0; i < $1; i++)); do "$mq_bin" send "$q" m; done; }
prepare_cat_each() { fill "$1"; }
cat_each() { for ((i = 0; i < $1; i++)); do cat "$q" >/dev/null; done; }
prepare_recv_each() { fill "$1"; }
recv_each() { for ((i = 0; i < $1; i++)); do "$mq_bin" recv "$q" >/dev/null; done; }
send_many() { fill "$1"; }
prepare_recv_many() { fill "$1"; }
recv_many() { "$mq_bin" recv -n "$1" "$q" >/dev/null; }
prepare_loop_true() { fill "$1"; }
loop_true() { for ((i = 0; i < $1; i++)); do m=$(cat "$q"); true; done; }
prepare_work_1() { fill "$1"; }
work_1() { "$mq_bin" work -n "$1" "$q" -- true; }
prepare_work_4() { fill "$1"; }
work_4() { "$mq_bin" work -j 4 -n "$1" "$q" -- true; }

echo "Measuring ($rounds rounds, $count messages; one-process cases $((count * 10)))"
r_echo=$(rate "$count" echo_each)
r_send=$(rate "$count" send_each)
r_cat=$(rate "$count" cat_each)
r_recv=$(rate "$count" recv_each)
r_send_many=$(rate $((count * 10)) send_many)
r_recv_many=$(rate $((count * 10)) recv_many)
r_loop=$(rate "$count" loop_true)
r_work1=$(rate "$count" work_1)
r_work4=$(rate "$count" work_4)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
report=$results/mq.md
{
  echo "# mq from the shell: messages per second (median of $rounds)"
  echo
  echo "\`bench/mq.sh\`, $(date -u +%Y-%m-%d), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg) at the end."
  echo "Each message is one new process unless the case says otherwise."
  echo
  echo "| case | msg/s | against | ratio |"
  echo "|---|---:|---|---:|"
  echo "| \`mq send q m\`, a process each | $r_send | \`/bin/echo m > q\` $r_echo | $(ratio "$r_send" "$r_echo") |"
  echo "| \`mq recv q\`, a process each | $r_recv | \`cat q\` $r_cat | $(ratio "$r_recv" "$r_cat") |"
  echo "| \`mq send q m1 .. mN\`, one process | $r_send_many | \`/bin/echo m > q\` | $(ratio "$r_send_many" "$r_echo") |"
  echo "| \`mq recv -n N q\`, one process | $r_recv_many | \`cat q\` | $(ratio "$r_recv_many" "$r_cat") |"
  echo "| \`mq work -j 1 q -- true\` | $r_work1 | \`while m=\$(cat q); do true; done\` $r_loop | $(ratio "$r_work1" "$r_loop") |"
  echo "| \`mq work -j 4 q -- true\` | $r_work4 | the same loop | $(ratio "$r_work4" "$r_loop") |"
} > "$report"
cat "$report"
