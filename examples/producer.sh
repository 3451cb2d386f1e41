#!/usr/bin/env bash
# A producer: sends JOBS messages "job 1" .. "job JOBS" to MOUNT/work/jobs,
# then one "stop" per worker.
#
# usage: producer.sh [MOUNT] [JOBS] [WORKERS]
#
# The queue holds user.mq.maxmsg messages (10 by default); when it is full
# the producer's `echo` waits until a worker takes one, so a fast producer
# never runs ahead of its workers by more than that.
set -euo pipefail

mount=${1:-/mnt/mq}
count=${2:-10}
workers=${3:-1}
jobs=$mount/work/jobs

mkdir -p "$mount/work"
: >> "$jobs"    # creates the queue; unlike touch, never waits behind a blocked writer

for ((i = 1; i <= count; i++)); do
    echo "job $i" > "$jobs"    # one write, one message; `>` never purges the queue
done
# The stops have the jobs' priority and come after them (FIFO), so no worker
# sees a stop while a job is still queued.
for ((i = 0; i < workers; i++)); do
    echo stop > "$jobs"
done
echo "producer: sent $count jobs and $workers stops"
