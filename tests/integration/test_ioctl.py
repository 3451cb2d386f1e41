"""SPEC section 6: per-descriptor control through the ioctls of mqfs.h,
from C (tests/programs/ioctl_check.c, which uses the header itself) and
from Python's fcntl.ioctl.

Python's descriptors here are non-blocking, so no call can wait.
"""
import errno
import fcntl
import os
import struct
import subprocess
import sys

import pytest

from helpers import LineReader, drain, program


def _ioc(direction, kind, nr, size):
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2
MQFS_IOC_SET_PRIORITY = _ioc(_IOC_WRITE, "M", 1, 4)
MQFS_IOC_SET_READ_MODE = _ioc(_IOC_WRITE, "M", 2, 4)
ATTR_FIELDS = ("flags", "maxmsg", "msgsize", "curmsgs", "curbytes", "priority", "read_mode", "framing")
ATTR_FORMAT = "16q"  # eight int64 fields and eight reserved
MQFS_IOC_GET_ATTR = _ioc(_IOC_READ, "M", 3, struct.calcsize(ATTR_FORMAT))


def set_priority(fd, value):
    fcntl.ioctl(fd, MQFS_IOC_SET_PRIORITY, struct.pack("i", value))


def set_read_mode(fd, value):
    fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", value))


def get_attr(fd):
    raw = fcntl.ioctl(fd, MQFS_IOC_GET_ATTR, bytes(struct.calcsize(ATTR_FORMAT)))
    return dict(zip(ATTR_FIELDS, struct.unpack(ATTR_FORMAT, raw)))


def read_all(fd):
    out = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not data:
            return out
        out.append(data.decode())


@pytest.fixture
def fds():
    opened = []

    def open_(path, flags):
        fd = os.open(path, flags | os.O_NONBLOCK)
        opened.append(fd)
        return fd

    yield open_
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


def test_c_program_checks_the_header_contract(mq):
    mq.sh("touch q")
    result = subprocess.run([program("ioctl_check"), mq / "q"], capture_output=True, text=True, timeout=30)
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") >= 50


def test_python_request_numbers_match_the_header():
    result = subprocess.run([program("ioctl_check"), "--numbers"], capture_output=True, text=True, timeout=10)
    numbers = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert int(numbers["MQFS_IOC_SET_PRIORITY"]) == MQFS_IOC_SET_PRIORITY
    assert int(numbers["MQFS_IOC_SET_READ_MODE"]) == MQFS_IOC_SET_READ_MODE
    assert int(numbers["MQFS_IOC_GET_ATTR"]) == MQFS_IOC_GET_ATTR
    assert int(numbers["sizeof(struct mqfs_attr)"]) == struct.calcsize(ATTR_FORMAT)


def test_priority_is_per_descriptor(mq, fds):
    mq.sh("touch q")
    low, high, reader = fds(mq / "q", os.O_WRONLY), fds(mq / "q", os.O_WRONLY), fds(mq / "q", os.O_RDONLY)
    set_priority(low, 1)
    set_priority(high, 20)
    assert (get_attr(low)["priority"], get_attr(high)["priority"], get_attr(reader)["priority"]) == (1, 20, 0)
    assert mq.getattr("q", "priority") == "0"
    for i in range(3):
        os.write(low, f"low{i}".encode())
        os.write(high, f"high{i}".encode())
    shared = os.dup(high)  # the same open file: the same priority
    try:
        os.write(shared, b"high-dup")
    finally:
        os.close(shared)
    set_read_mode(reader, 1)
    assert read_all(reader) == ["high0", "high1", "high2", "high-dup", "low0", "low1", "low2"]


WRITER = r"""
import fcntl, os, struct, sys
path, prio, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY)
fcntl.ioctl(fd, %d, struct.pack("i", prio))
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    os.write(fd, f"p{prio}-{i}".encode())
print("done", flush=True)
""" % MQFS_IOC_SET_PRIORITY


