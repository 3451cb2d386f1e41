#!/usr/bin/env python3
"""A dead-letter queue with retries (the seed's "Dead Letter Queue").

A consumer takes tasks from MOUNT/dlq/tasks. A task that fails goes back to
the end of the queue with its attempt count raised, so other work runs before
its retry; after MAX_ATTEMPTS failures it moves to MOUNT/dlq/dead, where it
stays for a person to look at (`cat MOUNT/dlq/dead`). The consumer stops when
the task queue is empty.

usage: dead_letter.py [MOUNT] [MAX_ATTEMPTS]
"""
import json
import os
import sys

TASKS = ["resize photo1.png", "resize corrupt.png", "upload to flaky-server", "resize photo2.png"]


def send(queue, message):
    """Sends one message: one write(2) is one message."""
    fd = os.open(queue, os.O_WRONLY)
    try:
        os.write(fd, json.dumps(message).encode())
    finally:
        os.close(fd)


def receive_nowait(queue, msgsize):
    """Receives one message, or None when the queue is empty."""
    # O_NONBLOCK: an empty queue fails the read with EAGAIN instead of waiting.
    fd = os.open(queue, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return json.loads(os.read(fd, msgsize))
    except BlockingIOError:
        return None
    finally:
        os.close(fd)


def process(task, attempt):
    """Stands in for real work: corrupt input always fails, a flaky server
    fails the first two attempts."""
    if "corrupt" in task:
        raise ValueError("corrupt input")
    if "flaky" in task and attempt < 3:
        raise TimeoutError("server timed out")


def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    max_attempts = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    directory = os.path.join(mount, "dlq")
    tasks, dead = os.path.join(directory, "tasks"), os.path.join(directory, "dead")
    os.makedirs(directory, exist_ok=True)
    for queue in (tasks, dead):
        open(queue, "a").close()      # creates the queue
        os.truncate(queue, 0)          # purges what an earlier run left
    # Room for every task, so that re-queueing a failure never waits.
    os.setxattr(tasks, "user.mq.maxmsg", str(len(TASKS)).encode())
    msgsize = int(os.getxattr(tasks, "user.mq.msgsize"))

    for task in TASKS:
        send(tasks, {"task": task, "attempt": 1})

    while (message := receive_nowait(tasks, msgsize)) is not None:
        task, attempt = message["task"], message["attempt"]
        try:
            process(task, attempt)
        except Exception as error:
            message["error"] = str(error)
            if attempt < max_attempts:
                print(f"{task}: failed on attempt {attempt} ({error}), will retry")
                message["attempt"] = attempt + 1
                send(tasks, message)
            else:
                print(f"{task}: failed on attempt {attempt} ({error}), moved to the dead-letter queue")
                send(dead, message)
            continue
        print(f"{task}: done on attempt {attempt}")

    count = int(os.getxattr(dead, "user.mq.curmsgs"))
    print(f"dlq/dead holds {count} dead letter(s); read them with: cat {dead}")


if __name__ == "__main__":
    main()
