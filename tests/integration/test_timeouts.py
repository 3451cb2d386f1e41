"""SPEC section 4, timeouts: user.mq.recv_timeout_ms and send_timeout_ms
bound a blocked read or write like mq_timedreceive/mq_timedsend; when the
time passes the call fails with ETIMEDOUT and nothing was taken or queued.
0 (the default) waits for ever. Deadlines are kept on the monotonic clock.

Each call is timed inside the C program (qio) around the one system call.
Bounds: no earlier than the timeout (less LOW_SLACK ms for clock
granularity), no later than the timeout plus HIGH_SLACK ms (a loaded 2-core
machine).
"""
import os
import re
import signal
import subprocess
import time

import pytest

from helpers import (LineReader, SYS_READ, SYS_WRITE, counters, drain, fill, finish, parse_qio_read,
                     parse_qio_write, program, wait_blocked, wait_until)

LOW_SLACK = 20
HIGH_SLACK = 1000


def assert_about(ms, timeout_ms):
    assert timeout_ms - LOW_SLACK <= ms <= timeout_ms + HIGH_SLACK, f"{ms} ms for a {timeout_ms} ms timeout"


def _read_once(mq, procs, name="q"):
    qio = procs.qio(mq / name, "open:r", "read")
    out = LineReader(qio)
    assert out.line() == "open OK"
    return qio, out


def test_recv_timeout_gives_etimedout_and_takes_nothing(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 500)
    qio, out = _read_once(mq, procs)
    kind, err, ms = parse_qio_read(out.line())
    assert (kind, err) == ("ERR", "ETIMEDOUT")
    assert_about(ms, 500)
    assert finish(qio)[0] == 0
    assert counters(mq / "q") == {"curmsgs": 0, "sent": 0, "received": 0}
    mq.sh("echo later > q")
    assert counters(mq / "q")["curmsgs"] == 1
    assert mq.sh("timeout 10 cat q").stdout == "later\n"


def test_cat_reports_the_timeout(mq):
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 300)
    t0 = time.monotonic()
    result = mq.sh("timeout 10 cat q", check=False)
    elapsed = (time.monotonic() - t0) * 1000
    assert result.returncode == 1
    assert "timed out" in result.stderr
    assert_about(elapsed, 300)


def test_send_timeout_gives_etimedout_and_queues_nothing(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 2)
    fill(mq / "q", ["m0", "m1"])
    mq.setattr("q", "send_timeout_ms", 500)
    qio = procs.qio(mq / "q", "open:w", "write:extra")
    out = LineReader(qio)
    assert out.line() == "open OK"
    kind, err, ms = parse_qio_write(out.line())
    assert (kind, err) == ("ERR", "ETIMEDOUT")
    assert_about(ms, 500)
    assert finish(qio)[0] == 0
    assert counters(mq / "q") == {"curmsgs": 2, "sent": 2, "received": 0}
    # Room now: the timed-out message must not slip in.
    assert mq.sh("timeout 10 cat q").stdout == "m0"
    assert counters(mq / "q")["curmsgs"] == 1
    assert drain(mq / "q") == ["m1"]


def test_message_before_the_deadline_is_received(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 3000)
    qio, out = _read_once(mq, procs)
    wait_blocked(qio, SYS_READ)
    mq.sh("echo in-time > q")
    kind, data, ms = parse_qio_read(out.line())
    assert (kind, data) == ("OK", "in-time\n")
    assert ms < 3000


