"""SPEC section 11, reliable consumption, rule by rule: explicit
acknowledgement and leases (ACK, NACK, close, the death of the holder, the
lease running out), where a returned message goes, the retry delay, the
limits a leased message still counts against, dead letters, what
MQFS_IOC_GET_DELIVERY tells, peeking, the counters, what a store keeps across
a restart, and a kill storm with exact accounting at the end.

Each rule that an ioctl drives is checked twice through the `client`
fixture: from this process with fcntl.ioctl ("python"), and from C through
tests/programs/lease_check, which uses mqfs.h itself, driven one step at a
time over a pipe ("c"). Both present the same calls (Client below).

This process's descriptors are non-blocking, so no call here can wait;
whatever must block runs in a child process (lease_check, qio) and every wait
has a timeout.
"""
import collections
import errno
import fcntl
import os
import random
import select
import signal
import struct
import subprocess
import time

import pytest

from helpers import (MAX_MSGSIZE, MESSAGE_OVERHEAD, PYTHON, SYS_READ, SYS_WRITE, LineReader, Readiness, attr, drain,
                     errno_of, finish, iattr, kill_daemon, parse_qio_read, parse_qio_write, program, put, set_attr,
                     statfs, take, wait_blocked, wait_exit, wait_until)


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("M") << 8) | nr


# The requests of include/mqfs.h (test_the_python_request_numbers_match_the_header checks them).
_W, _R = 1, 2
SET_PRIORITY = _ioc(_W, 1, 4)
SET_READ_MODE = _ioc(_W, 2, 4)
ATTR_FORMAT = "16q"
GET_ATTR = _ioc(_R, 3, struct.calcsize(ATTR_FORMAT))
SET_ACK = _ioc(_W, 4, 4)
ACK = _ioc(_W, 5, 8)
NACK = _ioc(_W, 6, 8)
DELIVERY_FORMAT = "QqiIq"  # id, type, priority, deliveries, enqueued_ns
GET_DELIVERY = _ioc(_R, 7, struct.calcsize(DELIVERY_FORMAT))
AUTO, EXPLICIT = 0, 1
MESSAGE, STREAM, PEEK = 0, 1, 2

Delivery = collections.namedtuple("Delivery", "id type priority deliveries enqueued_ns")

# The settings of section 11 and their defaults; the read-only counters.
SETTINGS = {"lease_ms": "30000", "retry_delay_ms": "0", "max_deliveries": "0", "dead_letter": ""}
COUNTERS = ("inflight", "dead_lettered", "waiting_readers", "waiting_writers", "oldest_ms")


# -- the two clients -------------------------------------------------------------------------------

def reaped(pid):
    """(wait status,) of child `pid` once it has ended, else None."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return (status,) if done else None


class PyClient:
    """The calls from this process (os, fcntl.ioctl); descriptors are non-blocking.
    A failed call raises OSError with the errno (BlockingIOError for EAGAIN)."""

    kind = "python"
    FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}

    def __init__(self):
        self.fds = set()

    def open(self, path, flags="r"):
        fd = os.open(path, self.FLAGS[flags] | os.O_NONBLOCK)
        self.fds.add(fd)
        return fd

    def dup(self, fd):
        new = os.dup(fd)
        self.fds.add(new)
        return new

    def close(self, fd):
        self.fds.discard(fd)
        os.close(fd)

    def set_ack(self, fd, mode):
        fcntl.ioctl(fd, SET_ACK, struct.pack("i", mode))

    def set_read_mode(self, fd, mode):
        fcntl.ioctl(fd, SET_READ_MODE, struct.pack("i", mode))

    def set_priority(self, fd, priority):
        fcntl.ioctl(fd, SET_PRIORITY, struct.pack("i", priority))

    def read(self, fd, size=65536):
        return os.read(fd, size)

    def write(self, fd, data):
        return os.write(fd, data)

    def delivery(self, fd):
        raw = fcntl.ioctl(fd, GET_DELIVERY, bytes(struct.calcsize(DELIVERY_FORMAT)))
        return Delivery(*struct.unpack(DELIVERY_FORMAT, raw))

    def ack(self, fd, message_id=0):
        fcntl.ioctl(fd, ACK, struct.pack("Q", message_id))

    def nack(self, fd, message_id=0):
        fcntl.ioctl(fd, NACK, struct.pack("Q", message_id))

    def curmsgs(self, fd):
        """curmsgs of MQFS_IOC_GET_ATTR."""
        return struct.unpack(ATTR_FORMAT, fcntl.ioctl(fd, GET_ATTR, bytes(struct.calcsize(ATTR_FORMAT))))[3]

    def readable(self, fd):
        """Whether poll(2) reports the descriptor readable at once."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return any(events & select.POLLIN for _, events in poller.poll(0))

    def fork_read(self, fd):
        """A forked child reads once from the descriptor (the same open file) and
        exits; returns (bytes, id) of what it read."""
        r, w = os.pipe()
        status = None
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                data = os.read(fd, 65536)
                os.write(w, b"%d %s" % (self.delivery(fd).id, data.hex().encode()))
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        try:
            (status,) = wait_until(lambda: reaped(pid), what="the forked reader to exit")
            reply = os.read(r, 1 << 20).decode()
        finally:
            os.close(r)
            if status is None:  # it hung: it must not outlive the test
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        assert status == 0 and reply, f"the forked reader failed ({status})"
        message_id, data = reply.split(" ")
        return bytes.fromhex(data), int(message_id)

    def close_all(self):
        for fd in list(self.fds):
            self.close(fd)


class CClient:
    """The same calls from C: one tests/programs/lease_check process, driven
    step by step over a pipe; a descriptor is a slot of it, non-blocking."""

    kind = "c"

    def __init__(self, procs):
        self.proc = procs.start([program("lease_check"), "/"], stdin=subprocess.PIPE)
        self.out = LineReader(self.proc)
        self.free = list(range(16))

    def step(self, step, timeout=10):
        """Runs one step; returns the words after the step's name in its
        answer, or raises OSError for "NAME ERR ENAME"."""
        self.proc.stdin.write(step.encode() + b"\n")
        self.proc.stdin.flush()
        line = self.out.line(timeout=timeout, what=f"lease_check's answer to {step}")
        words = line.split(" ")[1:]
        if words[:1] == ["ERR"]:
            raise OSError(getattr(errno, words[1], 0), f"lease_check {step}: {line}")
        return words

    def open(self, path, flags="r"):
        slot = self.free.pop(0)
        try:
            self.step(f"{slot}@open:{flags}n:{path}")
        except OSError:
            self.free.insert(0, slot)
            raise
        return slot

    def dup(self, slot):
        new = self.free.pop(0)
        self.step(f"{slot}@dup:{new}")
        return new

    def close(self, slot):
        self.step(f"{slot}@close")
        self.free.append(slot)

    def set_ack(self, slot, mode):
        self.step(f"{slot}@ack-mode:{mode}")

    def set_read_mode(self, slot, mode):
        self.step(f"{slot}@read-mode:{mode}")

    def set_priority(self, slot, priority):
        self.step(f"{slot}@priority:{priority}")

    @staticmethod
    def _data(words):
        return b"" if words == ["EOF"] else bytes.fromhex(words[1])

    def read(self, slot, size=65536):
        return self._data(self.step(f"{slot}@read:{size}"))

    def write(self, slot, data):
        return int(self.step(f"{slot}@write:{data.hex()}")[1])

    def delivery(self, slot):
        return Delivery(*map(int, self.step(f"{slot}@delivery")))

    def ack(self, slot, message_id=0):
        self.step(f"{slot}@ack:{message_id}")

    def nack(self, slot, message_id=0):
        self.step(f"{slot}@nack:{message_id}")

    def curmsgs(self, slot):
        return int(self.step(f"{slot}@attr")[0].split("=")[1])

    def readable(self, slot):
        return self.step(f"{slot}@poll") == ["IN"]

    def fork_read(self, slot):
        words = self.step(f"{slot}@fork-read")
        return bytes.fromhex(words[1]), int(words[2])

    def kill(self):
        """SIGKILL: the process dies holding whatever it holds."""
        self.proc.kill()
        wait_exit(self.proc, 10, "lease_check to die")

    def close_all(self):
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture(params=["python", "c"])
def client(request, mount_mqfs, procs):
    """A PyClient or a CClient; after the test, its descriptors are closed
    (before the mount goes: this fixture depends on mount_mqfs)."""
    made = PyClient() if request.param == "python" else CClient(procs)
    yield made
    made.close_all()


