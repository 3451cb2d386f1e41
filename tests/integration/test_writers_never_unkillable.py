"""SPEC section 4: no process ever waits unkillably behind another writer.

While a writer waits for room in a full queue, the kernel holds the lock of
the inode its write went through. mqfs gives every path walk that opens a
queue an inode of its own (docs/design.md, "One inode per open"), so later
writers reach mqfs and wait there, interruptibly, in arrival order; an
O_NONBLOCK writer gets EAGAIN at once; and setfattr, chmod, touch, truncate,
mv and rm of the queue finish while writers wait. Every test here also
checks that no process it started is ever in state D.

A removed queue stops counting against max_queues at once when no file has
it open (SPEC section 5, global limits).
"""
import errno
import os
import signal
import subprocess
import time

import pytest

from helpers import (SYS_WRITE, counters, drain, errno_of, finish, iattr, program, statfs, take, task_state,
                     wait_blocked, wait_exit, wait_until)

PROMPT = 1.0  # seconds: "promptly", with a margin for a loaded 2-core machine


def assert_none_in_d_state(processes):
    for p in processes:
        s = task_state(p.pid)
        assert s is None or s[0] != "D", f"process {p.pid} ({p.args}) is in state D, wchan {s[1]}"


def full_queue(mq, name="q"):
    mq.sh(f"touch {name} && setfattr -n user.mq.maxmsg -v 1 {name} && echo first > {name}")


def blocked_writer(mq, procs, text, name="q"):
    """A writer of its own open file, waiting in mqfs for room."""
    writer = procs.start([program("write_sizes"), mq / name, text], text=True)
    wait_blocked(writer, SYS_WRITE, what=f"writer {text} to wait in mqfs")
    return writer


def run_promptly(procs, args, what):
    """Runs `args` and requires it to finish, successfully, within PROMPT.
    A process stuck in state D cannot be reaped before the daemon answers, so
    on a timeout the test fails at once and teardown ends the daemon."""
    t0 = time.monotonic()
    proc = procs.start([str(a) for a in args], text=True)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within 10 s while a writer waits: state {task_state(proc.pid)}")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, f"{what}: {err}"
    assert elapsed < PROMPT, f"{what} took {elapsed:.2f}s while a writer waits"


def test_writers_behind_a_waiting_writer_wait_in_mqfs_and_die_at_once_on_sigkill(mq, procs):
    full_queue(mq)
    first = blocked_writer(mq, procs, "first-waiter")
    behind = [blocked_writer(mq, procs, f"w{i}") for i in range(8)]
    assert iattr(mq / "q", "curmsgs") == 1
    assert_none_in_d_state([first, *behind])
    t0 = time.monotonic()
    for w in behind:
        os.kill(w.pid, signal.SIGKILL)
    for w in behind:
        status, _ = wait_exit(w, timeout=10, what="a killed writer to end")
        assert status == -signal.SIGKILL
    elapsed = time.monotonic() - t0
    assert elapsed < PROMPT, f"8 killed writers took {elapsed:.2f}s to end"
    # Nothing of theirs was queued; the first still waits, and goes in next.
    assert counters(mq / "q") == {"curmsgs": 1, "sent": 1, "received": 0}
    assert take(mq / "q") == b"first\n"
    assert finish(first)[:2] == (0, "12\n")
    assert drain(mq / "q") == ["first-waiter"]


def test_writers_behind_a_waiting_writer_are_served_in_arrival_order(mq, procs):
    full_queue(mq)
    writers = [blocked_writer(mq, procs, f"w{i}") for i in range(5)]
    got = [take(mq / "q")]
    for w in writers:
        assert finish(w)[:2] == (0, "2\n")
        got.append(take(mq / "q"))
    assert got == [b"first\n", b"w0", b"w1", b"w2", b"w3", b"w4"]


def test_a_nonblocking_writer_behind_a_waiting_writer_gets_eagain_at_once(mq, procs):
    full_queue(mq)
    waiting = blocked_writer(mq, procs, "waiting")
    t0 = time.monotonic()
    eager = procs.start([program("write_sizes"), "-n", mq / "q", "eager"], text=True)
    try:
        out, _ = eager.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the O_NONBLOCK writer is stuck: state {task_state(eager.pid)}")
    assert time.monotonic() - t0 < PROMPT
    assert (eager.returncode, out) == (0, f"E:{errno.EAGAIN}\n")
    assert_none_in_d_state([waiting])
    assert take(mq / "q") == b"first\n"
    assert finish(waiting)[:2] == (0, "7\n")


def test_a_writer_behind_a_waiting_writer_ends_at_its_send_timeout(mq, procs):
    full_queue(mq)
    waiting = blocked_writer(mq, procs, "waiting")
    run_promptly(procs, ["setfattr", "-n", "user.mq.send_timeout_ms", "-v", "200", mq / "q"], "setfattr")
    t0 = time.monotonic()
    late = procs.start([program("write_sizes"), mq / "q", "late"], text=True)
    try:
        out, _ = late.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the writer behind the waiting one is stuck: state {task_state(late.pid)}")
    assert (late.returncode, out) == (0, f"E:{errno.ETIMEDOUT}\n")
    assert time.monotonic() - t0 < 0.2 + PROMPT
    assert_none_in_d_state([waiting])
    assert counters(mq / "q")["curmsgs"] == 1


