"""SPEC section 4, poll/select/epoll: a queue is readable when a read would
not block (a message is queued, the open file holds the rest of one, or it
is at end of file), writable when a write would not block; POLLIN only for
files opened for reading, POLLOUT only for files opened for writing; a
waiter is woken when that changes. epoll works level- and edge-triggered.

tests/programs/readiness watches every descriptor for both IN and OUT and
is driven command by command; "woken" checks first make sure the program
sleeps in poll/select/epoll_wait before the change is made.
"""
import signal
import time

import pytest

from helpers import Readiness, SYS_WRITE, counters, drain, fill, wait_blocked

ALL = ["poll", "select", "epoll", "epollet"]
LEVEL = ["poll", "select", "epoll"]
IN, OUT = {"IN"}, {"OUT"}


@pytest.mark.parametrize("mech", ALL)
def test_empty_queue_is_not_readable(mq, procs, mech):
    mq.sh("touch q")
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    assert r.wait(0) == {}
    assert r.wait(200) == {}  # nothing comes: proving something does not happen
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_queued_message_makes_a_reader_readable(mq, procs, mech):
    mq.sh("echo m > q")
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    assert r.wait(0) == {0: IN}
    assert r.read(0) == "read 0 OK m\\n"
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_reader_is_woken_when_a_message_arrives(mq, procs, mech):
    mq.sh("touch q")
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    r.start_wait()
    t0 = time.monotonic()
    mq.sh("echo hello > q")
    assert r.woken() == {0: IN}
    assert time.monotonic() - t0 < 1.0
    assert r.read(0) == "read 0 OK hello\\n"
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_pollin_only_for_readers_and_pollout_only_for_writers(mq, procs, mech):
    mq.sh("echo m > q")  # one message queued, room for nine more
    r = Readiness(procs, mech, f"r:{mq / 'q'}", f"w:{mq / 'q'}", f"rw:{mq / 'q'}")
    assert r.wait(0) == {0: IN, 1: OUT, 2: IN | OUT}
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_empty_queue_is_writable_for_a_writer(mq, procs, mech):
    mq.sh("touch q")
    r = Readiness(procs, mech, f"w:{mq / 'q'}", f"r:{mq / 'q'}")
    assert r.wait(0) == {0: OUT}
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_full_queue_is_not_writable_until_a_message_is_taken(mq, procs, mech):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 2)
    fill(mq / "q", ["m0", "m1"])
    r = Readiness(procs, mech, f"w:{mq / 'q'}")
    assert r.wait(0) == {}
    assert r.write(0, "x") == "write 0 ERR EAGAIN"
    r.start_wait()
    assert mq.sh("timeout 10 cat q").stdout == "m0"
    assert r.woken() == {0: OUT}
    assert r.write(0, "m2") == "write 0 OK 2"
    assert r.wait(0) == {}  # full again
    r.quit()
    assert drain(mq / "q") == ["m1", "m2"]


@pytest.mark.parametrize("mech", LEVEL)
def test_message_mode_end_of_file_is_readable(mq, procs, mech):
    """After its one message, a message-mode file is at end of file: readable, read returns 0."""
    mq.sh("echo a > q; echo b > q")
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    assert r.read(0) == "read 0 OK a\\n"
    assert r.wait(0) == {0: IN}
    assert r.read(0) == "read 0 EOF"
    assert r.wait(0) == {0: IN}
    r.quit()
    assert drain(mq / "q") == ["b\n"]


@pytest.mark.parametrize("mech", LEVEL)
def test_rest_of_a_message_is_readable_with_the_queue_empty(mq, procs, mech):
    mq.sh("touch q")
    fill(mq / "q", ["0123456789abcdefghij"])
    r = Readiness(procs, mech, f"r:{mq / 'q'}", f"r:{mq / 'q'}")
    assert r.cmd("mode 1 1") == "mode 1 OK"  # descriptor 1 in stream mode
    assert r.read(0, 5) == "read 0 OK 01234"
    assert counters(mq / "q")["curmsgs"] == 0
    # Descriptor 0 holds the rest; descriptor 1 has nothing to read.
    assert r.wait(0) == {0: IN}
    assert r.read(0, 5) == "read 0 OK 56789"
    assert r.wait(0) == {0: IN}
    assert r.read(0) == "read 0 OK abcdefghij"
    assert r.wait(0) == {0: IN}  # message mode: now at end of file
    assert r.read(0) == "read 0 EOF"
    r.quit()


@pytest.mark.parametrize("mech", LEVEL)
def test_stream_reader_holding_a_rest_then_drained_is_not_readable(mq, procs, mech):
    mq.sh("touch q")
    fill(mq / "q", ["0123456789"])
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    assert r.cmd("mode 0 1") == "mode 0 OK"
    assert r.read(0, 4) == "read 0 OK 0123"
    assert r.wait(0) == {0: IN}
    assert r.read(0) == "read 0 OK 456789"
    assert r.wait(0) == {}
    assert r.read(0) == "read 0 ERR EAGAIN"
    r.start_wait()
    mq.sh("echo more > q")
    assert r.woken() == {0: IN}
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_stream_reader_is_woken_again_and_again(mq, procs, mech):
    mq.sh("touch q")
    r = Readiness(procs, mech, f"r:{mq / 'q'}")
    assert r.cmd("mode 0 1") == "mode 0 OK"
    for i in range(5):
        r.start_wait()
        mq.sh(f"echo m{i} > q")
        assert r.woken() == {0: IN}, f"message {i}"
        assert r.read(0) == f"read 0 OK m{i}\\n"
        assert r.read(0) == "read 0 ERR EAGAIN"
        assert r.wait(0) == {}
    r.quit()