# -- helpers ---------------------------------------------------------------------------------------

def queue(m, name="q", **settings):
    """Creates queue `name` (and its directories) in mount `m` with user.mq.* settings; returns its path."""
    path = m / name
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "a").close()
    for key, value in settings.items():
        set_attr(path, key, value)
    return path


def send(path, *messages, priority=0):
    """Sends each message (str or bytes) with one write(2), at `priority` (MQFS_IOC_SET_PRIORITY)."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, SET_PRIORITY, struct.pack("i", priority))
        for message in messages:
            data = message.encode() if isinstance(message, str) else message
            assert os.write(fd, data) == len(data)
    finally:
        os.close(fd)


def counts(path, *names):
    """The integer attributes user.mq.NAME of a queue, as a tuple."""
    return tuple(iattr(path, name) for name in names)


def reader(c, path, ack=EXPLICIT, mode=STREAM):
    """An open descriptor of `c` on `path` with the acknowledgement and read modes set."""
    h = c.open(path)
    c.set_ack(h, ack)
    c.set_read_mode(h, mode)
    return h


def lease(c, h):
    """Reads one message on descriptor h; returns (bytes, its Delivery)."""
    data = c.read(h)
    return data, c.delivery(h)


def leased(c, path, *messages, priority=0):
    """Sends `messages` to `path` (at `priority`) and leases the first on a new
    explicit descriptor of `c`: (the descriptor, the first's Delivery)."""
    send(path, *messages, priority=priority)
    h = reader(c, path)
    return h, lease(c, h)[1]


def peek_ids(path):
    """The ids of the visible messages of `path` in queue order, by peeking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, SET_READ_MODE, struct.pack("i", PEEK))
        ids = []
        while os.read(fd, 65536):
            ids.append(PyClient().delivery(fd).id)
        return ids
    finally:
        os.close(fd)


def error_of(call, *args):
    """errno_of for calls that must fail: the errno, or a failure of the test."""
    code = errno_of(call, *args)
    assert code is not None, f"{getattr(call, '__name__', call)}{args} succeeded"
    return code


def bytes_used(m):
    """The bytes `df` shows in use on mount `m` (messages and their bookkeeping)."""
    st = statfs(m.path)
    return (st["blocks"] - st["bfree"]) * st["bsize"]


def warnings_in(m):
    """How many lines of the daemon's log are warnings."""
    return sum("warn" in line.lower() for line in m.read_log().splitlines())


# -- the header ------------------------------------------------------------------------------------

def test_the_python_request_numbers_match_the_header():
    result = subprocess.run([program("lease_check"), "--numbers"], capture_output=True, text=True, timeout=10)
    numbers = {k: int(v) for k, v in (line.rsplit(" ", 1) for line in result.stdout.splitlines())}
    assert numbers["MQFS_IOC_SET_ACK"] == SET_ACK
    assert numbers["MQFS_IOC_ACK"] == ACK
    assert numbers["MQFS_IOC_NACK"] == NACK
    assert numbers["MQFS_IOC_GET_DELIVERY"] == GET_DELIVERY
    assert (numbers["MQFS_READ_PEEK"], numbers["MQFS_ACK_AUTO"], numbers["MQFS_ACK_EXPLICIT"]) == (PEEK, AUTO, EXPLICIT)
    assert numbers["sizeof(struct mqfs_delivery)"] == struct.calcsize(DELIVERY_FORMAT)
    offsets = [numbers[f"offsetof({name})"] for name in Delivery._fields]
    assert offsets == [0, 8, 16, 20, 24]


# -- acknowledgement mode --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [2, -1, 3, 2**31 - 1, -2**31])
def test_set_ack_takes_only_auto_and_explicit_other_values_are_einval(mq, client, value):
    q = queue(mq)
    send(q, "a")
    h = reader(client, q)
    assert error_of(client.set_ack, h, value) == errno.EINVAL
    lease(client, h)  # still explicit
    assert counts(q, "curmsgs", "inflight") == (0, 1)


def test_bad_request_sizes_are_enotty(mq):
    q = queue(mq)
    fd = os.open(q, os.O_RDONLY | os.O_NONBLOCK)
    try:
        for request in (_ioc(_W, 4, 8), _ioc(_W, 5, 4), _ioc(_R, 6, 8), _ioc(_W, 7, 32), _ioc(_R, 7, 16)):
            assert errno_of(fcntl.ioctl, fd, request, bytes(32)) == errno.ENOTTY, hex(request)
    finally:
        os.close(fd)


@pytest.mark.parametrize("value", [3, -2, 2**31 - 1])
def test_set_read_mode_past_peek_is_einval(mq, client, value):
    h = client.open(queue(mq))
    assert error_of(client.set_read_mode, h, value) == errno.EINVAL


def test_auto_mode_is_unchanged_a_read_takes_the_message_for_good(mq, client):
    q = queue(mq)
    send(q, "a", "b")
    h = client.open(q)
    assert client.read(h) == b"a"
    assert counts(q, "curmsgs", "inflight", "received") == (1, 0, 1)
    assert error_of(client.ack, h, client.delivery(h).id) == errno.ENOENT
    client.close(h)
    assert drain(q) == ["b"]


def test_an_explicit_read_leases_the_message_invisible_to_other_readers(mq, client):
    q = queue(mq)
    send(q, "a", "b")
    h = reader(client, q, mode=MESSAGE)  # any read mode
    assert client.read(h) == b"a"
    assert counts(q, "curmsgs", "inflight", "received") == (1, 1, 0)
    assert take(q) == b"b"  # another reader gets the next one
    assert errno_of(take, q) == errno.EAGAIN
    assert counts(q, "curmsgs", "inflight") == (0, 1)


def test_auto_returns_a_descriptor_to_the_default(mq, client):
    q = queue(mq)
    send(q, "a")
    h = reader(client, q)
    client.set_ack(h, AUTO)
    assert client.read(h) == b"a"
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


def test_the_mode_is_per_descriptor(mq, client):
    q = queue(mq)
    send(q, "a", "b")
    explicit, auto = reader(client, q), reader(client, q, ack=AUTO)
    assert client.read(explicit) == b"a"
    assert client.read(auto) == b"b"
    assert counts(q, "curmsgs", "inflight", "received") == (0, 1, 1)


def test_a_dup_shares_the_mode_and_the_leases_of_its_open_file(mq, client):
    q = queue(mq)
    send(q, "a")
    h = reader(client, q)
    copy = client.dup(h)
    data, d = lease(client, copy)
    assert data == b"a" and counts(q, "inflight") == (1,)
    client.close(copy)  # not the last close: still held
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    client.ack(h, d.id)
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


def test_a_forked_child_shares_the_open_file_its_lease_outlives_the_child(mq, client):
    q = queue(mq)
    send(q, "a")
    h = reader(client, q)
    data, message_id = client.fork_read(h)
    assert data == b"a"
    assert counts(q, "curmsgs", "inflight") == (0, 1)  # the parent still has the open file
    client.ack(h, message_id)
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


@pytest.mark.parametrize("framing", ["u32", "line"])
def test_a_batched_read_leases_each_message_it_carries(mq, client, framing):
    q = queue(mq, framing=framing)
    frames = [b"one", b"two", b"three"]
    if framing == "u32":
        put(q, b"".join(struct.pack("<I", len(f)) + f for f in frames))
    else:
        put(q, b"".join(f + b"\n" for f in frames))
    ids = peek_ids(q)
    h = reader(client, q)
    data = client.read(h)
    assert data.count(b"one") == data.count(b"two") == data.count(b"three") == 1  # one read, three messages
    assert counts(q, "curmsgs", "inflight") == (0, 3)
    assert client.delivery(h).id == ids[2]  # the last of the batch
    client.ack(h, ids[1])
    assert counts(q, "inflight", "received") == (2, 1)
    client.nack(h, ids[0])
    client.ack(h, 0)
    assert counts(q, "curmsgs", "inflight", "received") == (1, 0, 2)


# -- ACK and NACK ----------------------------------------------------------------------------------

def test_ack_takes_the_message_for_good(mq, client):
    q = queue(mq)
    h, d = leased(client, q, "a")
    client.ack(h, d.id)
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)
    client.close(h)
    assert counts(q, "curmsgs", "inflight") == (0, 0)