def test_room_before_the_deadline_lets_the_write_in(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    fill(mq / "q", ["m0"])
    mq.setattr("q", "send_timeout_ms", 3000)
    qio = procs.qio(mq / "q", "open:w", "write:m1")
    out = LineReader(qio)
    assert out.line() == "open OK"
    wait_blocked(qio, SYS_WRITE)
    assert mq.sh("timeout 10 cat q").stdout == "m0"
    kind, n, ms = parse_qio_write(out.line())
    assert (kind, n) == ("OK", 2) and ms < 3000
    assert drain(mq / "q") == ["m1"]


def test_each_waiter_has_its_own_deadline(mq, procs):
    """Waiters on three queues with different timeouts; the earliest one is
    answered by a message, the others time out each at its own time."""
    for name, ms in (("slow", 1500), ("fast", 400), ("served", 800)):
        mq.sh(f"touch {name}")
        mq.setattr(name, "recv_timeout_ms", ms)
    readers = {name: _read_once(mq, procs, name) for name in ("slow", "fast", "served")}
    for name, (qio, _) in readers.items():
        wait_blocked(qio, SYS_READ)
    mq.sh("echo hello > served")
    kind, data, _ = parse_qio_read(readers["served"][1].line())
    assert (kind, data) == ("OK", "hello\n")
    for name, ms in (("fast", 400), ("slow", 1500)):
        kind, err, took = parse_qio_read(readers[name][1].line())
        assert (kind, err) == ("ERR", "ETIMEDOUT"), name
        assert_about(took, ms)


def test_many_readers_time_out_together(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 400)
    readers = [_read_once(mq, procs) for _ in range(20)]
    for qio, out in readers:
        kind, err, ms = parse_qio_read(out.line())
        assert (kind, err) == ("ERR", "ETIMEDOUT")
        assert_about(ms, 400)
    assert counters(mq / "q") == {"curmsgs": 0, "sent": 0, "received": 0}


@pytest.mark.parametrize("how", ["set 0", "remove"])
def test_zero_waits_for_ever(mq, procs, how):
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 200)
    if how == "set 0":
        mq.setattr("q", "recv_timeout_ms", 0)
    else:
        os.removexattr(mq / "q", "user.mq.recv_timeout_ms")
    assert mq.getattr("q", "recv_timeout_ms") == "0"
    qio, out = _read_once(mq, procs)
    wait_blocked(qio, SYS_READ)
    # Proving something does not happen: still waiting well past 200 ms.
    assert out.maybe_line(1.5) is None
    assert qio.poll() is None
    mq.sh("echo finally > q")
    kind, data, ms = parse_qio_read(out.line())
    assert (kind, data) == ("OK", "finally\n") and ms >= 1500


def test_zero_send_timeout_waits_for_ever(mq, procs):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    fill(mq / "q", ["m0"])
    assert mq.getattr("q", "send_timeout_ms") == "0"
    qio = procs.qio(mq / "q", "open:w", "write:m1")
    out = LineReader(qio)
    assert out.line() == "open OK"
    wait_blocked(qio, SYS_WRITE)
    assert out.maybe_line(1.5) is None  # still waiting: proving something does not happen
    assert mq.sh("timeout 10 cat q").stdout == "m0"
    kind, n, ms = parse_qio_write(out.line())
    assert (kind, n) == ("OK", 2) and ms >= 1500


def test_mount_options_set_the_timeouts_of_new_queues(mount_mqfs, procs):
    mq = mount_mqfs("recv_timeout_ms=300", "send_timeout_ms=400", "maxmsg=1")
    mq.sh("touch q")
    assert (mq.getattr("q", "recv_timeout_ms"), mq.getattr("q", "send_timeout_ms")) == ("300", "400")
    qio, out = _read_once(mq, procs)
    kind, err, ms = parse_qio_read(out.line())
    assert (kind, err) == ("ERR", "ETIMEDOUT")
    assert_about(ms, 300)
    fill(mq / "q", ["m0"])
    qio = procs.qio(mq / "q", "open:w", "write:m1")
    out = LineReader(qio)
    assert out.line() == "open OK"
    kind, err, ms = parse_qio_write(out.line())
    assert (kind, err) == ("ERR", "ETIMEDOUT")
    assert_about(ms, 400)


def test_an_interrupted_waiter_leaves_no_deadline_behind(mq, procs):
    """A reader with a timeout is interrupted; its deadline must not end a
    later reader that waits for ever."""
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 500)
    first = procs.start(["cat", mq / "q"])
    wait_blocked(first, SYS_READ)
    os.kill(first.pid, signal.SIGINT)
    first.wait(timeout=10)
    mq.setattr("q", "recv_timeout_ms", 0)
    qio, out = _read_once(mq, procs)
    wait_blocked(qio, SYS_READ)
    assert out.maybe_line(1.0) is None  # past the first reader's deadline: still waiting
    mq.sh("echo ok > q")
    assert parse_qio_read(out.line())[:2] == ("OK", "ok\n")