@pytest.mark.parametrize("mech", ALL)
def test_several_queues_report_only_the_ones_ready(mq, procs, mech):
    mq.sh("touch a b c")
    r = Readiness(procs, mech, *(f"r:{mq / n}" for n in "abc"))
    for i in range(3):
        assert r.cmd(f"mode {i} 1") == f"mode {i} OK"
    assert r.wait(0) == {}
    mq.sh("echo to-b > b")
    assert r.wait(1000) == {1: IN}
    assert r.read(1) == "read 1 OK to-b\\n"
    r.start_wait()
    mq.sh("echo to-c > c")
    assert r.woken() == {2: IN}
    mq.sh("echo to-a > a")
    if mech == "epollet":
        assert r.wait(1000) == {0: IN}  # only the new edge
    else:
        assert r.wait(1000) == {0: IN, 2: IN}
    assert r.read(0) == "read 0 OK to-a\\n"
    assert r.read(2) == "read 2 OK to-c\\n"
    assert r.wait(0) == {}
    r.quit()


def test_edge_triggered_gives_one_event_per_new_message_after_draining(mq, procs):
    mq.sh("touch q")
    r = Readiness(procs, "epollet", f"r:{mq / 'q'}")
    assert r.cmd("mode 0 1") == "mode 0 OK"
    assert r.wait(0) == {}
    for i in range(10):
        r.start_wait()
        mq.sh(f"echo m{i} > q")
        assert r.woken() == {0: IN}, f"message {i}"
        assert r.wait(0) == {}, "no new edge without a change"
        assert r.read(0) == f"read 0 OK m{i}\\n"
        assert r.read(0) == "read 0 ERR EAGAIN"
        assert r.wait(0) == {}
    # Two messages at once, then drained: one or more events, then quiet.
    mq.sh("echo x > q; echo y > q")
    assert r.wait(2000) == {0: IN}
    assert r.read(0) == "read 0 OK x\\n"
    assert r.read(0) == "read 0 OK y\\n"
    assert r.read(0) == "read 0 ERR EAGAIN"
    for _ in range(3):  # an edge from the second message may still be pending
        if not r.wait(0):
            break
    assert r.wait(0) == {}
    r.start_wait()
    mq.sh("echo z > q")
    assert r.woken() == {0: IN}
    r.quit()


@pytest.mark.parametrize("mech", ["epoll", "epollet"])
def test_epollout_on_a_full_queue_after_a_read(mq, procs, mech):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 3)
    fill(mq / "q", ["m0", "m1", "m2"])
    r = Readiness(procs, mech, f"w:{mq / 'q'}")
    assert r.wait(0) == {}
    for i in range(3):
        r.start_wait()
        assert mq.sh("timeout 10 cat q").stdout == f"m{i}"
        assert r.woken() == {0: OUT}, f"round {i}"
        assert r.write(0, f"n{i}") == f"write 0 OK 2"
        assert r.write(0, "x") == "write 0 ERR EAGAIN"
        assert r.wait(0) == {}
    r.quit()
    assert drain(mq / "q") == ["n0", "n1", "n2"]


@pytest.mark.parametrize("mech", LEVEL)
def test_room_taken_by_a_blocked_writer_is_not_writable(mq, procs, mech):
    """A blocked writer takes the room a read makes: a write would still block."""
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    fill(mq / "q", ["m0"])
    writer = procs.qio(mq / "q", "open:w", "write:blocked")
    wait_blocked(writer, SYS_WRITE)
    r = Readiness(procs, mech, f"w:{mq / 'q'}")
    assert r.wait(0) == {}
    assert mq.sh("timeout 10 cat q").stdout == "m0"
    assert writer.wait(timeout=10) == 0
    assert r.wait(0) == {}
    assert r.write(0, "x") == "write 0 ERR EAGAIN"
    r.quit()
    assert drain(mq / "q") == ["blocked"]


def test_every_poller_of_a_queue_is_woken(mq, procs):
    mq.sh("touch q")
    pollers = [Readiness(procs, mech, f"r:{mq / 'q'}") for mech in ALL]
    for r in pollers:
        r.start_wait()
    mq.sh("echo one > q")
    for r in pollers:
        assert r.woken() == {0: IN}, r.mech
    for r in pollers:
        r.quit()


@pytest.mark.parametrize("change", ["raise maxmsg", "truncate"])
def test_room_made_by_an_attribute_change_wakes_pollers(mq, procs, change):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    fill(mq / "q", ["m0"])
    r = Readiness(procs, "poll", f"w:{mq / 'q'}")
    assert r.wait(0) == {}
    r.start_wait()
    if change == "raise maxmsg":
        mq.setattr("q", "maxmsg", 2)
    else:
        mq.sh("truncate -s 0 q")
    assert r.woken() == {0: OUT}
    r.quit()


@pytest.mark.parametrize("command", [
    "setfattr -n user.mq.maxmsg -v 5 q",
    "truncate -s 0 q",
    "touch q",
    "rm q",
])
def test_commands_on_a_queue_complete_while_its_writer_waits(mq, procs, command):
    """A writer waits on a full queue; commands that change the queue finish
    at once all the same (each open has its own inode: SPEC section 4)."""
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    fill(mq / "q", ["m0"])
    writer = procs.qio(mq / "q", "open:w", "write:blocked")
    wait_blocked(writer, SYS_WRITE)
    started = procs.start(["bash", "-c", "exec " + command], cwd=mq.path)
    assert started.wait(timeout=5) == 0, started.stderr.read()
    if command == "rm q":  # no name left to make room through: the writer waits on
        assert writer.poll() is None
        writer.kill()
        assert writer.wait(timeout=5) == -signal.SIGKILL
        return
    mq.sh("timeout 10 cat q > /dev/null")  # room for the writer, if the command made none
    assert writer.wait(timeout=5) == 0