def test_ack_0_takes_every_message_the_descriptor_holds(mq, client):
    q = queue(mq)
    send(q, "a", "b", "c", "d")
    h = reader(client, q)
    for _ in range(3):
        client.read(h)
    client.ack(h, 0)
    assert counts(q, "curmsgs", "inflight", "received") == (1, 0, 3)
    client.close(h)
    assert drain(q) == ["d"]


def test_ack_0_holding_nothing_is_0(mq, client):
    h = reader(client, queue(mq))
    client.ack(h, 0)
    client.nack(h, 0)


def test_nack_returns_the_message(mq, client):
    q = queue(mq)
    h, d = leased(client, q, "a")
    client.nack(h, d.id)
    assert counts(q, "curmsgs", "inflight", "received") == (1, 0, 0)
    data, again = lease(client, h)
    assert (data, again.id, again.deliveries) == (b"a", d.id, 2)


@pytest.mark.parametrize("first,then", [("ack", "ack"), ("ack", "nack"), ("nack", "ack"), ("nack", "nack")])
def test_an_id_already_acked_or_nacked_is_enoent(mq, client, first, then):
    q = queue(mq)
    h, d = leased(client, q, "a")
    getattr(client, first)(h, d.id)
    assert error_of(getattr(client, then), h, d.id) == errno.ENOENT


def test_an_id_never_leased_to_the_descriptor_is_enoent(mq, client):
    q = queue(mq)
    h, d = leased(client, q, "a", "b")
    queued = peek_ids(q)[0]
    for unknown in (queued, d.id + 1000, 2**64 - 1):
        assert error_of(client.ack, h, unknown) == errno.ENOENT
        assert error_of(client.nack, h, unknown) == errno.ENOENT
    assert counts(q, "curmsgs", "inflight") == (1, 1)


def test_an_id_held_by_another_descriptor_is_enoent_and_stays_held(mq, client):
    q = queue(mq)
    send(q, "a")
    holder, other = reader(client, q), reader(client, q)
    _, d = lease(client, holder)
    assert error_of(client.ack, other, d.id) == errno.ENOENT
    assert error_of(client.nack, other, d.id) == errno.ENOENT
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    client.ack(holder, d.id)
    assert counts(q, "inflight", "received") == (0, 1)


# -- close and the death of the holder -------------------------------------------------------------

@pytest.mark.parametrize("how", ["nack 0", "close"])
def test_nack_0_and_close_return_every_message_the_descriptor_holds(mq, client, how):
    q = queue(mq)
    send(q, "a", "b", "c")
    h = reader(client, q)
    client.read(h)
    client.read(h)
    if how == "close":
        client.close(h)
    else:
        client.nack(h, 0)
    assert counts(q, "curmsgs", "inflight", "received") == (3, 0, 0)
    assert drain(q) == ["a", "b", "c"]


def test_only_the_last_close_of_a_dup_returns_the_messages(mq, client):
    q = queue(mq)
    send(q, "a")
    h = reader(client, q)
    copy = client.dup(h)
    client.read(h)
    client.close(h)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    client.close(copy)
    assert counts(q, "curmsgs", "inflight") == (1, 0)


_HOLDER = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fcntl.ioctl(fd, %d, struct.pack("i", 1))
fcntl.ioctl(fd, %d, struct.pack("i", 1))
for _ in range(int(sys.argv[2])):
    print(os.read(fd, 65536).decode(), flush=True)
