#!/usr/bin/env bash
# A topic (publish/subscribe) from the shell: MOUNT/topic/news is a topic;
# two `cat`s read it, each getting every message published while it reads,
# and the queue MOUNT/topic/archive subscribes to it for good
# (user.mq.subscribe), so it keeps a copy of every message even when no
# `cat` is there. With no subscriber at all a message is dropped, and the
# topic counts it. Prints the same output on every run.
#
# usage: topic.sh [MOUNT]
set -euo pipefail

mount=${1:-/mnt/mq}
dir=$mount/topic
news=$dir/news
archive=$dir/archive

attr() { getfattr --absolute-names --only-values -n "user.mq.$2" "$1"; }

# Waits (5 s at most) until attribute $2 of $1 is $3.
wait_attr() {
    local tries=0
    while [[ $(attr "$1" "$2") != "$3" ]]; do
        (( ++tries < 500 )) || { echo "topic.sh: $1: $2 never became $3" >&2; exit 1; }
        sleep 0.01
    done
}

# Waits (5 s at most) until file $1 has $2 lines.
wait_lines() {
    local tries=0
    while (( $(wc -l < "$1") < $2 )); do
        (( ++tries < 500 )) || { echo "topic.sh: $1 never had $2 lines" >&2; exit 1; }
        sleep 0.01
    done
}

mkdir -p "$dir"
rm -f "$news" "$archive"                            # new, empty queues on every run
touch "$news" "$archive"
setfattr -n user.mq.kind -v topic "$news"           # while it is empty
setfattr -n user.mq.read_mode -v stream "$news"     # a cat of it prints message after message
setfattr -n user.mq.subscribe -v /topic/news "$archive"   # a path from the mount root

# Two live subscribers: each cat is one from its open until it ends.
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
cat "$news" > "$out/alice" & alice=$!
cat "$news" > "$out/bob" & bob=$!
wait_attr "$news" subscribers 3
echo "topic/news: $(attr "$news" subscribers) subscribers (two cats and topic/archive)"

for headline in "rain tomorrow" "trains on time" "new library opens"; do
    echo "$headline" > "$news"                      # one write, one message to every subscriber
done
wait_lines "$out/alice" 3
wait_lines "$out/bob" 3
kill "$alice" "$bob"                                # a signal ends a cat's waiting read
wait "$alice" "$bob" || true
sed 's/^/alice: /' "$out/alice"
sed 's/^/bob: /' "$out/bob"

wait_attr "$news" subscribers 1                     # the cats have gone
echo "library closed on Sundays" > "$news"          # only topic/archive gets it
echo "topic/news: $(attr "$news" sent) published, $(attr "$news" curmsgs) kept"
echo "topic/archive holds $(attr "$archive" curmsgs) messages:"
while (( $(attr "$archive" curmsgs) > 0 )); do
    echo "  $(cat "$archive")"                      # an ordinary queue: one cat, one message
done

setfattr -n user.mq.subscribe -v "" "$archive"      # ends the lasting subscription
echo "nobody reads this" > "$news"                  # no subscriber: dropped
echo "topic/news: $(attr "$news" subscribers) subscribers, $(attr "$news" dropped) dropped"
