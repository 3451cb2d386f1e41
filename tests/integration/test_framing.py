"""Framing modes (SPEC section 7): one write or read carries many messages."""
import contextlib
import errno
import os
import signal
import struct
import subprocess
import time

import pytest

from helpers import wait_until


@contextlib.contextmanager
def deadline(seconds):
    """Ends a blocking call in this process after `seconds` (SIGALRM)."""
    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds}s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def frames(*payloads):
    return b"".join(struct.pack("<I", len(p)) + p for p in payloads)


def unframe(data):
    out = []
    while data:
        (n,) = struct.unpack_from("<I", data)
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


def framed_queue(mq, name, framing, **attrs):
    open(mq / name, "w").close()
    mq.setattr(name, "framing", framing)
    for key, value in attrs.items():
        mq.setattr(name, key, value)
    return mq / name


def drain(path, size=65536):
    """Reads with O_NONBLOCK until EAGAIN; returns the reads' results."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    reads = []
    try:
        while True:
            try:
                reads.append(os.read(fd, size))
            except BlockingIOError:
                return reads
    finally:
        os.close(fd)


def test_seq_enqueues_one_message_per_line_and_stream_cat_drains_them_in_large_reads(mount_mqfs):
    mq = mount_mqfs("maxmsg=200000")
    q = framed_queue(mq, "q", "line")
    mq.sh("seq 100000 > q", timeout=60)
    assert mq.getattr("q", "curmsgs") == "100000"
    mq.setattr("q", "read_mode", "stream")
    reads = drain(q)
    assert b"".join(reads) == b"".join(b"%d\n" % i for i in range(1, 100001))
    assert len(reads) < 100  # many messages per read
    assert all(r.endswith(b"\n") for r in reads)  # never a part of a line
    assert mq.getattr("q", "received") == "100000"


def test_line_message_mode_delivers_one_line_then_end_of_file(mq):
    framed_queue(mq, "q", "line")
    mq.sh("printf 'first\\nsecond\\n' > q")
    assert mq.sh("cat q").stdout == "first\n"
    assert mq.sh("cat q").stdout == "second\n"


def test_an_unfinished_line_waits_for_its_end_or_for_close(mq):
    q = framed_queue(mq, "q", "line")
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"hel")
    assert mq.getattr("q", "curmsgs") == "0"
    os.write(fd, b"lo\nwor")
    assert mq.getattr("q", "curmsgs") == "1"
    os.close(fd)  # the rest is sent as it is
    assert mq.getattr("q", "curmsgs") == "2"
    assert [mq.sh("cat q").stdout for _ in range(2)] == ["hello\n", "wor"]


def test_a_line_longer_than_msgsize_fails_after_the_lines_before_it(mq):
    q = framed_queue(mq, "q", "line", msgsize=8)
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    data = b"ok\nfine\n" + b"x" * 20 + b"\nlater\n"
    assert os.write(fd, data) == len(b"ok\nfine\n")  # a short write
    with pytest.raises(OSError) as e:
        os.write(fd, data[8:])
    assert e.value.errno == errno.EMSGSIZE
    os.close(fd)
    assert mq.getattr("q", "curmsgs") == "2"


def test_u32_frames_round_trip_and_reads_return_whole_frames_only(mq):
    q = framed_queue(mq, "q", "u32", read_mode="stream")
    payloads = [b"a", b"bb" * 50, b"d" * 300]
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    data = frames(*payloads)
    assert os.write(fd, data) == len(data)
    os.close(fd)
    r = os.open(q, os.O_RDONLY | os.O_NONBLOCK)
    with pytest.raises(OSError) as e:
        os.read(r, 3)  # smaller than the next frame
    assert e.value.errno == errno.EMSGSIZE
    assert mq.getattr("q", "curmsgs") == "3"  # nothing taken
    first = os.read(r, 4 + 1 + 4 + 100 + 10)  # two frames fit, not the third
    assert unframe(first) == payloads[:2]
    assert unframe(os.read(r, 65536)) == payloads[2:]
    os.close(r)


def test_u32_frame_split_across_writes_and_zero_length_refused(mq):
    q = framed_queue(mq, "q", "u32")
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    data = frames(b"split me")
    for i in range(len(data)):
        assert os.write(fd, data[i:i + 1]) == 1
    assert mq.getattr("q", "curmsgs") == "1"
    with pytest.raises(OSError) as e:
        os.write(fd, frames(b""))
    assert e.value.errno == errno.EINVAL
    os.close(fd)
    assert mq.getattr("q", "curmsgs") == "1"


def test_nonblocking_framed_write_queues_what_fits_and_reports_the_bytes(mq):
    q = framed_queue(mq, "q", "u32", maxmsg=3)
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    data = frames(b"1", b"2", b"3", b"4", b"5")
    assert os.write(fd, data) == 3 * 5
    with pytest.raises(BlockingIOError):
        os.write(fd, data[15:])
    os.close(fd)
    assert mq.getattr("q", "curmsgs") == "3"


def test_blocking_framed_write_waits_until_every_message_is_queued(mq):
    framed_queue(mq, "q", "line", maxmsg=2)
    writer = subprocess.Popen(["bash", "-c", "seq 10 > q"], cwd=mq.path)
    wait_until(lambda: mq.getattr("q", "curmsgs") == "2", what="the queue to fill")
    assert writer.poll() is None  # blocked with messages still to go
    got = [mq.sh("timeout 5 cat q").stdout for _ in range(10)]
    assert got == [f"{i}\n" for i in range(1, 11)]
    assert writer.wait(timeout=10) == 0


def test_interrupted_framed_write_reports_what_was_queued(mq):
    framed_queue(mq, "q", "line", maxmsg=2, send_timeout_ms=200)
    prog = ("import os\n"
            "fd = os.open('q', os.O_WRONLY)\n"
            "print(os.write(fd, b'a\\nb\\nc\\nd\\n'))\n")
    result = mq.sh(f"timeout 10 python3 -c \"{prog}\"")
    assert result.stdout == "4\n"  # two lines queued, then the timeout: a short write
    assert mq.getattr("q", "curmsgs") == "2"


def test_framed_write_with_timeout_and_nothing_queued_fails_with_etimedout(mq):
    q = framed_queue(mq, "q", "u32", maxmsg=1, send_timeout_ms=100)
    fd = os.open(q, os.O_WRONLY)
    with deadline(10):
        os.write(fd, frames(b"fill"))
    start = time.monotonic()
    with pytest.raises(OSError) as e, deadline(10):
        os.write(fd, frames(b"more"))
    assert e.value.errno == errno.ETIMEDOUT
    assert time.monotonic() - start >= 0.09
    os.close(fd)
    assert mq.getattr("q", "curmsgs") == "1"


def test_unfinished_line_closed_on_a_full_queue_is_sent_when_room_comes(mq):
    framed_queue(mq, "q", "line", maxmsg=1)
    mq.sh("echo first > q")
    mq.sh("printf tail > q")  # close with the queue full: the line waits for room
    assert mq.sh("timeout 5 cat q").stdout == "first\n"
    assert mq.sh("timeout 5 cat q").stdout == "tail"


def test_a_held_line_ends_as_a_message_when_framing_changes(mq):
    # The held line looks like the start of a longer u32 frame: it must not
    # be read as one (this once crashed the daemon).
    q = framed_queue(mq, "q", "line")
    fd = os.open(q, os.O_WRONLY)
    try:
        os.write(fd, b"\x01\0\0\0xyz")
        mq.setattr("q", "framing", "u32")
        os.write(fd, b"\x02\0")  # the first half of the next frame's header
        assert mq.getattr("q", "curmsgs") == "1"
        os.write(fd, b"\0\0ok")
    finally:
        os.close(fd)
    mq.setattr("q", "framing", "none")
    assert [mq.sh("timeout 5 cat q").stdout.encode("latin-1") for _ in range(2)] == [b"\x01\0\0\0xyz", b"ok"]


def test_framing_attribute_values(mq):
    mq.sh("touch q")
    assert mq.getattr("q", "framing") == "none"
    with pytest.raises(OSError) as e:
        mq.setattr("q", "framing", "lines")
    assert e.value.errno == errno.EINVAL
    assert mq.getattr("q", "framing") == "none"


def test_framing_mount_option_sets_the_default(mount_mqfs):
    mq = mount_mqfs("framing=line")
    mq.sh("printf 'a\\nb\\n' > q")
    assert mq.getattr("q", "curmsgs") == "2"
