"""SPEC section 4: event loops use queues. A selectors-based consumer and an
asyncio consumer (loop.add_reader on O_RDONLY|O_NONBLOCK descriptors) get
messages from several queues as they arrive; an asyncio producer waits for
room with loop.add_writer.

The consumers run as child processes and print one line per message; the
test writes each message only when the consumer sleeps in epoll_wait, and
waits for it to come out before writing the next.
"""
import random
import sys

from helpers import EPOLL_SYSCALLS, LineReader, counters, fill, wait_sleeping_in

COMMON = r"""
import fcntl, os, struct, sys
MQFS_IOC_SET_READ_MODE = (1 << 30) | (4 << 16) | (ord('M') << 8) | 2

def open_queue(path, stream):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if stream:
        fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", 1))
    return fd

def say(text):
    print(text, flush=True)
"""

SELECTORS_CONSUMER = COMMON + r"""
import selectors
# argv: expected-count then NAME=PATH:MODE... (MODE stream or message)
expected = int(sys.argv[1])
specs = {}
for arg in sys.argv[2:]:
    name, rest = arg.split("=", 1)
    path, mode = rest.rsplit(":", 1)
    specs[name] = (path, mode == "stream")
sel = selectors.DefaultSelector()
for name, (path, stream) in specs.items():
    sel.register(open_queue(path, stream), selectors.EVENT_READ, name)
say("ready " + type(sel).__name__)
got = 0
while got < expected:
    events = sel.select(timeout=30)
    if not events:
        say("stalled")
        sys.exit(1)
    for key, _ in events:
        name = key.data
        path, stream = specs[name]
        while True:
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                # Message mode: this open file is done; open the queue again.
                sel.unregister(key.fd)
                os.close(key.fd)
                sel.register(open_queue(path, stream), selectors.EVENT_READ, name)
                say("reopened " + name)
                break
            say(name + " " + data.decode().strip())
            got += 1
            if not stream:
                continue
say("done")
"""

ASYNCIO_CONSUMER = COMMON + r"""
import asyncio
expected = int(sys.argv[1])
paths = dict(arg.split("=", 1) for arg in sys.argv[2:])

async def main():
    loop = asyncio.get_running_loop()
    inbox = asyncio.Queue()
    fds = []
    def readable(name, fd):
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            inbox.put_nowait((name, data.decode().strip()))
    for name, path in paths.items():
        fd = open_queue(path, True)
        fds.append(fd)
        loop.add_reader(fd, readable, name, fd)
    say("ready")
    for _ in range(expected):
        name, text = await asyncio.wait_for(inbox.get(), timeout=30)
        say(name + " " + text)
    for fd in fds:
        loop.remove_reader(fd)
        os.close(fd)
    say("done")

asyncio.run(main())
"""

ASYNCIO_PIPELINE = COMMON + r"""
import asyncio
path, count = sys.argv[1], int(sys.argv[2])

async def produce(loop, fd):
    room = asyncio.Event()
    waits = 0
    for i in range(count):
        while True:
            try:
                os.write(fd, f"job-{i}".encode())
                break
            except BlockingIOError:
                waits += 1
                room.clear()
                loop.add_writer(fd, room.set)
                await asyncio.wait_for(room.wait(), timeout=30)
                loop.remove_writer(fd)
    return waits

async def consume(loop, fd):
    got = []
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    while len(got) < count:
        await asyncio.wait_for(ready.wait(), timeout=30)
        ready.clear()
        while len(got) < count:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            got.append(data.decode())
            await asyncio.sleep(0)  # let the producer run between reads
    loop.remove_reader(fd)
    return got

async def main():
    loop = asyncio.get_running_loop()
    wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    rfd = open_queue(path, True)
    waits, got = await asyncio.gather(produce(loop, wfd), consume(loop, rfd))
    say(f"waits {waits}")
    say("ok" if got == [f"job-{i}" for i in range(count)] else f"bad {got[:20]}")

asyncio.run(main())
"""