@pytest.mark.parametrize("command", [
    ["setfattr", "-n", "user.mq.priority", "-v", "7", "{q}"],
    ["chmod", "600", "{q}"],
    ["touch", "{q}"],
    ["getfattr", "-d", "{q}"],
    ["stat", "{q}"],
], ids=["setfattr", "chmod", "touch", "getfattr", "stat"])
def test_changes_to_the_queue_finish_while_writers_wait(mq, procs, command):
    full_queue(mq)
    writers = [blocked_writer(mq, procs, f"w{i}") for i in range(2)]
    run_promptly(procs, [arg.format(q=mq / "q") for arg in command], command[0])
    assert_none_in_d_state(writers)
    assert take(mq / "q") == b"first\n"
    assert finish(writers[0])[:2] == (0, "2\n")


def test_raising_maxmsg_while_writers_wait_lets_them_in_at_once(mq, procs):
    full_queue(mq)
    writers = [blocked_writer(mq, procs, f"w{i}") for i in range(3)]
    run_promptly(procs, ["setfattr", "-n", "user.mq.maxmsg", "-v", "3", mq / "q"], "setfattr maxmsg")
    assert [finish(w)[:2] for w in writers[:2]] == [(0, "2\n"), (0, "2\n")]
    assert writers[2].poll() is None  # still waiting: the queue is full again
    assert drain(mq / "q") == ["first\n", "w0", "w1", "w2"]
    assert finish(writers[2])[:2] == (0, "2\n")


def test_truncate_while_a_writer_waits_purges_and_lets_it_in(mq, procs):
    full_queue(mq)
    writer = blocked_writer(mq, procs, "new")
    run_promptly(procs, ["truncate", "-s", "0", mq / "q"], "truncate")
    assert finish(writer)[:2] == (0, "3\n")
    assert drain(mq / "q") == ["new"]


def test_mv_while_a_writer_waits_moves_the_queue_with_its_writer(mq, procs):
    full_queue(mq)
    writer = blocked_writer(mq, procs, "moved")
    run_promptly(procs, ["mv", mq / "q", mq / "r"], "mv")
    assert take(mq / "r") == b"first\n"
    assert finish(writer)[:2] == (0, "5\n")
    assert drain(mq / "r") == ["moved"]


def test_rm_while_a_writer_waits_removes_the_name_and_the_writer_goes_on(mq, procs):
    full_queue(mq)
    writer = blocked_writer(mq, procs, "orphan")
    reader = os.open(mq / "q", os.O_RDONLY | os.O_NONBLOCK)
    try:
        run_promptly(procs, ["rm", mq / "q"], "rm")
        assert not os.path.exists(mq / "q")
        assert os.read(reader, 100) == b"first\n"  # the open file keeps the queue
        assert finish(writer)[:2] == (0, "6\n")
    finally:
        os.close(reader)


def test_a_queue_keeps_one_inode_number_across_opens(mq):
    mq.sh("touch q")
    fds = [os.open(mq / "q", os.O_RDWR) for _ in range(3)]
    try:
        inodes = {os.fstat(fd).st_ino for fd in fds} | {os.stat(mq / "q").st_ino}
        assert len(inodes) == 1
        assert mq.sh("ls -i q").stdout.split()[0] == str(inodes.pop())
    finally:
        for fd in fds:
            os.close(fd)


# -- a removed queue stops counting ------------------------------------------------

def test_rm_of_a_queue_no_file_has_open_counts_it_out_at_once(mount_mqfs):
    """Even while the kernel still refers to the removed queue's inode (here
    an O_PATH descriptor keeps it without opening the queue, as a busy
    kernel may keep it until its FORGET)."""
    mq = mount_mqfs("max_queues=3")
    mq.sh("touch a b c")
    path_only = os.open(mq / "a", os.O_PATH)
    try:
        assert statfs(mq.path)["ffree"] == 0
        assert errno_of(os.mknod, mq / "d") == errno.ENOSPC
        mq.sh("rm a")
        assert statfs(mq.path)["ffree"] == 1
        mq.sh("touch d")  # at the cap, rm then create works at once
        assert sorted(os.listdir(mq.path)) == ["b", "c", "d"]
    finally:
        os.close(path_only)


def test_a_removed_queue_still_open_counts_until_its_last_close(mount_mqfs):
    mq = mount_mqfs("max_queues=2")
    mq.sh("touch a b")
    fd = os.open(mq / "a", os.O_RDWR)
    try:
        mq.sh("rm a")
        assert statfs(mq.path)["ffree"] == 0
        assert errno_of(os.mknod, mq / "c") == errno.ENOSPC
    finally:
        os.close(fd)
    # The kernel sends RELEASE after close returns: wait for it.
    wait_until(lambda: statfs(mq.path)["ffree"] == 1, timeout=5, what="the last close to count the queue out")
    mq.sh("touch c")