print("holding", flush=True)
sys.stdin.read()
""" % (SET_ACK, SET_READ_MODE)


def start_holder(procs, kind, path, count):
    """A process that leases `count` messages of `path` and holds them until it is killed."""
    if kind == "python":
        proc = procs.start([PYTHON, "-c", _HOLDER, path, str(count)], stdin=subprocess.PIPE)
    else:
        proc = procs.start([program("lease_check"), path, "open:rn", "ack-mode:1", "read-mode:1"] +
                           ["read"] * count + ["delivery", "sleep:60000"])
    out = LineReader(proc)
    lines = [out.line(what="the holder to lease") for _ in range(count + (1 if kind == "python" else 4))]
    assert "ERR" not in " ".join(lines), lines
    return proc


@pytest.mark.parametrize("kind", ["python", "c"])
def test_the_death_of_the_holder_returns_its_messages(mq, procs, kind):
    q = queue(mq)
    send(q, "a", "b", "c")
    holder = start_holder(procs, kind, q, 2)
    assert counts(q, "curmsgs", "inflight") == (1, 2)
    holder.kill()
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (3, 0), what="the holder's messages to come back")
    h = os.open(q, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(h, 100) == b"a"
        assert PyClient().delivery(h).deliveries == 2
    finally:
        os.close(h)
    assert drain(q) == ["b", "c"]


# -- the lease running out -------------------------------------------------------------------------

def test_a_lease_runs_out_after_lease_ms_and_a_late_ack_is_etimedout(mq, client):
    q = queue(mq, lease_ms=200)
    send(q, "a")
    h = reader(client, q)
    start = time.monotonic()
    _, d = lease(client, h)
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the lease to run out")
    assert time.monotonic() - start >= 0.19
    assert error_of(client.ack, h, d.id) == errno.ETIMEDOUT
    assert counts(q, "curmsgs", "received") == (1, 0)
    data, again = lease(client, h)
    assert (data, again.deliveries) == (b"a", 2)


def test_a_late_nack_is_etimedout(mq, client):
    q = queue(mq, lease_ms=200)
    h, d = leased(client, q, "a")
    wait_until(lambda: counts(q, "inflight") == (0,), what="the lease to run out")
    assert error_of(client.nack, h, d.id) == errno.ETIMEDOUT


def test_ack_0_holding_none_after_a_lease_ran_out_is_etimedout(mq, client):
    q = queue(mq, lease_ms=200)
    send(q, "a")
    h = reader(client, q)
    lease(client, h)
    wait_until(lambda: counts(q, "inflight") == (0,), what="the lease to run out")
    assert error_of(client.ack, h, 0) == errno.ETIMEDOUT


def test_a_message_leased_again_after_its_lease_ran_out_can_be_acked(mq, client):
    q = queue(mq, lease_ms=200)
    h, first = leased(client, q, "a")
    wait_until(lambda: counts(q, "curmsgs") == (1,), what="the lease to run out")
    data, again = lease(client, h)
    assert (data, again.id, again.deliveries) == (b"a", first.id, 2)
    client.ack(h, again.id)  # held again: the ack counts, not the lease that ran out
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


def test_the_descriptor_remembers_the_last_1024_ids_that_ran_out(mount_mqfs, client):
    m = mount_mqfs("maxmsg=2000")
    q = queue(m, lease_ms=300, framing="line")
    count = 1030
    put(q, b"".join(b"%d\n" % i for i in range(count)))
    first = peek_ids(q)[0]
    h = reader(client, q)
    while errno_of(client.read, h) is None:
        pass  # batched reads until EAGAIN: each message leased
    last = client.delivery(h).id
    assert counts(q, "curmsgs", "inflight") == (0, count)
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (count, 0), what="every lease to run out")
    assert error_of(client.ack, h, last) == errno.ETIMEDOUT
    assert error_of(client.ack, h, first) == errno.ENOENT  # the 1025th from the end: forgotten


# -- where a returned message goes -----------------------------------------------------------------

def test_a_returned_message_goes_back_ahead_of_younger_messages_of_its_priority(mq, client):
    q = queue(mq)
    h, a = leased(client, q, "a", "b", "c")
    _, b = lease(client, h)
    client.nack(h, b.id)
    client.nack(h, a.id)
    client.close(h)
    assert drain(q) == ["a", "b", "c"]


def test_a_returned_message_stays_behind_higher_priority_ones(mq, client):
    q = queue(mq)
    h, a = leased(client, q, "a", "b", priority=3)
    send(q, "high", priority=5)
    send(q, "low", priority=1)
    client.nack(h, a.id)
    client.close(h)
    assert drain(q) == ["high", "a", "b", "low"]


@pytest.mark.parametrize("how", ["close", "expiry"])
def test_a_message_returned_by_close_or_by_its_lease_running_out_goes_back_to_its_place(mq, client, how):
    q = queue(mq, lease_ms=200)
    send(q, "a", "b")
    h = reader(client, q)
    client.read(h)
    if how == "close":
        client.close(h)
    wait_until(lambda: counts(q, "curmsgs") == (2,), what="the message to come back")
    assert drain(q) == ["a", "b"]


# -- the retry delay -------------------------------------------------------------------------------

def test_retry_delay_keeps_a_returned_message_invisible_and_in_flight(mq, client):
    q = queue(mq, retry_delay_ms=400)
    h, a = leased(client, q, "a", "b")
    client.nack(h, a.id)
    returned = time.monotonic()
    assert counts(q, "curmsgs", "inflight") == (1, 1)
    assert take(q) == b"b"  # "a" is not there yet
    assert errno_of(take, q) == errno.EAGAIN
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the retry delay to pass")
    assert time.monotonic() - returned >= 0.39
    data, again = lease(client, h)
    assert (data, again.deliveries) == (b"a", 2)


@pytest.mark.parametrize("how", ["close", "expiry"])
def test_retry_delay_applies_to_a_close_and_to_a_lease_that_ran_out(mq, client, how):
    q = queue(mq, retry_delay_ms=400, lease_ms=200)
    send(q, "a")
    h = reader(client, q)
    start = time.monotonic()
    client.read(h)
    if how == "close":
        client.close(h)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the message to come back")
    # Returned at once by the close, or when the lease ran out (200 ms); then the delay.
    assert time.monotonic() - start >= (0.39 if how == "close" else 0.59)


def test_a_message_waiting_for_its_retry_delay_counts_against_maxmsg(mq, client):
    q = queue(mq, retry_delay_ms=60000, maxmsg=1)
    h, a = leased(client, q, "a")
    client.nack(h, a.id)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    assert errno_of(put, q, b"b") == errno.EAGAIN


# -- limits and counts -----------------------------------------------------------------------------

def test_leased_messages_count_against_maxmsg_a_writer_waits_until_an_ack(mq, client, procs):
    q = queue(mq, maxmsg=2)
    h, a = leased(client, q, "a", "b")
    lease(client, h)
    assert counts(q, "curmsgs", "inflight") == (0, 2)
    w = client.open(q, "w")
    assert error_of(client.write, w, b"c") == errno.EAGAIN
    writer = procs.qio(q, "open:w", "write:c")
    wait_blocked(writer, SYS_WRITE, what="the writer to wait for room")
    client.ack(h, a.id)
    _, out, _ = finish(writer, what="the writer to get in")
    assert parse_qio_write(out.splitlines()[-1])[0] == "OK"
    assert counts(q, "curmsgs", "inflight") == (1, 1)


def test_leased_messages_count_against_the_mounts_max_bytes(mount_mqfs, client):
    m = mount_mqfs("max_bytes=4k")
    q = queue(m)
    size = 1000
    send(q, *[b"x" * size] * 3)  # 3 x (1000 + overhead) of 4096
    assert 4 * (size + MESSAGE_OVERHEAD) > 4096
    h = reader(client, q)
    ids = [lease(client, h)[1].id for _ in range(3)]
    assert errno_of(put, q, b"y" * size) == errno.ENOSPC
    client.ack(h, ids[0])
    assert put(q, b"y" * size) == size


def test_curmsgs_curbytes_size_and_get_attr_count_only_what_a_reader_can_take_now(mq, client):
    q = queue(mq)
    send(q, "aaaa", "bb")
    h = reader(client, q)
    lease(client, h)
    assert counts(q, "curmsgs", "curbytes", "inflight") == (1, 2, 1)
    assert os.stat(q).st_size == 2
    assert client.curmsgs(h) == 1


def test_truncate_drops_the_queued_messages_not_the_leased_ones(mq, client):
    q = queue(mq)
    h, a = leased(client, q, "a", "b", "c")
    os.truncate(q, 0)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    client.nack(h, a.id)
    client.close(h)
    assert drain(q) == ["a"]


def test_received_counts_at_the_ack_in_explicit_mode_and_at_the_read_in_auto_mode(mq, client):
    q = queue(mq)
    h, a = leased(client, q, "a", "b")
    assert counts(q, "received") == (0,)
    client.nack(h, a.id)
    _, a = lease(client, h)
    assert counts(q, "received") == (0,)
    client.ack(h, a.id)
    assert counts(q, "received") == (1,)
    client.set_ack(h, AUTO)
    client.read(h)
    assert counts(q, "received") == (2,)


@pytest.mark.parametrize("how", ["nack", "close", "expiry"])
def test_a_blocked_reader_gets_a_returned_message(mq, client, procs, how):
    q = queue(mq, lease_ms=600 if how == "expiry" else 30000)
    h, a = leased(client, q, "a")
    waiting = procs.qio(q, "open:r", "read")
    wait_blocked(waiting, SYS_READ, what="the reader to wait")
    if how == "nack":
        client.nack(h, a.id)
    elif how == "close":
        client.close(h)
    _, out, _ = finish(waiting, what="the waiting reader to get the returned message")
    assert parse_qio_read(out.splitlines()[-1])[:2] == ("OK", "a")


def test_a_blocked_explicit_reader_leases_the_message_that_comes(mq, procs):
    q = queue(mq)
    waiting = procs.start([program("lease_check"), q, "open:r", "ack-mode:1", "read", "delivery", "sleep:60000"])
    out = LineReader(waiting)
    assert [out.line(what="lease_check to start") for _ in range(2)] == ["open OK", "ack-mode OK"]
    wait_blocked(waiting, SYS_READ, what="the explicit reader to wait")
    send(q, "m")
    assert out.line(what="the read") == "read OK " + b"m".hex()
    assert out.line(what="the delivery").split()[4] == "1"
    assert counts(q, "curmsgs", "inflight", "received") == (0, 1, 0)
    waiting.kill()
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the killed reader's lease to come back")


def test_truncate_keeps_a_message_waiting_for_its_retry_delay(mq, client):
    q = queue(mq, retry_delay_ms=300)
    h, a = leased(client, q, "a", "b")
    client.nack(h, a.id)
    os.truncate(q, 0)  # drops "b", queued; "a" is in flight
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the retry delay to pass")
    assert drain(q) == ["a"]


@pytest.mark.parametrize("mech", ["poll", "epollet"])
@pytest.mark.parametrize("how", ["nack", "expiry"])
def test_a_returned_message_wakes_a_waiter_in_poll_or_epoll(mq, client, procs, mech, how):
    q = queue(mq, lease_ms=600 if how == "expiry" else 30000)
    h, a = leased(client, q, "a")
    waiter = Readiness(procs, mech, f"r:{q}")
    assert "IN" not in waiter.wait(0).get(0, set())  # all leased: nothing to read
    waiter.start_wait()
    if how == "nack":
        client.nack(h, a.id)
    assert "IN" in waiter.woken().get(0, set())
    assert waiter.read(0) == "read 0 OK a"
    waiter.quit()


# -- dead letters ----------------------------------------------------------------------------------

def give_back(c, h, how, message_id):
    """Returns message `message_id` held by descriptor h: NACK, close (h is closed) or lease expiry (waits)."""
    if how == "nack":
        c.nack(h, message_id)
    elif how == "close":
        c.close(h)


@pytest.mark.parametrize("how", ["nack", "close", "expiry"])
def test_a_message_returned_after_max_deliveries_moves_to_the_dead_letter_queue(mq, client, how):
    dead = queue(mq, "jobs/dead")
    q = queue(mq, "jobs/q", max_deliveries=2, dead_letter="jobs/dead", lease_ms=200 if how == "expiry" else 30000)
    body = bytes(range(256)) * 3
    send(q, body, priority=7)
    h = reader(client, q)
    data, first = lease(client, h)
    assert data == body
    give_back(client, h, how, first.id)
    wait_until(lambda: counts(q, "curmsgs") == (1,), what="the first return")
    set_attr(q, "retry_delay_ms", 60000)  # not for a dead letter: it moves at once
    h = reader(client, q) if how == "close" else h
    data, second = lease(client, h)
    assert (data, second.deliveries) == (body, 2)
    give_back(client, h, how, second.id)
    wait_until(lambda: counts(dead, "curmsgs") == (1,), what="the dead letter")
    assert counts(q, "curmsgs", "inflight", "dead_lettered") == (0, 0, 1)
    h = client.open(dead)
    data, moved = lease(client, h)
    assert data == body
    assert (moved.priority, moved.type, moved.deliveries, moved.enqueued_ns) == (7, 1, 1, first.enqueued_ns)
    assert moved.id > first.id  # a new id


def test_a_dead_letter_goes_to_the_end_of_its_priority_in_the_dead_letter_queue(mq, client):
    dead = queue(mq, "dead")
    send(dead, "older", priority=2)
    send(dead, "high", priority=9)
    q = queue(mq, max_deliveries=1, dead_letter="dead")
    h, d = leased(client, q, "moved", priority=2)
    client.nack(h, d.id)
    send(dead, "younger", priority=2)
    assert drain(dead) == ["high", "older", "moved", "younger"]


@pytest.mark.parametrize("name", ["/dead", "dead", "/dir/dead", "dir/dead"])
def test_dead_letter_names_a_queue_from_the_mount_root_with_or_without_a_leading_slash(mq, client, name):
    dead = queue(mq, name.lstrip("/"))
    q = queue(mq, "dir/q", max_deliveries=1, dead_letter=name)
    assert attr(q, "dead_letter").lstrip("/") == name.lstrip("/")
    h, d = leased(client, q, "m")
    client.nack(h, d.id)
    assert (counts(q, "dead_lettered"), drain(dead)) == ((1,), ["m"])


def test_a_full_dead_letter_queue_takes_the_message_anyway_its_writers_wait_until_below(mq, client, procs):
    dead = queue(mq, "dead", maxmsg=1)
    send(dead, "first")
    writer = procs.qio(dead, "open:w", "write:third")
    wait_blocked(writer, SYS_WRITE, what="a writer to wait for room in the dead-letter queue")
    q = queue(mq, max_deliveries=1, dead_letter="dead")
    h, d = leased(client, q, "second")
    client.nack(h, d.id)
    assert counts(dead, "curmsgs", "waiting_writers") == (2, 1)  # more than its maxmsg
    assert take(dead) == b"first"
    assert counts(dead, "curmsgs", "waiting_writers") == (1, 1)  # 1 of 1: still full
    assert errno_of(put, dead, b"fourth") == errno.EAGAIN
    assert take(dead) == b"second"
    _, out, _ = finish(writer, what="the writer to get in")
    assert parse_qio_write(out.splitlines()[-1])[0] == "OK"
    assert drain(dead) == ["third"]


@pytest.mark.parametrize("target", ["unset", "missing", "directory", "itself", "removed"])
def test_without_a_usable_dead_letter_queue_the_message_is_returned_with_a_warning(mq, client, target):
    os.mkdir(mq / "dir")
    queue(mq, "gone")
    q = queue(mq, max_deliveries=1)
    names = {"missing": "nowhere", "directory": "dir", "itself": "q", "removed": "gone"}
    if target in names:
        set_attr(q, "dead_letter", names[target])
    os.unlink(mq / "gone")
    send(q, "m")
    warned = warnings_in(mq)
    h = reader(client, q)
    _, d = lease(client, h)
    client.nack(h, d.id)
    assert counts(q, "curmsgs", "inflight", "dead_lettered") == (1, 0, 0)
    data, again = lease(client, h)
    assert (data, again.deliveries) == (b"m", 2)  # delivered again, past max_deliveries
    assert warnings_in(mq) > warned, mq.read_log()


def test_max_deliveries_0_never_moves_a_message(mq, client):
    dead = queue(mq, "dead")
    q = queue(mq, dead_letter="dead")
    send(q, "m")
    h = reader(client, q)
    for delivery in range(1, 7):
        data, d = lease(client, h)
        assert (data, d.deliveries) == (b"m", delivery)
        client.nack(h, d.id)
    assert counts(q, "curmsgs", "dead_lettered") == (1, 0)
    assert counts(dead, "curmsgs") == (0,)


def test_a_dead_letter_wakes_a_reader_waiting_on_the_dead_letter_queue(mq, client, procs):
    dead = queue(mq, "dead")
    q = queue(mq, max_deliveries=1, dead_letter="dead")
    waiting = procs.qio(dead, "open:r", "read")
    wait_blocked(waiting, SYS_READ, what="the reader of the dead-letter queue to wait")
    h, d = leased(client, q, "m")
    client.nack(h, d.id)
    _, out, _ = finish(waiting, what="the dead letter to reach the waiting reader")
    assert parse_qio_read(out.splitlines()[-1])[:2] == ("OK", "m")


@pytest.mark.parametrize("store", [False, True], ids=["memory", "store"])
def test_a_removed_queue_keeps_the_leases_of_its_open_files_until_they_let_go(mount_mqfs, client, tmp_path, store):
    m = mount_mqfs(*([f"store={tmp_path}/store"] if store else []))
    q = queue(m, max_deliveries=1, dead_letter="dead")
    dead = queue(m, "dead")
    h, a = leased(client, q, "a", "b", "c")
    _, b = lease(client, h)
    os.unlink(q)
    client.ack(h, a.id)
    client.nack(h, b.id)  # its last delivery: to the dead-letter queue, which is still there
    assert client.read(h) == b"c"
    client.close(h)  # "c" at its last delivery too: to the dead-letter queue
    assert drain(dead) == ["b", "c"]
    assert not os.path.exists(q)


@pytest.mark.parametrize("how", ["close", "expiry"])
def test_a_message_returned_into_a_removed_queue_is_freed_with_it(mq, client, how):
    q = queue(mq, lease_ms=200)
    h, _ = leased(client, q, "x" * 5000)
    assert bytes_used(mq) > 5000
    os.unlink(q)
    if how == "expiry":
        wait_until(lambda: client.curmsgs(h) == 1, what="the lease to run out")
    client.close(h)
    wait_until(lambda: bytes_used(mq) == 0, what="the removed queue and its message to be freed")
    assert statfs(mq.path)["ffree"] == statfs(mq.path)["files"]


# -- what a reader learns: MQFS_IOC_GET_DELIVERY ---------------------------------------------------

def test_get_delivery_before_any_read_is_enomsg(mq, client):
    q = queue(mq)
    h = reader(client, q)
    assert error_of(client.delivery, h) == errno.ENOMSG
    assert error_of(client.read, h) == errno.EAGAIN  # a read that got nothing
    assert error_of(client.delivery, h) == errno.ENOMSG


def test_get_delivery_tells_id_type_priority_deliveries_and_enqueue_time_in_auto_mode(mq, client):
    q = queue(mq)
    before = time.time_ns()
    send(q, "x", priority=9)
    after = time.time_ns()
    h = client.open(q)
    assert client.read(h) == b"x"
    d = client.delivery(h)
    assert (d.type, d.priority, d.deliveries) == (1, 9, 1)  # the queue's user.mq.type
    slack = 10_000_000  # 10 ms
    assert before - slack <= d.enqueued_ns <= after + slack, (before, d.enqueued_ns, after)
    assert d.id > 0


def test_deliveries_counts_every_delivery_of_the_message(mq, client):
    q = queue(mq, lease_ms=200)
    send(q, "m")
    for delivery, how in enumerate(("nack", "close", "expiry"), start=1):
        h = reader(client, q)
        _, d = lease(client, h)
        assert d.deliveries == delivery
        give_back(client, h, how, d.id)
        wait_until(lambda: counts(q, "curmsgs") == (1,), what=f"the message to come back after {how}")
    assert lease(client, client.open(q))[1].deliveries == 4  # auto mode


def test_ids_are_unique_in_the_mount_and_increase_in_send_order(mq, client):
    a, b = queue(mq, "a"), queue(mq, "d/b")
    for i in range(3):
        send(a, f"a{i}")
        send(b, f"b{i}", priority=i)  # b hands them out in the other order
    ids = {}
    for path in (a, b):
        h = reader(client, path, ack=AUTO)
        for _ in range(3):
            data, d = lease(client, h)
            ids[data.decode()] = d.id
    in_send_order = [ids[f"{name}{i}"] for i in range(3) for name in "ab"]
    assert in_send_order == sorted(set(in_send_order))


# -- peeking ---------------------------------------------------------------------------------------

def peeker(c, path):
    h = c.open(path)
    c.set_read_mode(h, PEEK)
    return h


def test_peek_reads_the_queued_messages_in_order_without_taking_them_then_eof(mq, client):
    q = queue(mq)
    send(q, "low", priority=1)
    send(q, "high1", "high2", priority=5)
    send(q, "mid", priority=3)
    h = peeker(client, q)
    assert [client.read(h) for _ in range(5)] == [b"high1", b"high2", b"mid", b"low", b""]
    assert client.read(h) == b""
    assert counts(q, "curmsgs", "inflight", "received") == (4, 0, 0)
    assert lease(client, client.open(q))[1].deliveries == 1  # peeking delivered nothing


def test_peek_leaves_out_leased_messages_and_leases_nothing_in_explicit_mode(mq, client):
    q = queue(mq)
    send(q, "a", "b", "c")
    lease(client, reader(client, q))
    h = peeker(client, q)
    client.set_ack(h, EXPLICIT)
    assert [client.read(h) for _ in range(3)] == [b"b", b"c", b""]
    assert counts(q, "curmsgs", "inflight") == (2, 1)


def test_a_later_peek_returns_messages_sent_since_that_come_after_its_position(mq, client):
    q = queue(mq)
    send(q, "a", "b", priority=3)
    h = peeker(client, q)
    assert [client.read(h) for _ in range(3)] == [b"a", b"b", b""]
    send(q, "c", priority=3)
    assert client.read(h) == b"c"
    send(q, "high", priority=5)  # ahead of its position
    assert client.read(h) == b""
    send(q, "low", priority=1)
    assert [client.read(h) for _ in range(2)] == [b"low", b""]
    assert counts(q, "curmsgs") == (5,)


def test_get_delivery_after_a_peek_tells_the_deliveries_so_far(mq, client):
    q = queue(mq)
    h, d = leased(client, q, "once", "never")
    client.nack(h, d.id)
    p = peeker(client, q)
    data, peeked = lease(client, p)
    assert (data, peeked.id, peeked.deliveries) == (b"once", d.id, 1)
    data, peeked = lease(client, p)
    assert (data, peeked.deliveries) == (b"never", 0)


def test_peek_in_line_framing_returns_one_line_per_read(mq, client):
    q = queue(mq, framing="line")
    put(q, b"one\ntwo\n")
    h = peeker(client, q)
    assert [client.read(h) for _ in range(3)] == [b"one\n", b"two\n", b""]
    assert counts(q, "curmsgs") == (2,)


def test_peek_in_u32_framing_returns_one_frame_with_its_header_per_read(mq, client):
    q = queue(mq, framing="u32")
    frames = [struct.pack("<I", 3) + b"one", struct.pack("<I", 5) + b"three"]
    put(q, b"".join(frames))
    h = peeker(client, q)
    assert client.read(h) == frames[0]
    assert error_of(client.read, h, len(frames[1]) - 1) == errno.EMSGSIZE
    assert client.read(h, len(frames[1])) == frames[1]
    assert client.read(h) == b""
    assert counts(q, "curmsgs") == (2,)


def test_peek_with_a_short_buffer_gets_the_message_in_parts(mq, client):
    q = queue(mq)
    send(q, "abcdefghij", "next")
    h = peeker(client, q)
    assert [client.read(h, 4) for _ in range(5)] == [b"abcd", b"efgh", b"ij", b"next", b""]
    assert counts(q, "curmsgs") == (2,)


def test_back_from_peeking_a_read_takes_the_first_message(mq, client):
    q = queue(mq)
    send(q, "a", "b", "c")
    h = peeker(client, q)
    assert client.read(h) == b"a" and client.read(h) == b"b"
    client.set_read_mode(h, STREAM)
    assert client.read(h) == b"a"
    assert counts(q, "curmsgs", "received") == (2, 1)


_PEEK_BLOCKING = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, %d, struct.pack("i", 2))
print(repr(os.read(fd, 100)))
""" % SET_READ_MODE


