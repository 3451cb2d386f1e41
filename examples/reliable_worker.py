#!/usr/bin/env python3
"""A reliable worker: explicit acknowledgement, retries and a dead-letter
queue that mqfs keeps itself (SPEC section 11).

The worker reads jobs from MOUNT/reliable/jobs with explicit
acknowledgement: a job it reads is leased to it, not taken. After the work
it ACKs the job (taken for good); when the work fails it NACKs it, and mqfs
puts the job back at its place in the queue, after the queue's retry delay,
to be delivered again with its delivery count one higher. A job that still
fails at its last allowed delivery (user.mq.max_deliveries) is moved by mqfs
to MOUNT/reliable/dead (user.mq.dead_letter), where a watcher thread reports
it. Had the worker died holding a job, the job would have come back as well
(at its close, or once user.mq.lease_ms ran out).

usage: reliable_worker.py [MOUNT]
"""
import fcntl
import os
import select
import struct
import sys
import threading


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("M") << 8) | nr


# From include/mqfs.h.
MQFS_IOC_SET_READ_MODE = _ioc(1, 2, 4)
MQFS_IOC_SET_ACK = _ioc(1, 4, 4)
MQFS_IOC_ACK = _ioc(1, 5, 8)
MQFS_IOC_NACK = _ioc(1, 6, 8)
DELIVERY = struct.Struct("QqiIq")  # struct mqfs_delivery: id, type, priority, deliveries, enqueued_ns
MQFS_IOC_GET_DELIVERY = _ioc(2, 7, DELIVERY.size)
MQFS_READ_STREAM = 1
MQFS_ACK_EXPLICIT = 1

JOBS = ["resize photo1.png", "resize corrupt.png", "upload to flaky-server", "resize photo2.png"]
MAX_DELIVERIES = 3
SETTINGS = {
    "max_deliveries": MAX_DELIVERIES,
    "dead_letter": "reliable/dead",
    "retry_delay_ms": 200,      # a failed job waits a little; other jobs go first
    "lease_ms": 5000,           # a job held longer (a worker stuck or dead) is delivered again
    "recv_timeout_ms": 10000,   # so that the example always ends
}


def delivery(fd):
    """(id, priority, deliveries) of the message just read on fd."""
    message_id, _type, priority, deliveries, _enqueued_ns = DELIVERY.unpack(
        fcntl.ioctl(fd, MQFS_IOC_GET_DELIVERY, bytes(DELIVERY.size)))
    return message_id, priority, deliveries


def work(job, deliveries):
    """Stands in for real work: corrupt input always fails, a flaky server
    fails the first time."""
    if "corrupt" in job:
        raise ValueError("corrupt input")
    if "flaky" in job and deliveries < 2:
        raise TimeoutError("server timed out")


def run_worker(jobs):
    """Works through every job; returns how many were done."""
    fd = os.open(jobs, os.O_RDONLY)
    fcntl.ioctl(fd, MQFS_IOC_SET_ACK, struct.pack("i", MQFS_ACK_EXPLICIT))
    fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", MQFS_READ_STREAM))
    done = finished = 0
    try:
        while finished < len(JOBS):
            job = os.read(fd, 8192).decode()  # waits for a job, or for a retry
            message_id, _, deliveries = delivery(fd)
            try:
                work(job, deliveries)
            except Exception as error:
                if deliveries < MAX_DELIVERIES:
                    print(f"worker: {job}: failed on delivery {deliveries} ({error}), returned for a retry")
                else:
                    print(f"worker: {job}: failed on delivery {deliveries} ({error}), its last: "
                          f"mqfs moves it to {SETTINGS['dead_letter']}")
                    finished += 1
                fcntl.ioctl(fd, MQFS_IOC_NACK, struct.pack("Q", message_id))
                continue
            fcntl.ioctl(fd, MQFS_IOC_ACK, struct.pack("Q", message_id))
            print(f"worker: {job}: done on delivery {deliveries}")
            done += 1
            finished += 1
    finally:
        os.close(fd)  # a job still held would go back to the queue here
    return done


def watch(dead, stop, seen):
    """Reports each dead letter until `stop` is set and nothing more comes."""
    fd = os.open(dead, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", MQFS_READ_STREAM))
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        while True:
            # Read before the poll: a dead letter made before `stop` was set
            # is then in the poll's answer.
            stopping = stop.is_set()
            if not poller.poll(100):
                if stopping:
                    break
                continue
            while True:
                try:
                    job = os.read(fd, 8192).decode()
                except BlockingIOError:
                    break
                _, priority, _ = delivery(fd)
                print(f"watcher: dead letter: {job} (priority {priority})")
                seen.append(job)
    finally:
        os.close(fd)


def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    directory = os.path.join(mount, "reliable")
    jobs, dead = os.path.join(directory, "jobs"), os.path.join(directory, "dead")
    os.makedirs(directory, exist_ok=True)
    for queue in (jobs, dead):
        open(queue, "a").close()  # creates the queue
        os.truncate(queue, 0)     # purges what an earlier run left
    for name, value in SETTINGS.items():
        os.setxattr(jobs, "user.mq." + name, str(value).encode())
    for job in JOBS:
        with open(jobs, "wb", buffering=0) as queue:
            queue.write(job.encode())  # one write(2), one message

    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch, args=(dead, stop, seen))
    watcher.start()
    try:
        done = run_worker(jobs)
    finally:
        stop.set()
        watcher.join()
    left = [int(os.getxattr(jobs, "user.mq." + name)) for name in ("curmsgs", "inflight")]
    print(f"reliable/jobs: {done} done, {len(seen)} dead letter(s); {left[0]} queued, {left[1]} in flight")


if __name__ == "__main__":
    main()
