"""SPEC section 2, sending: one write(2) is one message, too large is EMSGSIZE,
a full queue blocks or says EAGAIN, blocked writers go in arrival order,
offsets mean nothing, O_TRUNC keeps messages, truncate to 0 purges, and
stdio-buffered writers send one message per flush."""
import errno
import os
import subprocess

import pytest

from helpers import (MAX_MSGSIZE, PYTHON, SYS_WRITE, assert_still_blocked, attr, clean_env, errno_of, finish,
                     iattr, pattern, program, put, take, wait_blocked, write_sizes)

SIX_THOUSAND = "x" * 6000


def messages(path):
    return iattr(path, "curmsgs")


def drain(path):
    """Takes every queued message (non-blocking) and returns them in order."""
    out = []
    while iattr(path, "curmsgs") > 0:
        out.append(take(path))
    return out


# -- one write, one message ------------------------------------------------------

def test_each_write_enqueues_exactly_one_message_and_returns_its_size(mq):
    q = mq / "q"
    mq.sh("touch q")
    assert write_sizes(q, "a", "bc", "#8192", "#1") == [1, 2, 8192, 1]
    assert (messages(q), iattr(q, "curbytes"), iattr(q, "sent")) == (4, 1 + 2 + 8192 + 1, 4)
    assert drain(q) == [b"a", b"bc", pattern(8192), pattern(1)]


