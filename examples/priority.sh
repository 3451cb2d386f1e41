#!/usr/bin/env bash
# The seed's "Example 2: Priority Messages" (mq_send with priorities, then
# mq_receive in a loop) with setfattr, echo and cat. Prints the same output.
#
# usage: priority.sh [MOUNT]
set -euo pipefail

mount=${1:-/mnt/mq}
dir=$mount/priority
pq=$dir/pq

mkdir -p "$dir"
rm -f "$pq"                                # a new, empty queue on every run
touch "$pq"                                # mq_open(..., O_CREAT, 0644, &attr)
setfattr -n user.mq.maxmsg -v 10 "$pq"     # attr = {0, 10, 256, 0}
setfattr -n user.mq.msgsize -v 256 "$pq"

# send PRIORITY TEXT: mq_send(mq, TEXT, len, PRIORITY).
# A reader of mqfs gets the message, not its priority (there is no msg_prio
# out-parameter), so the priority travels in the message for the printout.
# Setting the queue's priority before each write is fine for one writer;
# concurrent writers with different priorities use MQFS_IOC_SET_PRIORITY on
# their own descriptor instead.
send() {
    setfattr -n user.mq.priority -v "$1" "$pq"
    echo "$1 $2" > "$pq"
}

send 1 "Low priority task"
send 5 "Normal task"
send 10 "High priority task"
send 20 "URGENT ALERT!"
send 1 "Another low task"

echo "Messages sent with priorities"
echo
echo "Receiving in priority order:"
# Receive until the queue is empty (the seed loops until mq_receive fails).
while (( $(getfattr --absolute-names --only-values -n user.mq.curmsgs "$pq") > 0 )); do
    msg=$(cat "$pq")                       # the highest priority, oldest first
    printf 'Priority %2d: %s\n' "${msg%% *}" "${msg#* }"
done

rm "$pq"                                   # mq_unlink