def test_priorities_are_race_free_with_concurrent_writers(mount_mqfs, procs):
    """Two processes write at the same time, each at its own descriptor's
    priority; every message carries the priority of its own writer."""
    mq = mount_mqfs("maxmsg=5000")
    mq.sh("touch q")
    count = 1500
    writers = [procs.start([sys.executable, "-c", WRITER, mq / "q", str(p), str(count)], stdin=subprocess.PIPE)
               for p in (2, 9)]
    outs = [LineReader(w) for w in writers]
    for out in outs:
        assert out.line() == "ready"
    for w in writers:
        w.stdin.write(b"go\n")
        w.stdin.flush()
    for w, out in zip(writers, outs):
        assert out.line(timeout=60) == "done"
        w.stdin.close()
        assert w.wait(timeout=10) == 0
    messages = drain(mq / "q")
    assert messages == [f"p9-{i}" for i in range(count)] + [f"p2-{i}" for i in range(count)]


def test_minus_one_returns_to_the_queue_priority_and_follows_it(mq, fds):
    mq.sh("touch q")
    mq.setattr("q", "priority", 4)
    w, reader = fds(mq / "q", os.O_WRONLY), fds(mq / "q", os.O_RDONLY)
    set_priority(w, 30)
    assert get_attr(w)["priority"] == 30
    set_priority(w, -1)
    assert get_attr(w)["priority"] == 4
    mq.setattr("q", "priority", 11)
    assert get_attr(w)["priority"] == 11
    os.write(w, b"at-11")
    mq.setattr("q", "priority", 12)
    os.write(w, b"at-12")
    set_read_mode(reader, 1)
    assert read_all(reader) == ["at-12", "at-11"]


@pytest.mark.parametrize("value", [32768, -2, -32768, 2**31 - 1, -2**31, 65535])
def test_out_of_range_priority_is_einval_and_changes_nothing(mq, fds, value):
    mq.sh("touch q")
    w = fds(mq / "q", os.O_WRONLY)
    set_priority(w, 32767)
    with pytest.raises(OSError) as e:
        set_priority(w, value)
    assert e.value.errno == errno.EINVAL
    assert get_attr(w)["priority"] == 32767


def test_priority_bounds_are_accepted(mq, fds):
    mq.sh("touch q")
    w, reader = fds(mq / "q", os.O_WRONLY), fds(mq / "q", os.O_RDONLY)
    set_priority(w, 0)
    os.write(w, b"p0")
    set_priority(w, 32767)
    os.write(w, b"p32767")
    set_read_mode(reader, 1)
    assert read_all(reader) == ["p32767", "p0"]


def test_read_mode_is_per_descriptor(mq, fds):
    mq.sh("touch q")
    for i in range(4):
        mq.sh(f"echo m{i} > q")
    streaming, single = fds(mq / "q", os.O_RDONLY), fds(mq / "q", os.O_RDONLY)
    set_read_mode(streaming, 1)
    assert (get_attr(streaming)["read_mode"], get_attr(single)["read_mode"]) == (1, 0)
    assert os.read(streaming, 100) == b"m0\n"
    assert os.read(streaming, 100) == b"m1\n"
    assert os.read(single, 100) == b"m2\n"
    assert os.read(single, 100) == b""  # message mode: end of file
    assert os.read(streaming, 100) == b"m3\n"
    with pytest.raises(BlockingIOError):
        os.read(streaming, 100)


def test_read_mode_switches_both_ways_and_back_to_default(mq, fds):
    mq.sh("touch q")
    mq.setattr("q", "read_mode", "stream")
    for i in range(5):
        mq.sh(f"echo m{i} > q")
    r = fds(mq / "q", os.O_RDONLY)
    assert get_attr(r)["read_mode"] == 1
    assert os.read(r, 100) == b"m0\n"
    set_read_mode(r, 0)
    assert get_attr(r)["read_mode"] == 0
    # Message mode now, and this file already delivered a message: end of file.
    assert os.read(r, 100) == b""
    set_read_mode(r, -1)  # the queue's default: stream again
    assert get_attr(r)["read_mode"] == 1
    assert os.read(r, 100) == b"m1\n"
    mq.setattr("q", "read_mode", "message")
    assert get_attr(r)["read_mode"] == 0  # -1 follows the queue
    r2 = fds(mq / "q", os.O_RDONLY)
    set_read_mode(r2, 1)
    assert read_all(r2) == ["m2\n", "m3\n", "m4\n"]