def test_peek_never_blocks(mq, client):
    q = queue(mq)
    send(q, "leased")
    lease(client, reader(client, q))  # nothing visible is left
    # A blocking descriptor, in a child (of the client's language) with a timeout.
    if client.kind == "python":
        args = [PYTHON, "-c", _PEEK_BLOCKING, q]
    else:
        args = [program("lease_check"), q, "open:r", "read-mode:2", "read"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=10)
    assert result.stdout.splitlines()[-1] in ("b''", "read EOF"), result.stdout + result.stderr


def test_the_read_mode_attribute_does_not_take_peek(mq):
    q = queue(mq)
    for value in (b"peek", b"2"):
        assert errno_of(os.setxattr, q, "user.mq.read_mode", value) == errno.EINVAL
    assert attr(q, "read_mode") == "message"


def test_a_peeking_descriptor_is_always_readable(mq, client):
    q = queue(mq)
    h = peeker(client, q)
    assert client.readable(h)
    send(q, "m")
    assert client.read(h) == b"m"
    assert client.read(h) == b""
    assert client.readable(h)


# -- counters --------------------------------------------------------------------------------------

def test_waiting_readers_and_waiting_writers_count_the_blocked_calls(mq, procs):
    r, w = queue(mq, "r"), queue(mq, "w", maxmsg=1)
    send(w, "full")
    readers = [procs.qio(r, "open:r", "read") for _ in range(2)]
    writers = [procs.qio(w, "open:w", "write:x") for _ in range(3)]
    for p in readers:
        wait_blocked(p, SYS_READ, what="a reader to wait")
    for p in writers:
        wait_blocked(p, SYS_WRITE, what="a writer to wait")
    assert counts(r, "waiting_readers", "waiting_writers") == (2, 0)
    assert counts(w, "waiting_readers", "waiting_writers") == (0, 3)
    readers[0].kill()
    wait_until(lambda: counts(r, "waiting_readers") == (1,), what="the killed reader to leave")
    send(r, "m")
    finish(readers[1], what="the reader to get the message")
    assert counts(r, "waiting_readers") == (0,)
    assert take(w) == b"full"
    wait_until(lambda: counts(w, "waiting_writers", "curmsgs") == (2, 1), what="a writer to get in")


