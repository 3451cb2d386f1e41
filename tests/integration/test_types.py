"""SPEC section 12, message types (System V selection), rule by rule: the
type a message gets (the queue's `user.mq.type`, the mount option `type=`,
MQFS_IOC_SET_TYPE of the writing descriptor, framed and whole-file writes),
what MQFS_IOC_SET_SELECT selects (one type, all but one, the lowest types
first, any) and in which order, and what the selection governs: one-message,
stream, framed and peeking reads, blocking and waking (a selective reader
never holds back another), poll and epoll, the counters, leases and dead
letters, and a store across a restart. The seed's msgrcv examples and a
ping-pong of two processes on one queue run in C through
tests/programs/type_check, which uses mqfs.h itself.

This process's descriptors are non-blocking, so no call here can wait;
whatever must block runs in a child process (type_check, lease_check) and
every wait has a timeout.
"""
import errno
import fcntl
import os
import select
import struct
import subprocess
import time

import pytest

from helpers import (POLL_SYSCALLS, SYS_READ, LineReader, assert_still_blocked, attr, errno_of, finish,
                     in_fuse_request, iattr, is_mounted, kill_daemon, program, put, run_mqfs, set_attr, sleeping_in,
                     wait_blocked, wait_sleeping_in, wait_until)


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("M") << 8) | nr


# The requests of include/mqfs.h (test_the_python_request_numbers_match_the_header checks the new ones).
_W, _R = 1, 2
SET_PRIORITY = _ioc(_W, 1, 4)
SET_READ_MODE = _ioc(_W, 2, 4)
SET_ACK = _ioc(_W, 4, 4)
NACK = _ioc(_W, 6, 8)
DELIVERY_FORMAT = "QqiIq"  # id, type, priority, deliveries, enqueued_ns
GET_DELIVERY = _ioc(_R, 7, struct.calcsize(DELIVERY_FORMAT))
SELECT_FORMAT = "qii"  # type, except, reserved
SET_TYPE = _ioc(_W, 8, 8)
SET_SELECT = _ioc(_W, 9, struct.calcsize(SELECT_FORMAT))
TYPE_DEFAULT = -1
MESSAGE, STREAM, PEEK = 0, 1, 2
EXPLICIT = 1
TYPE_MAX = 2**63 - 1


# -- this process's descriptors ----------------------------------------------------------------------