def test_one_python_write_of_msgsize_bytes_is_one_message(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.msgsize -v 100 q")
    assert put(q, b"z" * 100) == 100
    assert put(q, b"y" * 99) == 99
    assert drain(q) == [b"z" * 100, b"y" * 99]


@pytest.mark.parametrize("align", [0, 1, 4095])
def test_largest_message_is_one_message_whatever_the_buffer_alignment(mq, align):
    q = mq / "q"
    mq.sh(f"touch q && setfattr -n user.mq.msgsize -v {MAX_MSGSIZE} q")
    assert write_sizes(q, f"#{MAX_MSGSIZE}", align=align) == [MAX_MSGSIZE]
    assert (messages(q), iattr(q, "curbytes")) == (1, MAX_MSGSIZE)
    assert take(q, 2 * MAX_MSGSIZE) == pattern(MAX_MSGSIZE)


def test_write_larger_than_msgsize_fails_with_emsgsize_and_queues_nothing(mq):
    q = mq / "q"
    mq.sh("echo before > q")
    assert write_sizes(q, "#8193", "#100000") == [-errno.EMSGSIZE, -errno.EMSGSIZE]
    assert errno_of(put, q, b"x" * 8193) == errno.EMSGSIZE
    assert (messages(q), iattr(q, "curbytes"), iattr(q, "sent")) == (1, 7, 1)
    os.setxattr(q, "user.mq.msgsize", b"10")
    assert write_sizes(q, "#11", "#10") == [-errno.EMSGSIZE, 10]
    assert (messages(q), iattr(q, "sent")) == (2, 2)
    assert drain(q) == [b"before\n", pattern(10)]
    result = mq.sh("/usr/bin/printf '%s' 'eleven byte' > q", check=False)
    assert result.returncode != 0 and "write error" in result.stderr
    assert (messages(q), iattr(q, "sent")) == (0, 2)


# -- full queues ----------------------------------------------------------------

def test_full_queue_blocks_the_writer_until_a_message_is_taken(mq, procs):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 2 q && echo 1 > q && echo 2 > q")
    # A shell writer stays blocked until timeout ends it; nothing is queued.
    assert mq.sh("timeout 1 bash -c 'echo 3 > q'", check=False).returncode == 124
    assert (messages(q), iattr(q, "sent")) == (2, 2)

    writer = procs.start([program("write_sizes"), q, "3"], text=True)
    wait_blocked(writer, SYS_WRITE, "the writer of the full queue")
    assert_still_blocked(writer, SYS_WRITE)
    assert messages(q) == 2
    assert take(q) == b"1\n"
    assert finish(writer)[:2] == (0, "1\n")
    assert drain(q) == [b"2\n", b"3"]


def test_full_queue_with_o_nonblock_fails_with_eagain_and_queues_nothing(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo only > q")
    assert write_sizes(q, "more", nonblock=True) == [-errno.EAGAIN]
    assert errno_of(put, q, b"more") == errno.EAGAIN
    assert (messages(q), iattr(q, "sent"), iattr(q, "curbytes")) == (1, 1, 5)
    assert take(q) == b"only\n"
    assert write_sizes(q, "more", nonblock=True) == [4]


def test_nonblocking_write_behind_a_blocked_writer_gets_eagain_at_once(mq, procs):
    """Each open of a queue has its own inode, so a second writer reaches mqfs
    while the first waits there (test_writers_never_unkillable.py has more)."""
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo first > q")
    waiting = procs.start([program("write_sizes"), q, "waiting"], text=True)
    wait_blocked(waiting, SYS_WRITE, "the blocking writer")
    eager = procs.start([program("write_sizes"), "-n", q, "eager"], text=True)
    out, _ = eager.communicate(timeout=5)
    assert (eager.returncode, out) == (0, f"E:{errno.EAGAIN}\n")
    assert take(q) == b"first\n"  # the blocked writer's message goes in
    assert finish(waiting)[:2] == (0, "7\n")
    assert drain(q) == [b"waiting"]


def test_blocked_writers_are_served_in_the_order_they_arrived(mq, procs):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo first > q")
    writers = []
    for name in ("w1", "w2", "w3", "w4"):
        w = procs.start([program("write_sizes"), q, name], text=True)
        wait_blocked(w, SYS_WRITE, f"writer {name}")  # each waits in mqfs
        writers.append(w)
    got = [take(q)]
    for w in writers:
        # Each message taken lets exactly the oldest blocked writer in.
        assert finish(w)[:2] == (0, "2\n")
        got.append(take(q))
    assert got == [b"first\n", b"w1", b"w2", b"w3", b"w4"]


# -- priority -------------------------------------------------------------------

def test_message_priority_is_the_queues_user_mq_priority_when_written(mq):
    q = mq / "q"
    mq.sh("touch q")
    mq.sh("echo zero > q")
    mq.sh("setfattr -n user.mq.priority -v 7 q && echo seven > q")
    mq.sh("setfattr -n user.mq.priority -v 3 q && echo three > q")
    mq.sh("setfattr -x user.mq.priority q && echo zero-again > q")
    assert attr(q, "priority") == "0"
    assert drain(q) == [b"seven\n", b"three\n", b"zero\n", b"zero-again\n"]


def test_priority_is_taken_at_each_write_of_an_open_file(mq):
    q = mq / "q"
    mq.sh("touch q")
    fd = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"low")
        os.setxattr(q, "user.mq.priority", b"32767")
        os.write(fd, b"top")
    finally:
        os.close(fd)
    assert drain(q) == [b"top", b"low"]


# -- not seekable -----------------------------------------------------------------

def test_lseek_pread_and_pwrite_fail_with_espipe(mq):
    q = mq / "q"
    mq.sh("echo m > q")
    fd = os.open(q, os.O_RDWR | os.O_NONBLOCK)
    try:
        for whence in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            assert errno_of(os.lseek, fd, 0, whence) == errno.ESPIPE
        assert errno_of(os.pwrite, fd, b"p", 0) == errno.ESPIPE
        assert errno_of(os.pread, fd, 10, 0) == errno.ESPIPE
    finally:
        os.close(fd)
    assert (messages(q), iattr(q, "sent")) == (1, 1)


def test_o_append_writes_are_plain_messages(mq):
    q = mq / "q"
    mq.sh("echo a >> q; echo b >> q")
    fd = os.open(q, os.O_WRONLY | os.O_APPEND)
    try:
        assert os.write(fd, b"c") == 1
    finally:
        os.close(fd)
    assert drain(q) == [b"a\n", b"b\n", b"c"]


# -- O_TRUNC and truncate -----------------------------------------------------------

def test_shell_redirection_with_o_trunc_never_discards_messages(mq):
    q = mq / "q"
    mq.sh("echo a > q; echo b > q; : > q")
    assert messages(q) == 2
    with open(q, "w"):  # O_WRONLY|O_CREAT|O_TRUNC, nothing written
        pass
    fd = os.open(q, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert (messages(q), iattr(q, "curbytes")) == (2, 4)
    assert mq.sh("cat q; cat q").stdout == "a\nb\n"


def test_truncate_to_zero_purges_the_queue(mq):
    q = mq / "q"
    mq.sh("echo a > q; echo b > q; echo c > q")
    mq.sh("truncate -s 0 q")
    assert (messages(q), iattr(q, "curbytes"), os.stat(q).st_size) == (0, 0, 0)
    assert iattr(q, "sent") == 3  # counters are history, not contents
    assert errno_of(take, q) == errno.EAGAIN
    # ftruncate(fd, 0) too.
    mq.sh("echo d > q; echo e > q")
    fd = os.open(q, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    assert messages(q) == 0
    mq.sh("echo f > q")
    assert mq.sh("cat q").stdout == "f\n"


def test_truncate_to_any_other_size_is_einval_and_keeps_the_messages(mq):
    q = mq / "q"
    mq.sh("echo a > q; echo bb > q")
    result = mq.sh("truncate -s 5 q", check=False)
    assert result.returncode != 0 and "Invalid argument" in result.stderr
    assert errno_of(os.truncate, q, 1) == errno.EINVAL
    assert errno_of(os.truncate, q, 4096) == errno.EINVAL
    fd = os.open(q, os.O_WRONLY)
    try:
        assert errno_of(os.ftruncate, fd, 3) == errno.EINVAL
    finally:
        os.close(fd)
    assert (messages(q), iattr(q, "curbytes")) == (2, 5)
    assert drain(q) == [b"a\n", b"bb\n"]


def test_truncate_while_a_writer_is_blocked_purges_and_lets_it_in(mq, procs):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo old > q")
    writer = procs.start([program("write_sizes"), q, "new"], text=True)
    wait_blocked(writer, SYS_WRITE, "the writer of the full queue")
    truncate = procs.start(["truncate", "-s", "0", q], text=True)
    truncate.communicate(timeout=5)
    assert truncate.returncode == 0
    assert finish(writer)[:2] == (0, "3\n")
    assert drain(q) == [b"new"]


# -- st_blksize and stdio --------------------------------------------------------------

@pytest.mark.parametrize("msgsize,blksize", [(8192, 8192), (1, 1), (100, 128), (6000, 8192), (8193, 16384),
                                             (100000, 131072), (MAX_MSGSIZE, 1 << 20)])
def test_st_blksize_is_msgsize_rounded_up_to_a_power_of_two(mq, msgsize, blksize):
    q = mq / "q"
    mq.sh(f"touch q && setfattr -n user.mq.msgsize -v {msgsize} q")
    assert os.stat(q).st_blksize == blksize >= msgsize
    assert mq.sh("stat -c %o q").stdout.strip() == str(blksize)


def test_default_st_blksize_is_at_least_default_msgsize(mq):
    mq.sh("touch q")
    assert os.stat(mq / "q").st_blksize >= 8192


def test_bin_echo_of_six_thousand_chars_is_one_message(mq):
    q = mq / "q"
    mq.sh('x=$(printf "%06000d" 0 | tr 0 x); /bin/echo "$x" > q')
    assert (messages(q), iattr(q, "curbytes")) == (1, 6001)
    assert take(q) == (SIX_THOUSAND + "\n").encode()


def test_printf_command_of_six_thousand_chars_is_one_message(mq):
    q = mq / "q"
    mq.sh('x=$(printf "%06000d" 0 | tr 0 x); /usr/bin/printf "%s\\n" "$x" > q')
    assert (messages(q), iattr(q, "curbytes")) == (1, 6001)
    assert take(q) == (SIX_THOUSAND + "\n").encode()


def test_bash_c_echo_into_the_queue_is_one_message(mq):
    q = mq / "q"
    mq.sh('x=$(printf "%06000d" 0 | tr 0 x); bash -c \'echo "$1"\' bash "$x" > q')
    mq.sh("bash -c 'echo short' > q")
    assert messages(q) == 2
    assert drain(q) == [(SIX_THOUSAND + "\n").encode(), b"short\n"]


def test_python_print_to_the_file_is_one_message(mq):
    q = mq / "q"
    mq.sh("touch q")
    code = 'print("x" * 6000, file=open("q", "w"))'
    mq.sh(f"{PYTHON} -c '{code}'", env=clean_env())
    assert (messages(q), iattr(q, "curbytes")) == (1, 6001)
    # print to a stdout redirected to the queue, with Python's normal buffering.
    mq.sh(f"{PYTHON} -c 'print(\"y\" * 6000)' > q", env=clean_env())
    assert messages(q) == 2
    assert drain(q) == [(SIX_THOUSAND + "\n").encode(), ("y" * 6000 + "\n").encode()]


def test_stdio_writer_sized_by_st_blksize_sends_one_message_per_flush(mq):
    q = mq / "q"
    mq.sh("touch q")
    subprocess.run([program("stdio_message"), q, "6000"], check=True, timeout=10)
    subprocess.run([program("stdio_message"), q, "8191"], check=True, timeout=10)
    assert messages(q) == 2
    assert drain(q) == [b"x" * 6000 + b"\n", b"x" * 8191 + b"\n"]
