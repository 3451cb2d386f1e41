#!/usr/bin/env bash
# Request and reply over queues (the seed's "Example 5: Request-Response").
# Clients send requests to one queue, rpc/requests; each request names the
# client's own reply queue, rpc/replies/NAME, and the server answers there, so
# any number of clients can wait at once and each gets its own answer.
#
# usage: request_reply.sh [MOUNT]                   a server and three clients
#        request_reply.sh MOUNT server              answer requests until "stop"
#        request_reply.sh MOUNT client NAME FROM TO ask for the sum FROM..TO
#        request_reply.sh MOUNT stop                stop the server
set -euo pipefail

mount=${1:-/mnt/mq}
dir=$mount/rpc
requests=$dir/requests

mkdir -p "$dir/replies"
touch "$requests"

server() {
    local served=0 msg reply from to
    while msg=$(cat "$requests"); do
        [[ $msg == stop ]] && break
        # A request is "replies/NAME FROM TO". The reply queue's name comes
        # from another process: accept only a name under replies/, and only an
        # existing queue, since `>` would create one nobody reads.
        if [[ ! $msg =~ ^(replies/[A-Za-z0-9_-]+)\ ([0-9]{1,9})\ ([0-9]{1,9})$ ]] ||
           [[ ! -f $dir/${BASH_REMATCH[1]} ]]; then
            echo "server: dropped bad request: $msg" >&2
            continue
        fi
        reply=$dir/${BASH_REMATCH[1]} from=${BASH_REMATCH[2]} to=${BASH_REMATCH[3]}
        echo "sum of $from..$to = $(( (from + to) * (to - from + 1) / 2 ))" > "$reply"
        served=$((served + 1))
    done
    echo "server: answered $served requests"
}

client() {
    local name=$1 from=$2 to=$3 reply=$dir/replies/$1 answer status=0
    touch "$reply"
    # Like mq_timedreceive: give up if no server answers within 5 seconds.
    setfattr -n user.mq.recv_timeout_ms -v 5000 "$reply"
    echo "$name: asking for the sum of $from..$to"
    echo "replies/$name $from $to" > "$requests"
    if answer=$(cat "$reply"); then
        echo "$name: $answer"
    else
        echo "$name: no answer"
        status=1
    fi
    rm -f "$reply"
    return "$status"
}

demo() {
    local pids=() i status=0
    out=$(mktemp -d)    # global: the EXIT trap runs after demo has returned
    trap 'rm -rf "$out"' EXIT
    # A request or "stop" left by an earlier run would confuse this demo.
    truncate -s 0 "$requests"
    server > "$out/server" &
    local server_pid=$!
    # The clients run at once; their output is kept apart and shown in order.
    for i in 1 2 3; do
        client "client-$i" 1 $((i * 100)) > "$out/client-$i" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || status=1
    done
    # Every client has its answer (or gave up): the server can go.
    echo stop > "$requests"
    wait "$server_pid" || status=1
    cat "$out"/client-* "$out/server"
    return "$status"
}

case ${2:-demo} in
    demo) demo ;;
    server) server ;;
    client) client "${3:?client NAME}" "${4:?FROM}" "${5:?TO}" ;;
    stop) echo stop > "$requests" ;;
    *) echo "usage: $0 [MOUNT] [demo | server | client NAME FROM TO | stop]" >&2; exit 2 ;;
esac
