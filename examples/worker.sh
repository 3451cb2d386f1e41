#!/usr/bin/env bash
# A worker: takes jobs from MOUNT/work/jobs, one message per `cat`, and stops
# at a "stop" message or when a receive times out.
#
# usage: worker.sh [MOUNT] [NAME]
#
# Start as many workers as you like; each job goes to exactly one of them.
# Two ways to end them: producer.sh sends one "stop" per worker after the
# jobs, or give the queue a receive timeout so that idle workers leave:
#     setfattr -n user.mq.recv_timeout_ms -v 2000 MOUNT/work/jobs
set -euo pipefail

mount=${1:-/mnt/mq}
name=${2:-worker-$$}
jobs=$mount/work/jobs

# Workers may start before the producer: make the queue if it is not there.
# `: >>` only opens (O_CREAT, no truncation); `touch` would also set the
# queue's times.
mkdir -p "$mount/work"
: >> "$jobs"

handled=0
# In the default "message" read mode one `cat` receives exactly one message,
# waiting while the queue is empty. It fails, ending the loop, when the
# queue's recv_timeout_ms passes without a message (ETIMEDOUT) or the
# filesystem goes away.
while msg=$(cat "$jobs"); do
    if [[ $msg == stop ]]; then
        echo "$name: stop after $handled jobs"
        exit 0
    fi
    echo "$name: $msg"
    handled=$((handled + 1))
done
echo "$name: no more jobs (receive failed) after $handled jobs"
