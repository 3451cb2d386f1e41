"""Runs every program in examples/ against a fresh mount and checks its output.

Each example takes the mount point as its first argument and ends by itself;
every run here has a timeout all the same.
"""
import os
import select
import subprocess
import sys
import time

import pytest

from helpers import wait_until

EXAMPLES = os.path.realpath(os.path.join(os.path.dirname(__file__), "../../examples"))
INCLUDE = os.path.realpath(os.path.join(os.path.dirname(__file__), "../../include"))
TIMEOUT = 20  # seconds; every example here finishes in well under one


def command(name, *args):
    """The command line that runs example `name` (interpreter included)."""
    path = os.path.join(EXAMPLES, name)
    if name.endswith(".py"):
        return [sys.executable, path, *args]
    if name.endswith(".js"):
        return ["node", path, *args]
    if name.endswith(".sh"):
        return ["bash", path, *args]
    return [path, *args]  # a built program


def run(name, *args, timeout=TIMEOUT):
    """Runs an example to its end; fails the test on a timeout or a failure."""
    try:
        result = subprocess.run(command(name, *args), capture_output=True, text=True, timeout=timeout,
                                env=dict(os.environ, MQ=os.environ["MQ_BIN"]))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{name} timed out after {timeout}s; output so far:\n{e.stdout}\n{e.stderr}")
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start(name, *args):
    return subprocess.Popen(command(name, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=TIMEOUT):
    """Waits for a started example to end; returns its output."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=timeout)
        pytest.fail(f"{proc.args} did not end within {timeout}s:\n{out.decode()}\n{err.decode()}")
    assert proc.returncode == 0, f"{proc.args} exited with {proc.returncode}:\n{out.decode()}\n{err.decode()}"
    return out.decode()


def read_line(proc, timeout=TIMEOUT):
    """One line of a started example's output, waiting at most `timeout` s."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            proc.kill()
            pytest.fail(f"{proc.args} printed no line within {timeout}s (so far: {line!r})")
        byte = os.read(fd, 1)  # unbuffered, so communicate() later sees the rest
        if not byte:
            pytest.fail(f"{proc.args} ended its output early (so far: {line!r})")
        line += byte
    return line.decode()


def has_open(pid, path):
    """Whether process `pid` has `path` open. (/proc shows an open queue that
    another process has looked up since as "(deleted)": docs/design.md,
    "One inode per open".)"""
    fds = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fds, fd)).removesuffix(" (deleted)") == path
                   for fd in os.listdir(fds))
    except FileNotFoundError:  # the process or one of its fds went away meanwhile
        return False


def descendants(proc):
    """Process ids of proc's children, grandchildren, ..."""
    found, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = [int(child) for child in f.read().split()]
        except FileNotFoundError:  # it ended meanwhile
            children = []
        found += children
        todo += children
    return found


def reading(proc, path):
    """Whether a process started by proc (a worker's `cat`) has `path` open."""
    return any(has_open(pid, path) for pid in descendants(proc))


def states(*procs):
    """Each process's and its descendants' state and kernel wait channel, for failure messages."""
    lines = []
    for pid in [p.pid for p in procs] + [d for p in procs for d in descendants(p)]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{pid}/cmdline") as f:
                args = f.read().replace("\0", " ").strip()
        except FileNotFoundError:
            continue
        lines.append(f"{pid} {state} {wchan:<24} {args}")
    return "\n".join(lines)


def make_queue(mq, name, *attributes):
    """Creates queue `name` (and its directory) ahead of the example."""
    os.makedirs(os.path.dirname(mq / name), exist_ok=True)
    open(mq / name, "a").close()
    for attribute, value in attributes:
        mq.setattr(name, attribute, value)


def send(mq, name, *messages):
    for message in messages:
        with open(mq / name, "wb", buffering=0) as queue:
            queue.write(message.encode())


def curmsgs(mq, name):
    return int(mq.getattr(name, "curmsgs"))


# worker.sh, producer.sh


