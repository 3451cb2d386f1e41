#!/usr/bin/env python3
"""The seed's "Message Filtering Pattern" with mqfs: logs, errors and metrics
share one queue as message types 1, 2 and 3, and each consumer selects the
types it wants (ioctl MQFS_IOC_SET_SELECT, msgrcv's msgtyp):

- the error consumer takes type 2 only (msgrcv(msgid, &msg, size, 2, 0)).
  It starts first and waits; logs and metrics sent meanwhile do not wake it
  and stay queued for others, the first error does.
- the logs-and-errors consumer takes types <= 2, the lowest type first
  (msgrcv(..., -2, 0)): every log, then the errors.
- the metrics consumer takes every type but logs (type 1 with `except`);
  only metrics are left by then.
- an audit consumer selects type 4, of which none is queued: poll() does not
  report its descriptor readable although the queue holds messages.

The producer writes through one descriptor and sets its type before each
message (MQFS_IOC_SET_TYPE, msgsnd's mtype). The consumers print in a fixed
order (each step waits for the one before), so the output is always the same.

usage: filtering.py [MOUNT]
"""
import os
import select
import sys
import threading
import time

import mqfs  # the ioctls of include/mqfs.h (examples/mqfs.py)

LOG, ERROR, METRIC = 1, 2, 3
NAMES = {LOG: "log", ERROR: "error", METRIC: "metric"}


def consumer(queue, msgtyp, except_=0, nonblock=False):
    """A descriptor that reads message after message of the selected types."""
    fd = os.open(queue, os.O_RDONLY | (os.O_NONBLOCK if nonblock else 0))
    mqfs.set_read_mode(fd, mqfs.READ_STREAM)
    mqfs.set_select(fd, msgtyp, except_)  # as msgrcv's msgtyp: 0 any, t, -t; except_ 1: all but t
    return fd


def receive(fd):
    """(type, text) of the next message fd selects, or None when none is queued
    (on a non-blocking descriptor)."""
    try:
        text = os.read(fd, 8192).decode()
    except BlockingIOError:
        return None
    return mqfs.delivery(fd).type, text


def send(producer, message_type, text):
    print(f"sent {NAMES[message_type]}: {text}")  # first: a waiting consumer may print it at once
    mqfs.set_type(producer, message_type)  # msgsnd's mtype
    os.write(producer, text.encode())  # one write(2), one message


def counter(queue, name):
    return int(os.getxattr(queue, "user.mq." + name))


def wait_for(condition, what):
    """Polls until condition() holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"filtering: timed out waiting for {what}")
        time.sleep(0.005)


def error_consumer(fd):
    """Waits for one error, the seed's consumer 1: msgrcv(msgid, &msg, size, 2, 0)."""
    message_type, text = receive(fd)
    print(f"error consumer: {text} (type {message_type})")


def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    directory = os.path.join(mount, "filter")
    queue = os.path.join(directory, "events")
    os.makedirs(directory, exist_ok=True)
    open(queue, "a").close()  # creates the queue
    os.truncate(queue, 0)     # purges what an earlier run left
    os.setxattr(queue, "user.mq.recv_timeout_ms", b"10000")  # so that the example always ends
    producer = os.open(queue, os.O_WRONLY)

    # Consumer 1 waits for errors before anything is sent.
    errors = consumer(queue, ERROR)
    print("error consumer: waiting for errors (type 2) only")
    waiting = threading.Thread(target=error_consumer, args=(errors,))
    waiting.start()
    wait_for(lambda: counter(queue, "waiting_readers") == 1, "the error consumer to wait")

    send(producer, LOG, "Log message")
    send(producer, METRIC, "Metric data")
    # Neither woke it: both are still queued, and it still waits.
    print(f"error consumer: still waiting, with {counter(queue, 'curmsgs')} messages queued "
          f"and {counter(queue, 'waiting_readers')} reader waiting")
    send(producer, ERROR, "Error occurred")
    waiting.join()  # it took the error
    os.close(errors)

    send(producer, LOG, "user alice logged in")
    send(producer, ERROR, "disk full")
    send(producer, METRIC, "cpu 93%")
    send(producer, LOG, "cache miss")

    # Consumer 2: any type <= 2, the lowest type first, the oldest first within a type.
    print("logs-and-errors consumer (types <= 2, lowest first):")
    fd = consumer(queue, -ERROR, nonblock=True)
    while (message := receive(fd)) is not None:
        print(f"  {NAMES[message[0]]}: {message[1]}")
    print(f"  nothing more of types <= 2; {counter(queue, 'curmsgs')} messages left")
    os.close(fd)

    # An audit consumer selects type 4: none is queued, so poll() does not wake it.
    fd = consumer(queue, 4, nonblock=True)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    readable = bool(poller.poll(0))
    print(f"audit consumer (type 4): readable: {'yes' if readable else 'no'}, "
          f"with {counter(queue, 'curmsgs')} messages queued")
    os.close(fd)

    # Consumer 3: every type but logs.
    print("metrics consumer (every type but 1):")
    fd = consumer(queue, LOG, except_=1, nonblock=True)
    while (message := receive(fd)) is not None:
        print(f"  {NAMES[message[0]]}: {message[1]}")
    os.close(fd)
    print(f"filter/events: {counter(queue, 'sent')} sent, {counter(queue, 'received')} received, "
          f"{counter(queue, 'curmsgs')} left")
    os.close(producer)


if __name__ == "__main__":
    main()