def _feed_one_at_a_time(mq, consumer, out, plan):
    """Writes each (queue, text) of `plan` while the consumer sleeps in
    epoll_wait, and waits for it to print that message before the next."""
    for name, text in plan:
        wait_sleeping_in(consumer, EPOLL_SYSCALLS, what="the consumer to wait in epoll_wait")
        fill(mq / name, [text])
        line = out.line(what=f"{text} from {name}")
        while line.startswith("reopened "):
            line = out.line(what=f"{text} from {name}")
        assert line == f"{name} {text}"


def test_selectors_consumer_gets_messages_from_several_queues_as_they_arrive(mq, procs):
    mq.sh("touch a b c")
    for name in "abc":
        mq.setattr(name, "maxmsg", 100)  # room for the whole burst
    specs = [f"a={mq / 'a'}:stream", f"b={mq / 'b'}:stream", f"c={mq / 'c'}:message"]
    rng = random.Random(7)
    plan = [(rng.choice("abc"), f"msg{i}") for i in range(30)]
    burst = [(rng.choice("abc"), f"burst{i}") for i in range(30)]
    consumer = procs.start([sys.executable, "-c", SELECTORS_CONSUMER, str(len(plan) + len(burst)), *specs])
    out = LineReader(consumer)
    assert out.line() == "ready EpollSelector"
    _feed_one_at_a_time(mq, consumer, out, plan)
    # A burst: all written at once, then all received.
    for name in "abc":
        fill(mq / name, [text for q, text in burst if q == name])
    got = []
    while len(got) < len(burst):
        line = out.line(what="the burst")
        if not line.startswith("reopened "):
            got.append(tuple(line.split(" ", 1)))
    assert sorted(got) == sorted(burst)
    for name in "abc":  # per queue, in the order written
        assert [t for q, t in got if q == name] == [t for q, t in burst if q == name]
    line = out.line()
    while line.startswith("reopened "):
        line = out.line()
    assert line == "done"
    assert consumer.wait(timeout=10) == 0
    for name in "abc":
        assert counters(mq / name)["curmsgs"] == 0


def test_asyncio_consumer_gets_messages_from_several_queues_as_they_arrive(mq, procs):
    names = [f"q{i}" for i in range(5)]
    mq.sh("touch " + " ".join(names))
    for name in names:
        mq.setattr(name, "maxmsg", 100)  # room for the whole burst
    rng = random.Random(11)
    plan = [(rng.choice(names), f"m{i}") for i in range(40)]
    consumer = procs.start([sys.executable, "-c", ASYNCIO_CONSUMER, str(len(plan) + 50),
                            *(f"{n}={mq / n}" for n in names)])
    out = LineReader(consumer)
    assert out.line() == "ready"
    _feed_one_at_a_time(mq, consumer, out, plan)
    burst = {n: [f"{n}-b{i}" for i in range(10)] for n in names}
    for n in names:
        fill(mq / n, burst[n])
    got = [tuple(out.line(what="the burst").split(" ", 1)) for _ in range(50)]
    for n in names:
        assert [t for q, t in got if q == n] == burst[n]
    assert out.line() == "done"
    assert consumer.wait(timeout=10) == 0


def test_asyncio_producer_waits_for_room_with_add_writer(mq, procs):
    """One event loop produces into a queue of 3 and consumes from it: the
    producer must wait for room (EAGAIN, then add_writer) many times, and
    every message arrives once, in order."""
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 3)
    count = 500
    pipeline = procs.start([sys.executable, "-c", ASYNCIO_PIPELINE, mq / "q", str(count)])
    out = LineReader(pipeline)
    waits = int(out.line(timeout=60).split()[1])
    assert out.line() == "ok"
    assert pipeline.wait(timeout=10) == 0
    assert waits > 0, "the producer never found the queue full"
    assert counters(mq / "q") == {"curmsgs": 0, "sent": count, "received": count}