def test_workers_take_every_job_once_and_stop_at_their_stop(mq):
    workers = {name: start("worker.sh", mq.path, name) for name in ("w1", "w2", "w3")}
    # Workers first, as the README shows them: each is waiting in its `cat`
    # before the producer starts (test_a_worker_can_join_while_the_producer_waits
    # has the other order).
    wait_until(lambda: all(reading(w, mq / "work/jobs") for w in workers.values()),
               what="every worker to wait for a job")
    assert run("producer.sh", mq.path, "30", "3") == "producer: sent 30 jobs and 3 stops\n"

    jobs = []
    for name, proc in workers.items():
        lines = finish(proc).splitlines()
        done = [line.removeprefix(f"{name}: ") for line in lines[:-1]]
        assert lines[-1] == f"{name}: stop after {len(done)} jobs"
        jobs += done
    assert sorted(jobs) == sorted(f"job {n}" for n in range(1, 31))
    assert curmsgs(mq, "work/jobs") == 0


def test_a_worker_can_join_while_the_producer_waits(mq):
    # 15 jobs and a stop through a queue of 10: the producer fills the queue
    # and waits in its 11th write. A worker started then must get every job.
    producer = start("producer.sh", mq.path, "15", "1")
    wait_until(lambda: os.path.exists(mq / "work/jobs") and curmsgs(mq, "work/jobs") == 10,
               what="the producer to fill the queue")
    worker = start("worker.sh", mq.path, "late")
    try:
        worker_out, _ = worker.communicate(timeout=10)
        producer_out, _ = producer.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        stuck = states(producer, worker)
        # Killing the producer ends its waiting write; only then can the rest end.
        for proc in (producer, worker):
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
        pytest.fail("a worker started while the producer waited on a full queue did not finish:\n" + stuck)
    assert worker_out.decode() == "".join(f"late: job {n}\n" for n in range(1, 16)) + "late: stop after 15 jobs\n"
    assert producer_out.decode() == "producer: sent 15 jobs and 1 stops\n"