@pytest.mark.parametrize("value", [-2, 3, 2**31 - 1])  # 2 is MQFS_READ_PEEK
def test_bad_read_mode_is_einval_and_changes_nothing(mq, fds, value):
    mq.sh("touch q")
    r = fds(mq / "q", os.O_RDONLY)
    set_read_mode(r, 1)
    with pytest.raises(OSError) as e:
        set_read_mode(r, value)
    assert e.value.errno == errno.EINVAL
    assert get_attr(r)["read_mode"] == 1


def test_get_attr_reports_the_queue_and_the_descriptor(mount_mqfs, fds):
    mq = mount_mqfs("maxmsg=7", "msgsize=100")
    mq.sh("touch q")
    mq.setattr("q", "priority", 3)
    w = fds(mq / "q", os.O_WRONLY)
    os.write(w, b"12345")
    os.write(w, b"abc")
    blocking = os.open(mq / "q", os.O_RDONLY)  # flags are checked in the next test
    try:
        set_read_mode(blocking, 1)
        attr = get_attr(blocking)
    finally:
        os.close(blocking)
    assert attr == {"flags": 0, "maxmsg": 7, "msgsize": 100, "curmsgs": 2, "curbytes": 8,
                    "priority": 3, "read_mode": 1, "framing": 0}
    for name in ("maxmsg", "msgsize", "curmsgs", "curbytes", "priority"):
        assert get_attr(w)[name] == int(mq.getattr("q", name))
    mq.setattr("q", "framing", "u32")
    assert get_attr(w)["framing"] == 2
    mq.setattr("q", "framing", "line")
    assert get_attr(w)["framing"] == 1
    mq.setattr("q", "maxmsg", 9)
    assert get_attr(w)["maxmsg"] == 9


def test_get_attr_flags_show_the_descriptors_o_nonblock(mq):
    """mqfs_attr.flags is the descriptor's O_NONBLOCK (as mq_attr.mq_flags).

    Set at open, it must show at once. Changed later with fcntl(F_SETFL),
    the daemon hears of it with the descriptor's next read or write (FUSE
    passes the file's flags with those, not with the ioctl), so each change
    here is followed by one I/O call before GET_ATTR."""
    mq.sh("touch q")
    blocking = os.open(mq / "q", os.O_RDWR)
    nonblocking = os.open(mq / "q", os.O_RDWR | os.O_NONBLOCK)
    try:
        assert get_attr(blocking)["flags"] == 0
        assert get_attr(nonblocking)["flags"] == os.O_NONBLOCK
        os.set_blocking(blocking, False)
        with pytest.raises(BlockingIOError):
            os.read(blocking, 100)  # empty queue: EAGAIN, and the daemon saw O_NONBLOCK
        assert get_attr(blocking)["flags"] == os.O_NONBLOCK
        os.set_blocking(nonblocking, True)
        assert os.write(nonblocking, b"x") == 1  # room: does not block
        assert get_attr(nonblocking)["flags"] == 0
    finally:
        os.close(blocking)
        os.close(nonblocking)


@pytest.mark.parametrize("request_", [_ioc(0, "M", 0, 0), _ioc(0, "M", 77, 0), _ioc(_IOC_WRITE, "M", 1, 8),
                                      _ioc(_IOC_READ, "M", 1, 4), _ioc(_IOC_WRITE, "Z", 1, 4), 0x5401],
                         ids=["M0", "M77", "SET_PRIORITY-int64", "read-of-1", "other-magic", "TCGETS"])
def test_unknown_ioctl_is_enotty(mq, fds, request_):
    mq.sh("touch q")
    fd = fds(mq / "q", os.O_RDWR)
    with pytest.raises(OSError) as e:
        fcntl.ioctl(fd, request_, bytes(8))
    assert e.value.errno == errno.ENOTTY
    assert not os.isatty(fd)
    assert get_attr(fd)["curmsgs"] == 0  # the file still works


def test_ioctl_on_the_mount_root_is_enotty(mq):
    fd = os.open(mq.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as e:
            get_attr(fd)
        assert e.value.errno == errno.ENOTTY
    finally:
        os.close(fd)
