#!/usr/bin/env python3
"""An asyncio consumer driven by readiness, not by blocking reads.

The queue MOUNT/async/events is opened with O_NONBLOCK and switched to the
"stream" read mode for this descriptor only (ioctl MQFS_IOC_SET_READ_MODE),
so one open file delivers message after message. The event loop watches it
(loop.add_reader, epoll underneath); when it is readable the consumer reads
until EAGAIN, then goes back to waiting. It stops at the message "stop".

With COUNT > 0 (default 25) a producer coroutine in the same loop sends
"event 1" .. "event COUNT" and "stop" through its own non-blocking
descriptor; when the queue is full (maxmsg, 10 by default) the write fails
with EAGAIN and the producer waits for writability (loop.add_writer). With
COUNT = 0 the script only consumes, until another process sends "stop":
    echo hello > MOUNT/async/events; echo stop > MOUNT/async/events

usage: asyncio_consumer.py [MOUNT] [COUNT]
"""
import asyncio
import fcntl
import os
import struct
import sys


def _IOW(kind, number, size):
    """Linux's _IOW() from <asm-generic/ioctl.h>."""
    return (1 << 30) | (size << 16) | (ord(kind) << 8) | number


# From mqfs.h.
MQFS_IOC_SET_READ_MODE = _IOW("M", 2, 4)
MQFS_READ_STREAM = 1


async def wait_for(add, remove, fd):
    """Waits until the loop reports fd ready (add_reader or add_writer)."""
    ready = asyncio.get_running_loop().create_future()
    add(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        remove(fd)


async def consume(queue):
    loop = asyncio.get_running_loop()
    msgsize = int(os.getxattr(queue, "user.mq.msgsize"))
    fd = os.open(queue, os.O_RDONLY | os.O_NONBLOCK)
    # Only this descriptor streams; other readers of the queue keep the
    # queue's read mode. (setfattr -n user.mq.read_mode -v stream would
    # switch every reader.)
    fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", MQFS_READ_STREAM))
    received = 0
    try:
        while True:
            await wait_for(loop.add_reader, loop.remove_reader, fd)
            while True:  # drain: each read is one message, EAGAIN when empty
                try:
                    message = os.read(fd, msgsize).decode().rstrip("\n")
                except BlockingIOError:
                    break
                if message == "stop":
                    print(f"received {received} messages")
                    return
                received += 1
                print(f"received: {message}")
    finally:
        os.close(fd)


async def produce(queue, count):
    loop = asyncio.get_running_loop()
    fd = os.open(queue, os.O_WRONLY | os.O_NONBLOCK)
    try:
        for message in [f"event {n}" for n in range(1, count + 1)] + ["stop"]:
            while True:
                try:
                    os.write(fd, message.encode())   # one write, one message
                    break
                except BlockingIOError:              # full: wait for room
                    await wait_for(loop.add_writer, loop.remove_writer, fd)
    finally:
        os.close(fd)


async def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    directory = os.path.join(mount, "async")
    queue = os.path.join(directory, "events")
    os.makedirs(directory, exist_ok=True)
    open(queue, "a").close()      # creates the queue
    tasks = [consume(queue)]
    if count > 0:
        os.truncate(queue, 0)     # our own run: purge what an earlier one left
        tasks.append(produce(queue, count))
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