def test_an_idle_worker_leaves_when_the_receive_timeout_passes(mq):
    make_queue(mq, "work/jobs", ("recv_timeout_ms", 200))
    send(mq, "work/jobs", "job 1", "job 2")
    result = subprocess.run(command("worker.sh", mq.path, "w"), capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "w: job 1\nw: job 2\nw: no more jobs (receive failed) after 2 jobs\n"
    assert "timed out" in result.stderr


# priority.sh

SEED_PRIORITY_OUTPUT = """\
Messages sent with priorities

Receiving in priority order:
Priority 20: URGENT ALERT!
Priority 10: High priority task
Priority  5: Normal task
Priority  1: Low priority task
Priority  1: Another low task
"""


def test_priority_prints_the_seeds_order(mq):
    assert run("priority.sh", mq.path) == SEED_PRIORITY_OUTPUT
    assert not os.path.exists(mq / "priority/pq")  # unlinked, as the seed's mq_unlink
    assert run("priority.sh", mq.path) == SEED_PRIORITY_OUTPUT  # and again on the same mount


# request_reply.sh


def test_request_reply_answers_each_client_on_its_own_queue(mq):
    assert run("request_reply.sh", mq.path) == (
        "client-1: asking for the sum of 1..100\n"
        "client-1: sum of 1..100 = 5050\n"
        "client-2: asking for the sum of 1..200\n"
        "client-2: sum of 1..200 = 20100\n"
        "client-3: asking for the sum of 1..300\n"
        "client-3: sum of 1..300 = 45150\n"
        "server: answered 3 requests\n")
    assert os.listdir(mq / "rpc/replies") == []  # each client removed its reply queue
    assert curmsgs(mq, "rpc/requests") == 0


def test_request_reply_server_and_client_run_apart(mq):
    server = start("request_reply.sh", mq.path, "server")
    assert run("request_reply.sh", mq.path, "client", "alice", "1", "10") == (
        "alice: asking for the sum of 1..10\nalice: sum of 1..10 = 55\n")
    run("request_reply.sh", mq.path, "stop")
    assert finish(server) == "server: answered 1 requests\n"


# pipeline.sh


def test_pipeline_passes_images_through_three_stages_in_order(mq):
    assert run("pipeline.sh", mq.path) == (
        "done: cat.png resized to 800x600, published\n"
        "done: dog.jpg resized to 800x600, published\n"
        "done: bird.png resized to 800x600, published\n"
        "rejected: notes.txt (not an image)\n")
    for queue in ("input", "validated", "resized", "done", "rejected"):
        assert curmsgs(mq, "images/" + queue) == 0


def test_pipeline_with_more_images_than_a_queue_holds(mq):
    # 30 images through queues of 10 messages: every stage waits for room.
    images = [f"img{n}.png" for n in range(1, 26)] + [f"doc{n}.txt" for n in range(1, 6)]
    assert run("pipeline.sh", mq.path, *images) == "".join(
        [f"done: img{n}.png resized to 800x600, published\n" for n in range(1, 26)] +
        [f"rejected: doc{n}.txt (not an image)\n" for n in range(1, 6)])


# dead_letter.py


def test_dead_letter_retries_then_moves_the_failure_aside(mq):
    assert run("dead_letter.py", mq.path) == (
        "resize photo1.png: done on attempt 1\n"
        "resize corrupt.png: failed on attempt 1 (corrupt input), will retry\n"
        "upload to flaky-server: failed on attempt 1 (server timed out), will retry\n"
        "resize photo2.png: done on attempt 1\n"
        "resize corrupt.png: failed on attempt 2 (corrupt input), will retry\n"
        "upload to flaky-server: failed on attempt 2 (server timed out), will retry\n"
        "resize corrupt.png: failed on attempt 3 (corrupt input), moved to the dead-letter queue\n"
        "upload to flaky-server: done on attempt 3\n"
        f"dlq/dead holds 1 dead letter(s); read them with: cat {mq / 'dlq/dead'}\n")
    assert curmsgs(mq, "dlq/tasks") == 0
    assert mq.sh("timeout 5 cat dlq/dead").stdout == (
        '{"task": "resize corrupt.png", "attempt": 3, "error": "corrupt input"}')


# reliable_worker.py

RELIABLE_WORKER_OUTPUT = """\
worker: resize photo1.png: done on delivery 1
worker: resize corrupt.png: failed on delivery 1 (corrupt input), returned for a retry
worker: upload to flaky-server: failed on delivery 1 (server timed out), returned for a retry
worker: resize photo2.png: done on delivery 1
worker: resize corrupt.png: failed on delivery 2 (corrupt input), returned for a retry
worker: upload to flaky-server: done on delivery 2
worker: resize corrupt.png: failed on delivery 3 (corrupt input), its last: mqfs moves it to reliable/dead
watcher: dead letter: resize corrupt.png (priority 0)
reliable/jobs: 3 done, 1 dead letter(s); 0 queued, 0 in flight
"""


def test_reliable_worker_acks_retries_and_its_dead_letter_is_reported(mq):
    assert run("reliable_worker.py", mq.path) == RELIABLE_WORKER_OUTPUT
    assert [int(mq.getattr("reliable/jobs", name)) for name in ("dead_lettered", "received", "inflight")] == [1, 3, 0]
    assert curmsgs(mq, "reliable/dead") == 0  # the watcher took it
    assert run("reliable_worker.py", mq.path) == RELIABLE_WORKER_OUTPUT  # and again on the same mount
    assert mq.getattr("reliable/jobs", "dead_lettered") == "2"


# worker_pool.py


def test_worker_pool_processes_every_job_exactly_once(mq):
    jobs = 300
    assert run("worker_pool.py", mq.path, str(jobs), "4") == (
        f"sent {jobs} jobs to 4 workers\n"
        f"received {jobs} results: every job processed exactly once\n"
        f"sum of the squares of 1..{jobs}: {jobs * (jobs + 1) * (2 * jobs + 1) // 6}\n")
    assert curmsgs(mq, "pool/jobs") == curmsgs(mq, "pool/results") == 0


# asyncio_consumer.py


def test_asyncio_consumer_with_its_own_producer(mq):
    # 25 messages through a queue of 10: the producer waits for writability too.
    assert run("asyncio_consumer.py", mq.path, "25") == (
        "".join(f"received: event {n}\n" for n in range(1, 26)) + "received 25 messages\n")


def test_asyncio_consumer_wakes_for_another_process(mq):
    make_queue(mq, "async/events")
    consumer = start("asyncio_consumer.py", mq.path, "0")
    # Once it has the queue open it is waiting for readiness, not for data.
    wait_until(lambda: has_open(consumer.pid, mq / "async/events") or consumer.poll() is not None,
               what="the consumer to open its queue")
    mq.sh("for n in 1 2 3; do echo \"hello $n\" > async/events; done; echo stop > async/events")
    assert finish(consumer) == "received: hello 1\nreceived: hello 2\nreceived: hello 3\nreceived 3 messages\n"


# epoll_consumer.c


def build(name, tmp_path_factory):
    """The built C example `name`: from MQFS_EXAMPLES (the examples' build directory) or compiled here."""
    built = os.environ.get("MQFS_EXAMPLES")
    if built:
        path = os.path.join(built, name)
        assert os.access(path, os.X_OK), f"{path} is not built (MQFS_EXAMPLES={built})"
        return path
    path = str(tmp_path_factory.mktemp("examples") / name)
    result = subprocess.run(["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I", INCLUDE,
                             os.path.join(EXAMPLES, name + ".c"), "-o", path],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"compiling {name}.c failed:\n{result.stderr}"
    return path


@pytest.fixture(scope="module")
def epoll_consumer(tmp_path_factory):
    return build("epoll_consumer", tmp_path_factory)


def test_epoll_consumer_waits_on_several_queues(mq, epoll_consumer):
    make_queue(mq, "epoll/orders")
    send(mq, "epoll/orders", "order 0")  # queued before the consumer starts
    consumer = start(epoll_consumer, mq.path, "orders", "alerts", "logs")
    assert read_line(consumer) == "watching orders alerts logs\n"
    assert read_line(consumer) == "orders: order 0\n"

    # Now it waits in epoll_wait: each message below wakes it.
    for n in range(1, 4):
        for queue in ("orders", "alerts", "logs"):
            send(mq, f"epoll/{queue}", f"{queue[:-1]} {n}\n")
    send(mq, "epoll/logs", "stop")
    send(mq, "epoll/alerts", "stop")
    send(mq, "epoll/orders", "order 4", "stop")
    lines = finish(consumer).splitlines()

    # Each queue's messages in order; the queues interleave as they came.
    for queue, expected in (("orders", ["order 1", "order 2", "order 3", "order 4"]),
                            ("alerts", ["alert 1", "alert 2", "alert 3"]),
                            ("logs", ["log 1", "log 2", "log 3"])):
        assert [line.split(": ", 1)[1] for line in lines[:-3] if line.startswith(queue + ":")] == expected
    assert lines[-3:] == ["orders: 5 messages", "alerts: 3 messages", "logs: 3 messages"]


# node_consumer.js


def test_node_consumer_reads_tasks_and_sends_a_receipt(mq):
    make_queue(mq, "node/tasks")
    consumer = start("node_consumer.js", mq.path)
    wait_until(lambda: has_open(consumer.pid, mq / "node/tasks") or consumer.poll() is not None,
               what="the consumer to open its queue")
    send(mq, "node/tasks", "resize a.png\n", "resize b.png\n", "resize c.png\n", "stop\n")
    assert finish(consumer) == (
        "task 1: resize a.png\ntask 2: resize b.png\ntask 3: resize c.png\nstopped after 3 tasks\n")
    assert mq.sh("timeout 5 cat node/receipts").stdout == "node consumer handled 3 tasks\n"


# sysv_types.c, sysv_types.py

# What the seed's "Example 6: System V Message Queue" prints (its printf calls;
# nothing in it depends on pids or timing).
SEED_SYSV_OUTPUT = """\
Messages sent
Type 1: Type 1 message
Type 1: Another type 1
Type 2: Type 2 message
"""


@pytest.fixture(scope="module")
def sysv_types(tmp_path_factory):
    return build("sysv_types", tmp_path_factory)


@pytest.mark.parametrize("language", ["c", "python"])
def test_sysv_types_prints_the_seeds_output(mq, sysv_types, language):
    example = sysv_types if language == "c" else "sysv_types.py"
    assert run(example, mq.path) == SEED_SYSV_OUTPUT
    assert os.listdir(mq / "sysv") == []  # removed, as the seed's msgctl(IPC_RMID)
    assert run(example, mq.path) == SEED_SYSV_OUTPUT  # and again on the same mount


# filtering.py

FILTERING_OUTPUT = """\
error consumer: waiting for errors (type 2) only
sent log: Log message
sent metric: Metric data
error consumer: still waiting, with 2 messages queued and 1 reader waiting
sent error: Error occurred
error consumer: Error occurred (type 2)
sent log: user alice logged in
sent error: disk full
sent metric: cpu 93%
sent log: cache miss
logs-and-errors consumer (types <= 2, lowest first):
  log: Log message
  log: user alice logged in
  log: cache miss
  error: disk full
  nothing more of types <= 2; 2 messages left
audit consumer (type 4): readable: no, with 2 messages queued
metrics consumer (every type but 1):
  metric: Metric data
  metric: cpu 93%
filter/events: 7 sent, 7 received, 0 left
"""


def test_filtering_each_consumer_takes_only_its_types(mq):
    assert run("filtering.py", mq.path) == FILTERING_OUTPUT
    assert curmsgs(mq, "filter/events") == 0
    assert run("filtering.py", mq.path) == FILTERING_OUTPUT.replace(
        "7 sent, 7 received", "14 sent, 14 received")  # again on the same mount; the counters go on


# topic.sh

TOPIC_OUTPUT = """\
topic/news: 3 subscribers (two cats and topic/archive)
alice: rain tomorrow
alice: trains on time
alice: new library opens
bob: rain tomorrow
bob: trains on time
bob: new library opens
topic/news: 4 published, 0 kept
topic/archive holds 4 messages:
  rain tomorrow
  trains on time
  new library opens
  library closed on Sundays
topic/news: 0 subscribers, 1 dropped
"""


def test_topic_reaches_both_cats_and_the_lasting_subscriber(mq):
    # Its last line's "0 subscribers" also says that both cats have closed the topic.
    assert run("topic.sh", mq.path) == TOPIC_OUTPUT
    assert mq.getattr("topic/news", "kind") == "topic"
    assert mq.getattr("topic/archive", "subscribe") == ""
    assert curmsgs(mq, "topic/archive") == 0
    assert run("topic.sh", mq.path) == TOPIC_OUTPUT  # again on the same mount: new queues


# mq_worker.sh

MQ_WORKER_OUTPUT = """\
sent 4 jobs; the queue holds, in the order workers take them:
  mqwork/jobs priority=9 type=1 delivery=0
  URGENT thumbnail
  mqwork/jobs priority=1 type=1 delivery=0
  resize a.png
  mqwork/jobs priority=1 type=1 delivery=0
  flaky upload
  mqwork/jobs priority=1 type=1 delivery=0
  broken file
done: URGENT thumbnail (priority 9, delivery 1)
done: flaky upload (priority 1, delivery 2)
done: resize a.png (priority 1, delivery 1)
dead letter: broken file
QUEUE           MSGS  INFLIGHT  SENT  RECEIVED
mqwork/failed      0         0     1         1
mqwork/jobs        0         0     4         3
"""


def test_mq_work_retries_the_flaky_job_and_dead_letters_the_broken_one(mq):
    assert run("mq_worker.sh", mq.path) == MQ_WORKER_OUTPUT
    assert mq.getattr("mqwork/jobs", "dead_lettered") == "1"
    assert run("mq_worker.sh", mq.path) == MQ_WORKER_OUTPUT  # again on the same mount: new queues