def test_oldest_ms_is_the_age_of_the_oldest_queued_message(mq, client):
    q = queue(mq)
    assert counts(q, "oldest_ms") == (0,)
    sent = time.monotonic()
    send(q, "old")
    wait_until(lambda: iattr(q, "oldest_ms") >= 300, what="the message to age")
    assert iattr(q, "oldest_ms") <= (time.monotonic() - sent) * 1000 + 20
    send(q, "young", priority=5)  # handed out first, but younger
    assert iattr(q, "oldest_ms") >= 300
    h = reader(client, q)
    assert client.read(h) == b"young"
    assert iattr(q, "oldest_ms") >= 300
    assert client.read(h) == b"old"
    assert counts(q, "oldest_ms", "curmsgs", "inflight") == (0, 0, 2)  # none queued


@pytest.mark.parametrize("name", COUNTERS)
def test_the_new_counters_are_read_only(mq, name):
    q = queue(mq)
    assert errno_of(os.setxattr, q, "user.mq." + name, b"5") == errno.EPERM
    assert errno_of(os.removexattr, q, "user.mq." + name) == errno.EPERM
    assert attr(q, name) == "0"


# -- the settings ----------------------------------------------------------------------------------

def test_the_new_attributes_are_listed_with_their_defaults(mq):
    q = queue(mq)
    names = os.listxattr(q)
    for name in list(SETTINGS) + list(COUNTERS):
        assert "user.mq." + name in names
    assert {name: attr(q, name) for name in SETTINGS} == SETTINGS