def _daemon_timerfds(pid):
    """fdinfo of the daemon's timerfds: [(clockid, it_value_ns)]."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[timerfd]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except FileNotFoundError:
            continue
        clockid = int(re.search(r"clockid:\s*(\d+)", info).group(1))
        sec, nsec = re.search(r"it_value:\s*\((\d+),\s*(\d+)\)", info).groups()
        found.append((clockid, int(sec) * 10**9 + int(nsec)))
    return found


def test_deadlines_are_kept_on_the_monotonic_clock(mq, procs):
    """Changing the machine's wall clock is not done here; instead the
    daemon's deadline timer is inspected while a timed read waits: it must
    be a CLOCK_MONOTONIC (1) timer, armed for about the timeout."""
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 5000)
    qio, out = _read_once(mq, procs)
    wait_blocked(qio, SYS_READ)
    timers = wait_until(lambda: [t for t in _daemon_timerfds(mq.proc.pid) if t[1] > 0],
                        what="an armed timer in the daemon")
    assert len(timers) == 1, timers
    clockid, left_ns = timers[0]
    assert clockid == time.CLOCK_MONOTONIC
    assert 3 * 10**9 < left_ns <= 5 * 10**9
    os.kill(qio.pid, signal.SIGINT)
    qio.wait(timeout=10)
    # No deadline left: the timer is disarmed (after the daemon's next pass).
    wait_until(lambda: all(t[1] == 0 for t in _daemon_timerfds(mq.proc.pid)), what="the timer to be disarmed")


def test_send_timeout_of_a_writer_queued_behind_a_blocked_writer_counts_from_its_own_write(mq, procs):
    """Each writer waits in mqfs (each open has its own inode), so each one's
    send_timeout_ms counts from its own write."""
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    mq.setattr("q", "send_timeout_ms", 1500)
    fill(mq / "q", ["m0"])
    first = procs.qio(mq / "q", "open:w", "write:first")
    wait_blocked(first, SYS_WRITE)
    second = procs.qio(mq / "q", "open:w", "write:second")
    out1, out2 = LineReader(first), LineReader(second)
    assert out1.line() == "open OK" and out2.line() == "open OK"
    wait_blocked(second, SYS_WRITE)
    for out in (out1, out2):
        kind, err, ms = parse_qio_write(out.line(timeout=10))
        assert (kind, err) == ("ERR", "ETIMEDOUT")
        assert_about(ms, 1500)
    assert counters(mq / "q") == {"curmsgs": 1, "sent": 1, "received": 0}


def test_largest_timeout_does_not_fire_at_once(mq, procs):
    """The largest accepted timeout (2**40 ms) must not overflow into a deadline in the past."""
    mq.sh("touch q")
    largest = 2**40
    mq.setattr("q", "recv_timeout_ms", largest)
    assert mq.getattr("q", "recv_timeout_ms") == str(largest)
    qio, out = _read_once(mq, procs)
    wait_blocked(qio, SYS_READ)
    assert out.maybe_line(0.5) is None  # still waiting: proving something does not happen
    mq.sh("echo ok > q")
    assert parse_qio_read(out.line())[:2] == ("OK", "ok\n")


def test_timeouts_racing_messages_lose_and_duplicate_nothing(mq, procs):
    """A message arrives about when the reader's timeout ends, many times:
    each message is either returned or still queued, never both or neither."""
    mq.sh("touch q")
    mq.setattr("q", "recv_timeout_ms", 100)
    rounds = 40
    outcomes = {"OK": 0, "ERR": 0}
    for i in range(rounds):
        reader = procs.qio(mq / "q", "open:r", "read")
        out = LineReader(reader)
        assert out.line() == "open OK"
        wait_blocked(reader, SYS_READ)
        # The reader's deadline is about 100 ms after its read began; write around then.
        writer = subprocess.run([program("qio"), mq / "q", "open:wn", f"sleep:{90 + i % 20}", f"write:t{i}"],
                                capture_output=True, text=True, timeout=10)
        assert writer.stdout.splitlines()[1].startswith("write OK"), writer.stdout
        kind, data, _ = parse_qio_read(out.line())
        assert finish(reader)[0] == 0
        left = drain(mq / "q")
        if kind == "OK":
            assert (data, left) == (f"t{i}", []), (data, left)
        else:
            assert (data, left) == ("ETIMEDOUT", [f"t{i}"]), (data, left)
        outcomes[kind] += 1
    assert counters(mq / "q") == {"curmsgs": 0, "sent": rounds, "received": rounds}
    print(f"\nmessage first: {outcomes['OK']}, timeout first: {outcomes['ERR']}")


def test_timeouts_fire_on_time_while_the_daemon_is_busy(mq, procs):
    """Another queue is kept busy by a producer and a consumer; a timed
    read on a quiet queue still ends about on time."""
    mq.sh("touch busy q")
    mq.setattr("busy", "read_mode", "stream")
    producer = procs.start([program("stress_producer"), mq / "busy", "0", "10000000", "1"])
    consumer = procs.start([program("stress_consumer"), mq / "busy", "/dev/null"])
    wait_until(lambda: counters(mq / "busy")["received"] > 1000, what="traffic on the busy queue")
    mq.setattr("q", "recv_timeout_ms", 500)
    for _ in range(3):
        qio, out = _read_once(mq, procs)
        kind, err, ms = parse_qio_read(out.line())
        assert (kind, err) == ("ERR", "ETIMEDOUT")
        assert_about(ms, 500)
    assert producer.poll() is None and consumer.poll() is None
    assert counters(mq / "busy")["received"] > 5000