class Fd:
    """A non-blocking descriptor of this process on a queue, with the ioctls
    of sections 11 and 12. A failed call raises OSError (BlockingIOError for
    EAGAIN)."""

    def __init__(self, path, flags=os.O_RDONLY, mode=STREAM):
        self.fd = os.open(path, flags | os.O_NONBLOCK)
        if flags != os.O_WRONLY and mode is not None:
            fcntl.ioctl(self.fd, SET_READ_MODE, struct.pack("i", mode))

    def set_type(self, message_type):
        fcntl.ioctl(self.fd, SET_TYPE, struct.pack("q", message_type))

    def select(self, message_type, except_=0, reserved=0):
        fcntl.ioctl(self.fd, SET_SELECT, struct.pack(SELECT_FORMAT, message_type, except_, reserved))

    def set_priority(self, priority):
        fcntl.ioctl(self.fd, SET_PRIORITY, struct.pack("i", priority))

    def explicit(self):
        fcntl.ioctl(self.fd, SET_ACK, struct.pack("i", EXPLICIT))
        return self

    def nack(self, message_id=0):
        fcntl.ioctl(self.fd, NACK, struct.pack("Q", message_id))

    def write(self, data):
        return os.write(self.fd, data)

    def read(self, size=65536):
        return os.read(self.fd, size)

    def delivery(self):
        """(type, priority, deliveries, id) of the last message read."""
        message_id, message_type, priority, deliveries, _ = struct.unpack(
            DELIVERY_FORMAT, fcntl.ioctl(self.fd, GET_DELIVERY, bytes(struct.calcsize(DELIVERY_FORMAT))))
        return message_type, priority, deliveries, message_id

    def take(self, size=65536):
        """One read: "TYPE:TEXT" of the message it returned, its type from GET_DELIVERY."""
        data = self.read(size)
        return f"{self.delivery()[0]}:{data.decode()}" if data else ""

    def take_all(self):
        """take() until EAGAIN (or end of file)."""
        out = []
        while True:
            try:
                message = self.take()
            except BlockingIOError:
                return out
            if not message:
                return out
            out.append(message)

    def readable(self):
        """Whether poll(2) reports the descriptor readable at once."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return any(events & select.POLLIN for _, events in poller.poll(0))

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def fds():
    """open(path, ...) makes an Fd; every one is closed at the end of the test
    (before the mount goes: this fixture is asked for after the mount's)."""
    made = []

    def open_fd(path, flags=os.O_RDONLY, mode=STREAM):
        made.append(Fd(path, flags, mode))
        return made[-1]

    yield open_fd
    for fd in made:
        fd.close()


# -- helpers ---------------------------------------------------------------------------------------

def queue(m, name="q", **settings):
    """Creates queue `name` in mount `m` with user.mq.* settings; returns its path."""
    path = m / name
    with open(path, "a"):
        pass
    for key, value in settings.items():
        set_attr(path, key, value)
    return path


def send(path, *messages):
    """Sends each message, "TYPE[/PRIORITY]:TEXT", with one write(2) on one
    descriptor, after MQFS_IOC_SET_TYPE and MQFS_IOC_SET_PRIORITY (default:
    the queue's priority)."""
    fd = Fd(path, os.O_WRONLY)
    try:
        for message in messages:
            head, text = message.split(":", 1)
            message_type, _, priority = head.partition("/")
            fd.set_type(int(message_type))
            fd.set_priority(int(priority) if priority else -1)
            assert fd.write(text.encode()) == len(text.encode())
    finally:
        fd.close()


def received(path, message_type=0, except_=0):
    """Every message of `path` a stream-mode descriptor selecting
    (message_type, except_) takes until EAGAIN, as "TYPE:TEXT"."""
    fd = Fd(path)
    try:
        fd.select(message_type, except_)
        return fd.take_all()
    finally:
        fd.close()


def counts(path, *names):
    return tuple(iattr(path, name) for name in names)


def error_of(call, *args):
    """errno_of for calls that must fail: the errno, or a failure of the test."""
    code = errno_of(call, *args)
    assert code is not None, f"{getattr(call, '__name__', call)}{args} succeeded"
    return code


def type_check(*args, timeout=30):
    """Runs tests/programs/type_check to its end: (exit status, stdout lines)."""
    try:
        result = subprocess.run([program("type_check"), *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"type_check {args} took more than {timeout}s")
    return result.returncode, result.stdout.splitlines()


def waiting_reader(procs, path, selection, count=1):
    """A type_check process reading `count` messages of `path` with
    `selection` (msgrcv's msgtyp; "^N" all but N), once it is blocked in its read."""
    proc = procs.start([program("type_check"), "recv", path, str(selection), str(count)], text=True)
    wait_blocked(proc, SYS_READ, what=f"the reader selecting {selection} to wait")
    return proc


def got(proc):
    """What a waiting_reader received, as "TYPE PRIORITY TEXT" lines, once it has ended by itself."""
    status, out, err = finish(proc, what="the waiting reader to get its message")
    assert status == 0, (status, out, err)
    return out.splitlines()


def only_served(served, readers):
    """Waits until reader `served` (of the waiting_readers `readers`) has
    ended; the others must still wait in their reads."""
    wait_until(lambda: served.poll() is not None, timeout=5, what="the reader to be served")
    for proc in readers:
        if proc is not served:
            assert proc.poll() is None and in_fuse_request(proc.pid, SYS_READ), "another reader took the message"


# -- the header ------------------------------------------------------------------------------------

def test_the_python_request_numbers_match_the_header():
    status, lines = type_check("--numbers")
    assert status == 0, lines
    numbers = {k: int(v) for k, v in (line.rsplit(" ", 1) for line in lines)}
    assert (numbers["MQFS_IOC_SET_TYPE"], numbers["MQFS_IOC_SET_SELECT"]) == (SET_TYPE, SET_SELECT)
    assert (SET_TYPE, SET_SELECT, GET_DELIVERY) == (0x40084D08, 0x40104D09, 0x80204D07)
    assert numbers["MQFS_TYPE_DEFAULT"] == TYPE_DEFAULT
    assert numbers["sizeof(struct mqfs_select)"] == struct.calcsize(SELECT_FORMAT)
    assert [numbers[f"offsetof({f})"] for f in ("type", "except", "reserved")] == [0, 8, 12]


def test_bad_request_sizes_are_enotty(mq, fds):
    fd = fds(queue(mq))
    for request in (_ioc(_W, 8, 4), _ioc(_R, 8, 8), _ioc(_W, 9, 8), _ioc(_W, 9, 24), _ioc(_R, 9, 16)):
        assert errno_of(fcntl.ioctl, fd.fd, request, bytes(24)) == errno.ENOTTY, hex(request)


# -- the type of a message: user.mq.type, -o type=N, MQFS_IOC_SET_TYPE -----------------------------

def test_a_message_has_type_1_by_default(mq, fds):
    q = queue(mq)
    assert attr(q, "type") == "1"
    assert "user.mq.type" in os.listxattr(q)
    put(q, b"plain")
    fd = fds(q)
    assert fd.read() == b"plain"
    assert fd.delivery()[:3] == (1, 0, 1)


def test_user_mq_type_is_the_type_of_messages_written_while_it_is_set(mq):
    q = queue(mq)
    mq.sh("setfattr -n user.mq.type -v 7 q && echo seven > q")
    writer = Fd(q, os.O_WRONLY)
    try:
        writer.write(b"also seven")
        set_attr(q, "type", 9)
        writer.write(b"nine")  # the same open file: the type at the time of each write
    finally:
        writer.close()
    os.removexattr(q, "user.mq.type")
    assert attr(q, "type") == "1"
    put(q, b"one again")
    assert received(q) == ["7:seven\n", "7:also seven", "9:nine", "1:one again"]


@pytest.mark.parametrize("value", ["1", "2", str(TYPE_MAX)])
def test_user_mq_type_takes_1_to_the_largest_int64(mq, value):
    q = queue(mq, type=value)
    assert attr(q, "type") == value
    put(q, b"m")
    assert received(q) == [f"{value}:m"]


@pytest.mark.parametrize("value", [b"0", b"-1", b"-9223372036854775808", b"9223372036854775808", b"text", b"",
                                   b"5x", b"+5", b" 5", b"1.5", b"0x10"])
def test_a_bad_user_mq_type_is_einval_and_changes_nothing(mq, value):
    q = queue(mq, type=4)
    assert errno_of(os.setxattr, q, "user.mq.type", value) == errno.EINVAL
    assert attr(q, "type") == "4"


def test_the_type_mount_option_sets_the_type_of_new_queues(mount_mqfs):
    m = mount_mqfs("type=42")
    q, other = queue(m), queue(m, "other", type=3)
    assert (attr(q, "type"), attr(other, "type")) == ("42", "3")
    put(q, b"x")
    put(other, b"y")
    assert (received(q), received(other)) == (["42:x"], ["3:y"])


@pytest.mark.parametrize("value", ["0", "-1", "many", "9223372036854775808", ""])
def test_a_bad_type_mount_option_is_one_line_and_nothing_mounted(tmp_path, value):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    status, out, err = run_mqfs(["-f", str(mnt), "-o", f"type={value}"])
    assert status != 0
    assert len(err.splitlines()) == 1 and "type" in err, err
    assert out == ""
    assert not is_mounted(str(mnt))


def test_set_type_gives_the_descriptors_writes_their_type_and_minus_1_goes_back(mq, fds):
    q = queue(mq, type=2)
    typed, plain = fds(q, os.O_WRONLY), fds(q, os.O_WRONLY)
    typed.set_type(5)
    typed.write(b"a")
    plain.write(b"b")  # another descriptor: the queue's type
    typed.write(b"c")
    typed.set_type(TYPE_DEFAULT)
    typed.write(b"d")
    typed.set_type(TYPE_MAX)
    typed.write(b"e")
    assert received(q) == ["5:a", "2:b", "5:c", "2:d", f"{TYPE_MAX}:e"]


def test_a_dup_shares_the_type_of_its_open_file(mq, fds):
    q = queue(mq)
    fd = fds(q, os.O_WRONLY)
    copy = os.dup(fd.fd)
    try:
        fd.set_type(6)
        os.write(copy, b"through the copy")
    finally:
        os.close(copy)
    assert received(q) == ["6:through the copy"]


@pytest.mark.parametrize("value", [0, -2, -(2**63)])
def test_set_type_0_and_below_minus_1_are_einval_and_change_nothing(mq, fds, value):
    q = queue(mq)
    fd = fds(q, os.O_WRONLY)
    fd.set_type(8)
    assert error_of(fd.set_type, value) == errno.EINVAL
    fd.write(b"still eight")
    assert received(q) == ["8:still eight"]


def frame(payload):
    """A u32 frame: a 4-byte little-endian length, then the payload."""
    return struct.pack("<I", len(payload)) + payload


def test_each_framed_line_gets_the_type_in_force_when_it_is_queued(mq, fds):
    q = queue(mq, framing="line")
    fd = fds(q, os.O_WRONLY)
    fd.set_type(3)
    fd.write(b"a\nb\npar")
    fd.set_type(4)
    fd.write(b"t\nc\n")  # "part" is queued now, at its newline
    assert counts(q, "curmsgs") == (4,)
    # A batched read carries every message its selection takes; GET_DELIVERY tells the last one's type.
    assert (received(q, 3), received(q, 4)) == (["3:a\nb\n"], ["4:part\nc\n"])


def test_each_u32_frame_gets_the_type_in_force_when_it_is_queued(mq, fds):
    q = queue(mq, framing="u32")
    fd = fds(q, os.O_WRONLY)
    fd.set_type(3)
    fd.write(frame(b"one") + frame(b"two")[:5])
    fd.set_type(4)
    fd.write(frame(b"two")[5:])
    assert counts(q, "curmsgs") == (2,)
    assert (received(q, 3), received(q, 4)) == (["3:" + frame(b"one").decode()], ["4:" + frame(b"two").decode()])


def test_a_whole_file_message_gets_the_type_in_force_at_the_close(mq):
    q = queue(mq, framing="file")
    fd = Fd(q, os.O_WRONLY)
    fd.set_type(3)
    fd.write(b"begun at 3, ")
    fd.set_type(6)
    fd.write(b"closed at 6")
    fd.close()
    assert received(q) == ["6:begun at 3, closed at 6"]


# -- what MQFS_IOC_SET_SELECT selects, and in which order ------------------------------------------

SEED_QUEUE = ("1:t1", "5:t5", "3:t3", "10:t10", "2:t2", "5:u5", "1:u1")


def test_select_0_takes_any_type_in_queue_order(mq):
    q = queue(mq)
    send(q, *SEED_QUEUE)
    assert received(q, 0) == list(SEED_QUEUE)


def test_select_a_positive_type_takes_only_that_type(mq):
    q = queue(mq)
    send(q, *SEED_QUEUE)
    assert received(q, 5) == ["5:t5", "5:u5"]
    assert received(q, 4) == []
    assert counts(q, "curmsgs") == (5,)
    assert received(q, 0) == ["1:t1", "3:t3", "10:t10", "2:t2", "1:u1"]


def test_select_except_takes_every_type_but_that_one(mq):
    q = queue(mq)
    send(q, *SEED_QUEUE)
    assert received(q, 1, except_=1) == ["5:t5", "3:t3", "10:t10", "2:t2", "5:u5"]
    assert received(q, 0) == ["1:t1", "1:u1"]


def test_select_negative_takes_the_lowest_type_up_to_its_absolute_value_then_the_next_lowest(mq):
    q = queue(mq)
    send(q, *SEED_QUEUE)
    assert received(q, -5) == ["1:t1", "1:u1", "2:t2", "3:t3", "5:t5", "5:u5"]
    assert received(q, -9) == []
    assert received(q, -10) == ["10:t10"]


def test_a_lower_type_sent_between_reads_comes_first_for_a_negative_selection(mq, fds):
    q = queue(mq)
    send(q, "3:a", "3:b")
    fd = fds(q)
    fd.select(-3)
    assert fd.take() == "3:a"
    send(q, "2:c", "1:d", "4:e")
    assert fd.take_all() == ["1:d", "2:c", "3:b"]


def test_the_largest_types_select_as_any_other(mq):
    q = queue(mq)
    send(q, f"{TYPE_MAX}:max", "1:one", f"{TYPE_MAX - 1}:below")
    assert received(q, TYPE_MAX) == [f"{TYPE_MAX}:max"]
    assert received(q, -TYPE_MAX) == ["1:one", f"{TYPE_MAX - 1}:below"]


def test_within_a_selection_highest_priority_first_then_oldest(mq):
    q = queue(mq)
    send(q, "5/1:a", "3/9:x", "5/7:b", "5/7:c", "4/8:y", "5/0:d")
    assert received(q, 5) == ["5:b", "5:c", "5:a", "5:d"]
    assert received(q, 0) == ["3:x", "4:y"]


def test_except_takes_the_qualifying_messages_in_priority_order(mq):
    q = queue(mq)
    send(q, "5/1:a", "3/9:x", "5/7:b", "4/8:y", "5/9:skipped", "2/1:z")
    assert received(q, 5, except_=1) == ["3:x", "4:y", "2:z"]


def test_a_negative_selection_takes_the_lowest_type_first_then_priority_then_age(mq):
    q = queue(mq)
    send(q, "2/1:a", "1/0:b", "2/9:c", "1/5:d", "1/5:e", "3/9:f", "9/9:g")
    assert received(q, -3) == ["1:d", "1:e", "1:b", "2:c", "2:a", "3:f"]


def test_the_selection_is_per_descriptor_and_holds_until_changed(mq, fds):
    q = queue(mq)
    send(q, "1:a", "2:b", "1:c", "2:d", "3:e")
    ones, twos = fds(q), fds(q)
    ones.select(1)
    twos.select(2)
    assert [ones.take(), twos.take(), ones.take(), twos.take()] == ["1:a", "2:b", "1:c", "2:d"]
    assert errno_of(ones.read) == errno.EAGAIN
    ones.select(0)
    assert ones.take_all() == ["3:e"]


@pytest.mark.parametrize("message_type,except_,reserved", [(2, 2, 0), (2, -1, 0), (0, 1, 0), (-3, 1, 0), (5, 0, 1),
                                                           (5, 0, -1), (5, 1, 7)])
def test_a_bad_selection_is_einval_and_changes_nothing(mq, fds, message_type, except_, reserved):
    q = queue(mq)
    send(q, "1:a", "2:b", "3:c")
    fd = fds(q)
    fd.select(3)
    assert error_of(fd.select, message_type, except_, reserved) == errno.EINVAL
    assert fd.take_all() == ["3:c"]


def test_a_message_mode_descriptor_takes_one_qualifying_message_then_end_of_file(mq, fds):
    q = queue(mq)
    send(q, "1:a", "5:b", "5:c")
    fd = fds(q, mode=MESSAGE)
    fd.select(5)
    assert (fd.take(), fd.read()) == ("5:b", b"")
    assert received(q) == ["1:a", "5:c"]


def test_a_nonblocking_read_with_only_other_types_queued_is_eagain(mq, fds):
    q = queue(mq)
    send(q, "3:a", "4:b")
    fd = fds(q)
    for selection in ((5, 0), (-2, 0), (6, 0)):
        fd.select(*selection)
        assert errno_of(fd.read) == errno.EAGAIN, selection
    assert counts(q, "curmsgs") == (2,)


def test_curmsgs_curbytes_and_maxmsg_count_every_message_whatever_the_selection(mq, fds):
    q = queue(mq, maxmsg=3)
    send(q, "3:aa", "3:bbb", "4:c")
    fd = fds(q)
    fd.select(4)
    assert counts(q, "curmsgs", "curbytes") == (3, 6)
    assert os.fstat(fd.fd).st_size == 6
    assert error_of(send, q, "4:full") == errno.EAGAIN  # maxmsg counts the type-3 messages too
    assert fd.take() == "4:c"
    assert counts(q, "curmsgs", "curbytes", "received") == (2, 5, 1)
    assert errno_of(fd.read) == errno.EAGAIN
    send(q, "4:room")


# -- what the selection governs: stream, framed batches, peeking ----------------------------------

def test_a_stream_read_returns_only_qualifying_messages_in_order(mq, fds):
    q = queue(mq)
    send(q, "5/1:a", "3/9:x", "5/7:b", "6:y")
    fd = fds(q)
    fd.select(-5)
    assert [fd.read(), fd.read(), fd.read()] == [b"x", b"b", b"a"]
    assert errno_of(fd.read) == errno.EAGAIN
    assert received(q) == ["6:y"]


@pytest.mark.parametrize("framing", ["line", "u32"])
def test_a_framed_batch_read_carries_only_qualifying_messages_in_the_selections_order(mq, fds, framing):
    q = queue(mq, framing=framing)
    encode = (lambda text: text + b"\n") if framing == "line" else frame
    writer = fds(q, os.O_WRONLY)
    for message_type, priority, text in ((5, 0, b"a"), (3, 0, b"x"), (5, 4, b"b"), (7, 9, b"y"), (5, 0, b"c"),
                                         (2, 0, b"z")):
        writer.set_type(message_type)
        writer.set_priority(priority)
        writer.write(encode(text))
    fd = fds(q)
    fd.select(5)
    assert fd.read() == b"".join(encode(t) for t in (b"b", b"a", b"c"))  # one read, three messages
    assert errno_of(fd.read) == errno.EAGAIN
    fd.select(-6)
    assert fd.read() == b"".join(encode(t) for t in (b"z", b"x"))
    fd.select(0)
    assert fd.read() == encode(b"y")
    assert counts(q, "curmsgs") == (0,)


def test_peek_shows_only_qualifying_messages_in_the_selections_order_and_takes_nothing(mq, fds):
    q = queue(mq)
    send(q, "2/1:a", "1:b", "2/9:c", "7:d", "1/5:e")
    fd = fds(q, mode=PEEK)
    fd.select(-2)
    assert [fd.take() for _ in range(5)] == ["1:e", "1:b", "2:c", "2:a", ""]
    peek = fds(q, mode=PEEK)
    peek.select(2)
    assert [peek.take() for _ in range(3)] == ["2:c", "2:a", ""]
    peek = fds(q, mode=PEEK)
    peek.select(2, except_=1)
    assert [peek.take() for _ in range(4)] == ["1:e", "1:b", "7:d", ""]
    assert counts(q, "curmsgs", "received") == (5, 0)


# -- blocking and waking ---------------------------------------------------------------------------

def test_a_selective_reader_waits_while_only_other_types_are_queued_and_wakes_for_its_type(mq, procs):
    q = queue(mq)
    send(q, "3:a", "3:b")
    reader = waiting_reader(procs, q, 5)
    assert_still_blocked(reader, SYS_READ)
    send(q, "3:c", "4/9:d", "6:e")
    assert_still_blocked(reader, SYS_READ)
    send(q, "5/2:five")
    assert got(reader) == ["5 2 five"]
    assert counts(q, "curmsgs") == (5,)


def test_a_recv_timeout_with_only_other_types_queued_is_etimedout(mq):
    q = queue(mq, recv_timeout_ms=300)
    send(q, "3:a")
    start = time.monotonic()
    status, lines = type_check("recv", q, "5")
    elapsed = time.monotonic() - start
    assert (status, lines) == (1, ["recv ERR ETIMEDOUT"])
    assert elapsed >= 0.29
    assert received(q) == ["3:a"]


@pytest.mark.parametrize("selection,other,wanted", [("-4", "7:over", "4:four"), ("^5", "5:five", "6:six"),
                                                    ("0", None, "9:any")])
def test_negative_except_and_any_readers_wait_for_a_qualifying_message(mq, procs, selection, other, wanted):
    q = queue(mq)
    if other:
        send(q, other)
    reader = waiting_reader(procs, q, selection)
    if other:
        send(q, other)
        assert_still_blocked(reader, SYS_READ)
    send(q, wanted)
    message_type, text = wanted.split(":")
    assert got(reader) == [f"{message_type} 0 {text}"]


def test_a_reader_waiting_for_type_5_does_not_hold_back_a_later_reader_of_type_3(mq, procs):
    q = queue(mq)
    fives = waiting_reader(procs, q, 5)
    threes = waiting_reader(procs, q, 3)
    send(q, "3:three")
    only_served(threes, [fives, threes])
    assert got(threes) == ["3 0 three"]
    send(q, "5:five")
    assert got(fives) == ["5 0 five"]
    assert counts(q, "curmsgs") == (0,)


def test_a_message_goes_to_the_first_waiting_reader_whose_selection_takes_it(mq, procs):
    q = queue(mq)
    waiting = [waiting_reader(procs, q, selection) for selection in ("5", "3", "0", "5", "-4")]
    first_five, three, anything, second_five, up_to_four = waiting
    for message, served in (("5:x", first_five), ("5:y", anything), ("2:z", up_to_four), ("3:w", three),
                            ("5:v", second_five)):
        send(q, message)
        only_served(served, waiting)
        message_type, text = message.split(":")
        assert got(served) == [f"{message_type} 0 {text}"]
        waiting.remove(served)
    assert counts(q, "curmsgs") == (0,)


def test_a_waiting_selective_reader_takes_each_qualifying_message_as_it_comes(mq, procs):
    q = queue(mq)
    reader = waiting_reader(procs, q, 2, count=3)
    out = LineReader(reader)
    for n in range(3):
        send(q, f"1:other{n}", f"2:mine{n}")
        assert out.line(timeout=5, what="the reader to take its message") == f"2 0 mine{n}"
    assert finish(reader)[0] == 0
    assert received(q) == ["1:other0", "1:other1", "1:other2"]


# -- poll and epoll --------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["poll", "epoll"])
def test_readiness_follows_the_selection(mq, fds, mechanism):
    q = queue(mq)
    send(q, "7:seven")
    fd = fds(q)
    if mechanism == "poll":
        readable = fd.readable
    else:
        ep = select.epoll()
        ep.register(fd.fd, select.EPOLLIN)

        def readable():
            return any(events & select.EPOLLIN for _, events in ep.poll(0))
    try:
        for selection, expected in (((5, 0), False), ((-6, 0), False), ((-7, 0), True), ((7, 1), False),
                                    ((5, 1), True), ((7, 0), True), ((0, 0), True)):
            fd.select(*selection)
            assert readable() == expected, selection
        fd.select(5)
        send(q, "3:three")
        assert not readable()
        send(q, "5:five")
        assert readable()
        assert fd.take() == "5:five"
        assert not readable()
    finally:
        if mechanism == "epoll":
            ep.close()


def test_a_poll_waiting_for_type_5_wakes_only_for_type_5(mq, procs):
    q = queue(mq)
    send(q, "3:early")
    poller = procs.start([program("type_check"), "poll", q, "5", "20000"], text=True)
    out = LineReader(poller)
    assert out.line(what="type_check to poll") == "waiting"
    wait_sleeping_in(poller, POLL_SYSCALLS, what="the poll to wait")
    send(q, "3:a", "4:b", "6:c")
    assert out.maybe_line(0.3) is None, "poll returned for messages of other types"
    assert sleeping_in(poller.pid, POLL_SYSCALLS)
    send(q, "5:five")
    assert out.line(timeout=5, what="the poll to wake") == "poll IN"
    assert finish(poller)[0] == 0


# -- leases and dead letters -----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["nack", "close", "expiry"])
def test_a_leased_typed_message_keeps_its_type_and_comes_back_selectable_by_it(mq, fds, how):
    q = queue(mq, lease_ms=1000 if how == "expiry" else 30000)
    send(q, "3:a", "5/4:b", "5:c")
    holder = fds(q).explicit()
    holder.select(5)
    assert holder.take() == "5:b"
    assert holder.delivery()[:3] == (5, 4, 1)
    assert counts(q, "curmsgs", "inflight") == (2, 1)
    assert received(q, 5) == ["5:c"]  # the leased one is not selectable meanwhile
    if how == "nack":
        holder.nack()
    elif how == "close":
        holder.close()
    wait_until(lambda: counts(q, "inflight") == (0,), what=f"the message to come back after {how}")
    again = fds(q)
    again.select(5)
    assert again.take() == "5:b"
    assert again.delivery()[:3] == (5, 4, 2)
    assert received(q, 5) == [] and received(q) == ["3:a"]


def test_a_waiting_selective_reader_gets_a_returned_message_of_its_type(mq, fds, procs):
    q = queue(mq)
    send(q, "5:back", "3:other")
    holder = fds(q).explicit()
    holder.select(5)
    assert holder.take() == "5:back"
    reader = waiting_reader(procs, q, 5)
    holder.nack()
    assert got(reader) == ["5 0 back"]
    assert received(q) == ["3:other"]


def test_a_dead_letter_keeps_its_type(mq, fds):
    dead = queue(mq, "dead")
    q = queue(mq, max_deliveries=1, dead_letter="dead")
    send(q, "7/3:poison", "2:fine")
    holder = fds(q).explicit()
    holder.select(7)
    assert holder.take() == "7:poison"
    holder.nack()
    assert counts(q, "dead_lettered", "curmsgs", "inflight") == (1, 1, 0)
    assert received(dead, 1) == []
    moved = fds(dead)
    moved.select(7)
    assert moved.take() == "7:poison"
    assert moved.delivery()[:2] == (7, 3)
    assert received(q) == ["2:fine"]


# -- durable: -o store=DIR -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_types_order_and_the_queues_type_survive_a_restart(mount_mqfs, procs, tmp_path, how):
    m = mount_mqfs(f"store={tmp_path}/store", "type=4")
    q, held = queue(m, type=9), queue(m, "held")
    send(q, "3/1:a", "1:b", "3:c", "2/5:d", "3/1:e")
    put(q, b"f")  # the queue's type
    put(held, b"leased")  # the mount's type
    send(held, "6:next")
    holder = procs.start([program("lease_check"), held, "open:rn", "ack-mode:1", "read-mode:1", "read", "delivery",
                          "sleep:60000"], text=True)
    out = LineReader(holder)
    lines = [out.line(what="the holder to lease") for _ in range(5)]
    assert lines[:4] == ["open OK", "ack-mode OK", "read-mode OK", "read OK " + b"leased".hex()], lines
    assert lines[4].split(" ")[2] == "4", lines  # its type
    if how == "sigkill":
        kill_daemon(m)
    else:
        assert m.stop() == 0, m.read_log()
    holder.kill()  # it outlived its daemon
    m.start(timeout=30)
    assert (attr(q, "type"), attr(held, "type")) == ("9", "4")
    assert received(q, 3) == ["3:a", "3:e", "3:c"]
    assert received(q, -100) == ["1:b", "2:d", "9:f"]
    assert received(held, 4) == ["4:leased"]
    assert received(held) == ["6:next"]


# -- System V patterns in C ------------------------------------------------------------------------

SEED_TRANSCRIPT = [
    "msgrcv(1): type 1: Type 1 message",
    "msgrcv(1): type 1: Another type 1",
    "msgrcv(2): type 2: Type 2 message",
    "msgrcv(5): type 5: message of type 5",
    "msgrcv(-10): type 1: message of type 1",
    "msgrcv(0): type 3: message of type 3",
    "msgrcv(-10): type 2: message of type 2",
    "msgrcv(-10): type 10: message of type 10",
    "msgrcv(0, IPC_NOWAIT): EAGAIN",
    "msgrcv(2): type 2: Error occurred",
    "msgrcv(2, IPC_NOWAIT): EAGAIN",
    "msgrcv(-2): type 1: Log message",
    "msgrcv(-2, IPC_NOWAIT): EAGAIN",
    "msgrcv(3, MSG_EXCEPT|IPC_NOWAIT): EAGAIN",
    "msgrcv(2, MSG_EXCEPT): type 3: Metric data",
]


def test_the_seeds_msgrcv_examples_in_c(mq):
    q = queue(mq)
    status, lines = type_check("seed", q)
    assert (status, lines) == (0, SEED_TRANSCRIPT)
    assert counts(q, "curmsgs", "sent", "received") == (0, 11, 11)


def test_c_msgsnd_and_msgrcv_interoperate_with_python(mq):
    q = queue(mq)
    assert type_check("send", q, "4/2:from c", "1:plain", "4:again") == (0, ["send OK 3"])
    assert type_check("recv", "-n", q, "4", "2") == (0, ["4 2 from c", "4 0 again"])
    assert type_check("recv", "-n", q, "4") == (1, ["recv ERR EAGAIN"])
    send(q, "8:from python")
    assert type_check("recv", "-n", q, "^1") == (0, ["8 0 from python"])
    assert received(q) == ["1:plain"]


def test_ping_pong_of_two_processes_on_one_queue_by_type(mq):
    q = queue(mq)
    assert type_check("pingpong", q, "200", timeout=120) == (0, ["pingpong OK 200"])
    assert counts(q, "curmsgs", "sent", "received") == (0, 401, 401)