@pytest.mark.parametrize("name,value", [("lease_ms", "1"), ("lease_ms", str(2**40)), ("retry_delay_ms", "5000"),
                                        ("max_deliveries", "1"), ("max_deliveries", str(2**31 - 1)),
                                        ("dead_letter", "jobs/dead")])
def test_a_setting_takes_its_limits_and_removal_restores_its_default(mq, name, value):
    q = queue(mq)
    set_attr(q, name, value)
    assert attr(q, name) == value
    os.removexattr(q, "user.mq." + name)
    assert attr(q, name) == SETTINGS[name]


@pytest.mark.parametrize("name,value", [("lease_ms", "0"), ("lease_ms", str(2**40 + 1)), ("lease_ms", "-1"),
                                        ("lease_ms", "soon"), ("retry_delay_ms", "-1"), ("retry_delay_ms", "x"),
                                        ("max_deliveries", str(2**31)), ("max_deliveries", "-1"),
                                        ("max_deliveries", "3x")])
def test_a_bad_setting_is_einval_and_changes_nothing(mq, name, value):
    q = queue(mq, **{name: "7"})
    assert errno_of(os.setxattr, q, "user.mq." + name, value.encode()) == errno.EINVAL
    assert attr(q, name) == "7"


def test_mount_options_set_the_lease_settings_of_new_queues(mount_mqfs):
    m = mount_mqfs("lease_ms=250", "retry_delay_ms=40", "max_deliveries=4", "dead_letter=jobs/dead")
    q = queue(m)
    assert {name: attr(q, name) for name in SETTINGS} == {"lease_ms": "250", "retry_delay_ms": "40",
                                                          "max_deliveries": "4", "dead_letter": "jobs/dead"}


# -- durable: -o store=DIR -------------------------------------------------------------------------

def restart(m, how, before_start=None):
    """Ends the daemon of mount `m`, by SIGKILL (a crash) or SIGTERM (a clean
    stop), calls `before_start` and mounts a new daemon with the same options
    (the same store)."""
    if how == "sigkill":
        kill_daemon(m)
    else:
        assert m.stop() == 0, m.read_log()
    if before_start:
        before_start()
    m.start(timeout=30)


def held_when(holder, steps, last):
    """Waits for lease_check `holder` to answer its first `steps` steps, the last with `last`, none failing."""
    out = LineReader(holder)
    lines = [out.line(what="the holder to lease") for _ in range(steps)]
    assert lines[-1] == last and "ERR" not in " ".join(lines), lines


def take_with_counts(path, count):
    """Takes `count` messages of `path`: [(bytes, deliveries)]."""
    c = PyClient()
    h = c.open(path)
    c.set_read_mode(h, STREAM)
    try:
        return [(data, d.deliveries) for data, d in (lease(c, h) for _ in range(count))]
    finally:
        c.close(h)


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_leased_messages_are_queued_again_after_a_restart_with_their_delivery_counts(mount_mqfs, procs, tmp_path,
                                                                                    how):
    m = mount_mqfs(f"store={tmp_path}/store")
    q = queue(m)
    send(q, "a", "b", "c", "d")
    # "a" was delivered and NACKed once, then leased again; "b" leased; "c" acknowledged.
    holder = procs.start([program("lease_check"), q, "open:rn", "ack-mode:1", "read-mode:1", "read", "delivery",
                          "nack:last", "read", "read", "read", "delivery", "ack:last", "sleep:60000"])
    held_when(holder, 11, "ack OK")
    assert counts(q, "curmsgs", "inflight") == (1, 2)
    restart(m, how, before_start=holder.kill)  # the holder outlives its daemon
    assert counts(q, "curmsgs", "inflight", "received") == (3, 0, 1)
    assert take_with_counts(q, 3) == [(b"a", 3), (b"b", 2), (b"d", 1)]


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_a_message_waiting_for_its_retry_delay_is_queued_again_at_its_place_after_a_restart(mount_mqfs, client,
                                                                                           tmp_path, how):
    m = mount_mqfs(f"store={tmp_path}/store")
    q = queue(m, retry_delay_ms=3_600_000)
    h, d = leased(client, q, "a", "b")
    client.nack(h, d.id)
    client.close(h)
    assert counts(q, "curmsgs", "inflight") == (1, 1)
    restart(m, how)
    assert counts(q, "curmsgs", "inflight") == (2, 0)
    h = client.open(q)
    assert lease(client, h)[0] == b"a" and client.delivery(h).deliveries == 2
    client.close(h)


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_the_lease_settings_dead_lettered_and_the_dead_letters_survive_a_restart(mount_mqfs, client, tmp_path,
                                                                                 how):
    m = mount_mqfs(f"store={tmp_path}/store")
    dead = queue(m, "d/dead")
    settings = {"lease_ms": "1234", "retry_delay_ms": "56", "max_deliveries": "1", "dead_letter": "d/dead"}
    q = queue(m, **settings)
    h, d = leased(client, q, "x", priority=4)
    send(q, "y")
    client.nack(h, d.id)
    client.close(h)
    restart(m, how)
    assert {name: attr(q, name) for name in SETTINGS} == settings
    assert counts(q, "dead_lettered", "curmsgs", "inflight") == (1, 1, 0)
    h = client.open(dead)
    data, moved = lease(client, h)
    client.close(h)
    assert (data, moved.priority, moved.deliveries, moved.enqueued_ns) == (b"x", 4, 1, d.enqueued_ns)
    assert drain(q) == ["y"]


