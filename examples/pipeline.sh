#!/usr/bin/env bash
# A three-stage pipeline (the seed's "Message Queue Federation"): each stage
# is its own process that takes messages from one queue and sends its result
# to the next.
#
#   images/input -> validate -> images/validated -> resize -> images/resized
#                      |                                          |
#                      v                                       publish
#               images/rejected                                   v
#                                                            images/done
#
# usage: pipeline.sh [MOUNT] [IMAGE...]   (default images: cat.png dog.jpg notes.txt bird.png)
set -euo pipefail

mount=${1:-/mnt/mq}
shift || true
(( $# > 0 )) || set -- cat.png dog.jpg notes.txt bird.png
dir=$mount/images

mkdir -p "$dir"
for queue in input validated resized "done" rejected; do
    touch "$dir/$queue"
    truncate -s 0 "$dir/$queue"    # purge what an interrupted run left behind
done
# The rejects are read only after the last result: room for all of them, so
# that validate never waits on a full rejected queue.
setfattr -n user.mq.maxmsg -v $(( $# + 1 )) "$dir/rejected"

# Every stage passes "end" on and stops, so the pipeline drains in order and
# each stage ends by itself.
validate() {
    local msg
    while msg=$(cat "$dir/input"); do
        if [[ $msg == end ]]; then
            echo end > "$dir/validated"
            echo end > "$dir/rejected"
            return
        elif [[ $msg =~ \.(png|jpg)$ ]]; then
            echo "$msg" > "$dir/validated"
        else
            echo "$msg (not an image)" > "$dir/rejected"
        fi
    done
}

resize() {
    local msg
    while msg=$(cat "$dir/validated"); do
        if [[ $msg == end ]]; then echo end > "$dir/resized"; return; fi
        echo "$msg resized to 800x600" > "$dir/resized"
    done
}

publish() {
    local msg
    while msg=$(cat "$dir/resized"); do
        if [[ $msg == end ]]; then echo end > "$dir/done"; return; fi
        echo "$msg, published" > "$dir/done"
    done
}

validate &
resize &
publish &

for image in "$@"; do
    echo "$image" > "$dir/input"
done
echo end > "$dir/input"

# One stage per process and one queue between each pair keep the order.
while msg=$(cat "$dir/done") && [[ $msg != end ]]; do
    echo "done: $msg"
done
while msg=$(cat "$dir/rejected") && [[ $msg != end ]]; do
    echo "rejected: $msg"
done
wait
