#!/usr/bin/env bash
# Captures one screen of `mq top` as text, for the documentation (docs/mq-top.txt).
#
# Mounts a temporary mqfs, makes queues with some traffic in it (a deep queue,
# a busy one with a writer and an `mq work` consumer, a topic with a lasting
# subscriber, a queue whose failures went to its dead-letter queue), runs
# `mq top` in a detached tmux window of 110x20, waits until it has drawn and
# has had a few refreshes to measure rates, captures the pane, quits `mq top`,
# stops the traffic, unmounts and removes everything it made.
#
# Usage: scripts/capture-mq-top.sh MQFS MQ [OUTPUT]
#   MQFS    the mqfs daemon (e.g. build/mqfs)
#   MQ      the mq program (e.g. build/mq)
#   OUTPUT  where the screen goes (default: docs/mq-top.txt of this checkout)
#
# Needs tmux, which scripts/install-deps.sh does not install:
#   apt-get install -y tmux
# and setfattr (package attr) and fusermount3 (fuse3), which it does.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 MQFS MQ [OUTPUT]" >&2
  exit 2
fi
mqfs=$(realpath "$1")
mq=$(realpath "$2")
out=$(realpath -m "${3:-$(dirname "$0")/../docs/mq-top.txt}")
for program in "$mqfs" "$mq"; do
  [ -x "$program" ] || { echo "$0: $program is not an executable program" >&2; exit 1; }
done
command -v tmux >/dev/null || { echo "$0: needs tmux: apt-get install -y tmux" >&2; exit 1; }
command -v setfattr >/dev/null || { echo "$0: needs setfattr: apt-get install -y attr" >&2; exit 1; }

tmp=$(mktemp -d /tmp/mq-top.XXXXXX)
mnt="$tmp/mq"
socket="mq-top-capture-$$"
daemon=""
pids=()

cleanup() {
  tmux -L "$socket" kill-server 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$daemon" ]; then
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  if mountpoint -q "$mnt" 2>/dev/null; then fusermount3 -u -z "$mnt" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails after SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local tries=$((seconds * 10))
  until "$@"; do
    tries=$((tries - 1))
    if [ $tries -le 0 ]; then echo "$0: timed out after ${seconds}s waiting for $what" >&2; exit 1; fi
    sleep 0.1
  done
}

mkdir "$mnt"
"$mqfs" -f "$mnt" >"$tmp/mqfs.log" 2>&1 &
daemon=$!
wait_for 10 "the mount" mountpoint -q "$mnt"

set_attr() { setfattr -n "user.mq.$2" -v "$3" "$mnt/$1"; }
queue() { touch "$mnt/$1"; }

mkdir "$mnt/orders" "$mnt/mail"

# A deep queue: 17 of 20.
queue orders/incoming
set_attr orders/incoming maxmsg 20
for i in $(seq 1 17); do "$mq" send "$mnt/orders/incoming" "order $i"; done

# A busy queue: a writer about 50 messages a second, two workers taking them.
queue orders/paid
set_attr orders/paid maxmsg 50
(while :; do echo "paid" >"$mnt/orders/paid"; sleep 0.02; done) &
pids+=($!)
"$mq" work -j 2 "$mnt/orders/paid" -- sh -c 'cat >/dev/null; sleep 0.03' &
pids+=($!)

# A topic with a lasting subscriber, which nobody reads.
queue events
set_attr events kind topic
queue mail/audit
set_attr mail/audit maxmsg 100
set_attr mail/audit subscribe /events
(while :; do echo "event" >"$mnt/events"; sleep 0.2; done) &
pids+=($!)

# A queue whose messages failed: after one delivery they went to its dead-letter queue.
queue mail/outbox.dead
queue mail/outbox
set_attr mail/outbox max_deliveries 1
set_attr mail/outbox dead_letter /mail/outbox.dead
"$mq" send "$mnt/mail/outbox" "to alice" "to bob" "to carol" "to dave"
"$mq" work -n 3 "$mnt/mail/outbox" -- false 2>/dev/null

# mq top, in a window of 110x20, in the directory above the mount: its title shows the path "mq".
tmux -L "$socket" -f /dev/null new-session -d -s top -x 110 -y 20 -c "$tmp" "$mq top mq"
drawn() { tmux -L "$socket" capture-pane -p -t top 2>/dev/null | grep -q "^mq top"; }
wait_for 10 "mq top to draw" drawn
sleep 3  # three refreshes: the rates are measured
tmux -L "$socket" capture-pane -p -t top >"$out.tmp"
mv "$out.tmp" "$out"

tmux -L "$socket" send-keys -t top q
ended() { ! tmux -L "$socket" has-session -t top 2>/dev/null; }
wait_for 10 "mq top to quit" ended
echo "wrote $out"
