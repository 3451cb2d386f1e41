#!/usr/bin/env python3
"""A pool of worker processes sharing one queue, with nothing but open, read
and write: each of JOBS jobs is processed exactly once.

A producer process sends "job 1" .. "job JOBS" to MOUNT/pool/jobs, then one
"stop" per worker. Each worker opens the queue, reads one message (the
default "message" read mode: one open, one message), and sends its result to
MOUNT/pool/results. The parent reads the results and checks that every job
came back exactly once.

usage: worker_pool.py [MOUNT] [JOBS] [WORKERS]
"""
import collections
import multiprocessing
import os
import sys


def produce(jobs, count, workers):
    # Unbuffered: every write() is one write(2), and so one message. A full
    # queue makes the write wait until a worker takes a job.
    with open(jobs, "wb", buffering=0) as queue:
        for n in range(1, count + 1):
            queue.write(f"job {n}".encode())
        for _ in range(workers):
            queue.write(b"stop")


def work(jobs, results):
    while True:
        with open(jobs, "rb") as queue:
            job = queue.read().decode()   # one message, then end of file
        if job == "stop":
            return
        n = int(job.split()[1])
        with open(results, "wb", buffering=0) as queue:
            queue.write(f"{n} {n * n}".encode())


def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    directory = os.path.join(mount, "pool")
    jobs, results = os.path.join(directory, "jobs"), os.path.join(directory, "results")
    os.makedirs(directory, exist_ok=True)
    for queue in (jobs, results):
        open(queue, "a").close()          # creates the queue
        os.truncate(queue, 0)              # purges what an earlier run left
    # The parent is the results queue's only reader: stream mode lets it read
    # message after message from one open file. If a worker died, results
    # would stop coming: a receive timeout keeps the parent from waiting for ever.
    os.setxattr(results, "user.mq.read_mode", b"stream")
    os.setxattr(results, "user.mq.recv_timeout_ms", b"10000")
    msgsize = int(os.getxattr(results, "user.mq.msgsize"))

    # The producer is a process of its own: were the parent to send all jobs
    # before reading results, workers would block on a full results queue,
    # nobody would take jobs, and the parent would block on a full jobs queue.
    # Daemonic: should the parent fail, its children end with it.
    processes = [multiprocessing.Process(target=work, args=(jobs, results), daemon=True)
                 for _ in range(workers)]
    processes.append(multiprocessing.Process(target=produce, args=(jobs, count, workers), daemon=True))
    for p in processes:
        p.start()

    seen = collections.Counter()
    total = 0
    with open(results, "rb", buffering=0) as queue:
        for _ in range(count):
            n, square = map(int, queue.read(msgsize).split())   # one read, one message
            seen[n] += 1
            total += square
    for p in processes:
        p.join()

    print(f"sent {count} jobs to {workers} workers")
    missing = [n for n in range(1, count + 1) if seen[n] == 0]
    repeated = [n for n, times in seen.items() if times > 1]
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if missing or repeated or failed:
        print(f"FAILED: missing {missing}, repeated {repeated}, process exit codes {failed}")
        sys.exit(1)
    print(f"received {count} results: every job processed exactly once")
    print(f"sum of the squares of 1..{count}: {total}")


if __name__ == "__main__":
    main()
