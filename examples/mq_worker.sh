#!/usr/bin/env bash
# A worker pool with `mq work`: jobs sent at their own priorities (`mq send
# -p`), three commands at a time; each job's exit status acknowledges it (0)
# or returns it to the queue for another try. A job that fails once is done
# on its second delivery; one that always fails goes, after its second, to
# the dead-letter queue. Prints the same output on every run.
#
# usage: mq_worker.sh [MOUNT]      (mq from $MQ, else from PATH)
set -euo pipefail

mount=${1:-/mnt/mq}
mq=${MQ:-mq}
cd "$mount"
rm -rf mqwork
mkdir mqwork
touch mqwork/jobs mqwork/failed
setfattr -n user.mq.max_deliveries -v 2 mqwork/jobs
setfattr -n user.mq.dead_letter -v /mqwork/failed mqwork/jobs

"$mq" send -p 1 mqwork/jobs "resize a.png" "flaky upload" "broken file"
"$mq" send -p 9 mqwork/jobs "URGENT thumbnail"
echo "sent 4 jobs; the queue holds, in the order workers take them:"
"$mq" peek -v mqwork/jobs | sed 's/^/  /'

# Each job runs once per delivery: 4 jobs, the flaky one twice, the broken
# one twice, so 6 deliveries in all. What the commands print comes in the
# order they end; sorted here to read the same every time.
"$mq" work -j 3 -n 6 mqwork/jobs -- sh -c '
    read -r job
    case $job in
        broken*) exit 1 ;;
        flaky*) [ "$MQ_DELIVERY" -ge 2 ] || exit 1 ;;
    esac
    echo "done: $job (priority $MQ_PRIORITY, delivery $MQ_DELIVERY)"
' 2>/dev/null | LC_ALL=C sort

echo "dead letter: $("$mq" recv -w 5 mqwork/failed)"
"$mq" stat mqwork | awk '{ printf "%-14s %5s %9s %5s %9s\n", $1, $2, $8, $9, $10 }' 