def journal_segments(store):
    """The numbers of the store's journal segments (journal-NNNNNNNN, docs/design.md "The journal")."""
    return sorted(int(name[len("journal-"):], 16) for name in os.listdir(store) if name.startswith("journal-"))


def test_leased_and_returning_messages_keep_their_place_and_counts_through_the_stores_compaction(mount_mqfs, procs,
                                                                                                tmp_path):
    store = tmp_path / "store"
    m = mount_mqfs(f"store={store}")
    q = queue(m, retry_delay_ms=3_600_000)
    send(q, "a", "b", "c")
    # "a" leased, "b" given back and waiting for its retry, both delivered once; "c" queued.
    holder = procs.start([program("lease_check"), q, "open:rn", "ack-mode:1", "read-mode:1", "read", "read",
                          "delivery", "nack:last", "sleep:60000"])
    held_when(holder, 7, "nack OK")
    first = journal_segments(store)[0]
    # Traffic through another queue until the journal has retired the segment
    # that recorded the sends and the deliveries.
    pump = queue(m, "pump", msgsize=MAX_MSGSIZE)
    big = bytes(MAX_MSGSIZE)
    for _ in range(200):
        if journal_segments(store)[0] > first:
            break
        put(pump, big)
        assert take(pump) == big
    assert journal_segments(store)[0] > first, "the journal never retired its first segment"
    restart(m, "sigkill", before_start=holder.kill)  # the holder outlives its daemon
    assert counts(q, "curmsgs", "inflight") == (3, 0)
    assert take_with_counts(q, 3) == [(b"a", 2), (b"b", 2), (b"c", 1)]


# -- a kill storm ----------------------------------------------------------------------------------

STORM_MESSAGES = 300
STORM_BATCH = 15
STORM_CONSUMERS = 4
STORM_LEASE_MS = 300
STORM_MAX_DELIVERIES = 5


class Storm:
    """Explicit-ack consumers (lease_check's consume step) on one queue, each
    logging to a file of its own; a killed one is started again."""

    def __init__(self, procs, path, logs, seed):
        self.procs, self.path, self.logs, self.seed = procs, path, logs, seed
        self.rng = random.Random(seed)
        self.consumers = [None] * STORM_CONSUMERS
        self.started = 0

    def start(self, i):
        self.started += 1
        log = os.path.join(self.logs, f"c{i}.{self.started}")
        # A late ACK now and then: after one and a half leases.
        step = f"consume:{log}:{self.seed + self.started}:{STORM_LEASE_MS * 3 // 2}"
        self.consumers[i] = self.procs.start([program("lease_check"), self.path, "open:r", "ack-mode:1",
                                              "read-mode:1", step], text=True)

    def start_all(self):
        for i in range(STORM_CONSUMERS):
            self.start(i)

    def check_alive(self):
        for proc in self.consumers:
            if proc.poll() is not None:
                out, err = proc.communicate(timeout=10)
                pytest.fail(f"a consumer ended by itself ({proc.returncode}, seed {self.seed}): {out} {err}")

    def kill_one(self):
        """SIGKILLs a consumer, whatever it is doing (often holding leases), and starts another."""
        self.check_alive()
        i = self.rng.randrange(STORM_CONSUMERS)
        self.consumers[i].kill()
        wait_exit(self.consumers[i], 10, "a killed consumer to end")
        self.start(i)

    def wait_ended(self):
        """Waits for every consumer to end by itself (its daemon is gone)."""
        for proc in self.consumers:
            wait_exit(proc, 20, "a consumer to end once the daemon was killed")

    def stop(self):
        self.check_alive()
        for proc in self.consumers:
            proc.kill()
            wait_exit(proc, 10, "a consumer to end")


def storm_ledger(logs):
    """From the consumers' logs: the messages whose ACK returned 0 (a list,
    so that a message acknowledged twice shows), and the ones whose ACK was
    under way when its consumer or the daemon died: taken or not."""
    acked, unsure = [], set()
    for name in os.listdir(logs):
        pending = None
        with open(os.path.join(logs, name)) as f:
            for line in f.read().splitlines():
                kind, _, message, *error = line.split(" ")
                if kind == "A":
                    acked.append(message)
                elif kind == "F" and error[0] in ("ENOTCONN", "ECONNABORTED"):
                    unsure.add(message)
                pending = message if kind == "P" else None
        if pending:
            unsure.add(pending)
    return acked, unsure


@pytest.mark.parametrize("kind", ["memory", "store", "store-daemon-sigkill", "sync-disk-daemon-sigkill"])
def test_kill_storm_every_message_is_acked_once_or_still_queued_or_dead_lettered(mount_mqfs, procs, tmp_path, kind):
    seed = int(os.environ.get("MQFS_LEASE_STORM_SEED") or random.randrange(1 << 30))
    what = f"(seed {seed})"
    options = {"memory": [], "store": [f"store={tmp_path}/store"]}
    m = mount_mqfs(*options.get(kind, [f"store={tmp_path}/store", "sync=disk" if "disk" in kind else "sync=os"]))
    q = queue(m, "storm", maxmsg=STORM_MESSAGES, lease_ms=STORM_LEASE_MS, max_deliveries=STORM_MAX_DELIVERIES,
              dead_letter="storm-dead")
    dead = queue(m, "storm-dead", maxmsg=STORM_MESSAGES)
    logs = tmp_path / "logs"
    os.mkdir(logs)
    storm = Storm(procs, q, str(logs), seed)
    storm.start_all()
    sent = []
    for batch in range(STORM_MESSAGES // STORM_BATCH):
        # Every 29th message always fails (its consumer NACKs it): a dead letter.
        messages = [f"poison{n}" if n % 29 == 7 else f"m{n}" for n in range(len(sent), len(sent) + STORM_BATCH)]
        send(q, *messages)
        sent += messages
        storm.kill_one()  # while the consumers are busy with the batch
        wait_until(lambda: iattr(q, "curmsgs") <= 5, timeout=30, what=f"the consumers to take a batch {what}")
        storm.kill_one()  # while they hold leases
        if kind.endswith("daemon-sigkill") and batch == STORM_MESSAGES // STORM_BATCH // 2:
            kill_daemon(m)
            storm.wait_ended()
            m.start(timeout=30)
            storm.start_all()
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (0, 0), timeout=60,
               what=f"every message to be acknowledged or dead-lettered {what}")
    storm.stop()

    received, dead_lettered = counts(q, "received", "dead_lettered")
    acked, unsure = storm_ledger(logs)
    left, dead_letters = drain(q), drain(dead)
    found = collections.Counter(acked) + collections.Counter(left) + collections.Counter(dead_letters)
    assert not set(found) - set(sent), f"messages never sent {what}: {sorted(set(found) - set(sent))[:10]}"
    twice = sorted(message for message, n in found.items() if n > 1)
    assert not twice, f"{len(twice)} messages acknowledged twice or also dead-lettered {what}: {twice[:10]}"
    lost = sorted(message for message in sent if found[message] == 0 and message not in unsure)
    assert not lost, f"{len(lost)} messages lost {what}: {lost[:10]}"
    # An ACK under way when its consumer died took its message or not; the
    # count of ACKs the daemon accepted tells which, all together.
    taken_by_the_dead = sorted(message for message in unsure if found[message] == 0)
    assert received == len(acked) + len(taken_by_the_dead), (
        f"user.mq.received {received}, {len(acked)} ACKs returned 0, {len(taken_by_the_dead)} of {len(unsure)} "
        f"ACKs under way at a kill took theirs {what}")
    assert dead_lettered == len(dead_letters), what
    assert {message for message in sent if message.startswith("poison")} <= set(dead_letters), what
    assert left == []
    print(f"{kind}: {len(sent)} sent, {len(acked)} acknowledged, {len(dead_letters)} dead letters, "
          f"{len(taken_by_the_dead)} taken by an ACK under way at a kill, {storm.started} consumers started {what}")
