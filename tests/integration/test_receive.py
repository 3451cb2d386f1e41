"""SPEC section 3, receiving: highest priority first and FIFO within one, a
small buffer gets the message in parts on the same open file, message and
stream read modes, empty queues block or say EAGAIN, blocked readers go in
arrival order."""
import errno
import os
import signal

import pytest

from helpers import (PYTHON, SYS_READ, assert_still_blocked, attr, clean_env, errno_of, finish, iattr,
                     program, put, read_sizes, take, wait_blocked, wait_until, write_sizes)


# -- order ------------------------------------------------------------------------

def test_priority_messages_example_with_setfattr_echo_and_cat(mq):
    """Example 2 of the POSIX message queue guide ("Priority Messages"): a queue
    of 10 messages of 256 bytes, five sends at priorities 1, 5, 10, 20, 1, then
    receives come out highest priority first, FIFO within priority 1."""
    mq.sh("touch priority_queue"
          " && setfattr -n user.mq.maxmsg -v 10 priority_queue"
          " && setfattr -n user.mq.msgsize -v 256 priority_queue")
    for priority, text in [(1, "Low priority task"), (5, "Normal task"), (10, "High priority task"),
                           (20, "URGENT ALERT!"), (1, "Another low task")]:
        mq.sh(f"setfattr -n user.mq.priority -v {priority} priority_queue && echo '{text}' > priority_queue")
    assert attr(mq / "priority_queue", "curmsgs") == "5"
    received = [mq.sh("cat priority_queue").stdout for _ in range(5)]
    assert received == ["URGENT ALERT!\n", "High priority task\n", "Normal task\n", "Low priority task\n",
                        "Another low task\n"]
    assert attr(mq / "priority_queue", "curmsgs") == "0"
    # The example's loop ends when receiving fails: the queue is empty.
    assert mq.sh("timeout 0.5 cat priority_queue", check=False).returncode == 124


def test_messages_of_one_priority_come_out_in_the_order_written(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 50 q")
    assert write_sizes(q, *[f"m{i}" for i in range(50)]) == [2] * 10 + [3] * 40
    assert [take(q) for _ in range(50)] == [f"m{i}".encode() for i in range(50)]


def test_priorities_interleaved_keep_fifo_within_each(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 20 q")
    expected = {}
    for i in range(12):
        priority = [0, 32767, 3][i % 3]
        os.setxattr(q, "user.mq.priority", str(priority).encode())
        put(q, f"{priority}:{i}".encode())
        expected.setdefault(priority, []).append(f"{priority}:{i}".encode())
    got = [take(q) for _ in range(12)]
    assert got == expected[32767] + expected[3] + expected[0]


# -- parts of a message -------------------------------------------------------------

def test_small_buffer_gets_the_first_part_and_next_reads_the_rest(mq):
    q = mq / "q"
    mq.sh("touch q")
    put(q, b"hello world")
    put(q, b"second")
    # Message mode: the parts of one message, then end of file.
    assert read_sizes(q, 4, 4, 100, 100) == [b"hell", b"o wo", b"rld", b""]
    assert (iattr(q, "curmsgs"), iattr(q, "received")) == (1, 1)
    assert read_sizes(q, 100) == [b"second"]


def test_a_read_never_returns_bytes_of_two_messages(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.read_mode -v stream q")
    put(q, b"AAA")
    put(q, b"BBBB")
    put(q, b"C")
    assert read_sizes(q, 2, 100, 100, 100, nonblock=True) == [b"AA", b"A", b"BBBB", b"C"]


def test_a_buffer_as_large_as_the_message_gets_all_of_it(mq):
    q = mq / "q"
    mq.sh("touch q")
    put(q, b"x" * 8192)
    assert read_sizes(q, 8192, 1) == [b"x" * 8192, b""]


def test_bash_read_builtin_reads_the_lines_of_one_message(mq):
    # /usr/bin/printf: one write, one message (bash's own printf writes line by line).
    mq.sh("/usr/bin/printf 'first line\\nsecond line\\nthird\\n' > q; echo next > q")
    assert attr(mq / "q", "curmsgs") == "2"
    out = mq.sh('{ read -r a; read -r b; } < q; printf "%s|%s" "$a" "$b"').stdout
    assert out == "first line|second line"
    # The unread "third" was dropped with the open file; the next message is whole.
    assert attr(mq / "q", "curmsgs") == "1"
    assert mq.sh("cat q").stdout == "next\n"


def test_while_read_loop_consumes_one_message_line_by_line(mq):
    mq.sh("/usr/bin/printf 'a\\nb\\nc\\n' > q; echo other > q")
    assert attr(mq / "q", "curmsgs") == "2"
    out = mq.sh('while read -r line; do echo "got $line"; done < q').stdout
    assert out == "got a\ngot b\ngot c\n"
    assert mq.sh("cat q").stdout == "other\n"


def test_the_unread_rest_is_dropped_on_close(mq):
    q = mq / "q"
    mq.sh("touch q")
    put(q, b"abcdef")
    put(q, b"second")
    assert read_sizes(q, 2) == [b"ab"]
    # The message was delivered: counted, and gone.
    assert (iattr(q, "curmsgs"), iattr(q, "curbytes"), iattr(q, "received")) == (1, 6, 1)
    assert mq.sh("cat q").stdout == "second"
    assert errno_of(take, q) == errno.EAGAIN


# -- message mode ---------------------------------------------------------------------

def test_cat_takes_exactly_one_message(mq):
    q = mq / "q"
    mq.sh("echo one > q; echo two > q; echo three > q")
    assert mq.sh("cat q").stdout == "one\n"
    assert iattr(q, "curmsgs") == 2
    assert mq.sh('msg=$(cat q); echo "[$msg]"').stdout == "[two]\n"
    assert iattr(q, "curmsgs") == 1
    got = mq.sh(f"{PYTHON} -c 'import sys; sys.stdout.write(open(\"q\").read())'", env=clean_env()).stdout
    assert got == "three\n"
    assert (iattr(q, "curmsgs"), iattr(q, "received")) == (0, 3)


def test_python_open_read_takes_one_message(mq):
    q = mq / "q"
    mq.sh("echo one > q; echo two > q")
    with open(q) as f:
        assert f.read() == "one\n"
        assert f.read() == ""  # end of file, nothing more taken
    assert iattr(q, "curmsgs") == 1
    with open(q, "rb") as f:
        assert f.read() == b"two\n"


def test_message_mode_open_file_reads_end_of_file_after_its_message(mq):
    q = mq / "q"
    mq.sh("echo one > q; echo two > q")
    assert read_sizes(q, 100, 100, 100) == [b"one\n", b"", b""]
    assert iattr(q, "curmsgs") == 1


# -- stream mode ----------------------------------------------------------------------

def test_stream_mode_each_read_returns_one_message(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.read_mode -v stream q")
    for m in (b"a", b"bb", b"ccc"):
        put(q, m)
    assert read_sizes(q, 100, 100, 100, 100, nonblock=True) == [b"a", b"bb", b"ccc", errno.EAGAIN]
    assert iattr(q, "received") == 3


def test_stream_mode_cat_is_a_consumer_until_interrupted(mq, procs, tmp_path):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.read_mode -v stream q && echo one > q && echo two > q")
    # timeout ends the consumer; it printed everything that came.
    result = mq.sh("timeout 1 cat q", check=False)
    assert (result.returncode, result.stdout) == (124, "one\ntwo\n")
    out_path = tmp_path / "consumed"
    with open(out_path, "w") as out:
        cat = procs.start(["cat", q], stdout=out, text=True)
    expected = "".join(f"msg{i}\n" for i in range(5))
    for i in range(5):
        mq.sh(f"echo msg{i} > q")
    wait_until(lambda: out_path.read_text() == expected, what="cat to print the messages")
    assert cat.poll() is None, "a stream-mode cat runs until interrupted"
    assert (iattr(q, "curmsgs"), iattr(q, "received")) == (0, 7)
    cat.send_signal(signal.SIGINT)
    assert finish(cat)[0] == -signal.SIGINT
    assert out_path.read_text() == expected


def test_read_mode_is_taken_at_open(mq):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.read_mode -v stream q")
    for m in (b"1", b"2", b"3"):
        put(q, m)
    mq.sh("setfattr -n user.mq.read_mode -v message q")
    assert read_sizes(q, 10, 10) == [b"1", b""]
    mq.sh("setfattr -x user.mq.read_mode q")
    assert attr(q, "read_mode") == "message"
    assert mq.sh("cat q").stdout == "2"


# -- empty queues ----------------------------------------------------------------------

def test_empty_queue_blocks_the_reader_until_a_message_arrives(mq, procs):
    q = mq / "q"
    mq.sh("touch q")
    reader = procs.start([program("read_sizes"), q, "100"], text=True)
    wait_blocked(reader, SYS_READ, "the reader of the empty queue")
    assert_still_blocked(reader, SYS_READ)
    put(q, b"arrived")
    assert finish(reader)[:2] == (0, "7:" + b"arrived".hex() + "\n")
    assert (iattr(q, "curmsgs"), iattr(q, "received"), iattr(q, "lrpid")) == (0, 1, reader.pid)


def test_empty_queue_with_o_nonblock_fails_with_eagain(mq):
    q = mq / "q"
    mq.sh("touch q")
    assert read_sizes(q, 100, nonblock=True) == [errno.EAGAIN]
    assert errno_of(take, q) == errno.EAGAIN
    assert iattr(q, "received") == 0
    put(q, b"now")
    assert read_sizes(q, 100, nonblock=True) == [b"now"]


def test_blocked_readers_are_served_in_the_order_they_arrived(mq, procs):
    q = mq / "q"
    mq.sh("touch q")
    readers = []
    for i in range(4):
        r = procs.start([program("read_sizes"), q, "100"], text=True)
        wait_blocked(r, SYS_READ, f"reader {i}")
        readers.append(r)
    assert write_sizes(q, "m0", "m1", "m2", "m3") == [2, 2, 2, 2]
    for i, r in enumerate(readers):
        assert finish(r)[:2] == (0, "2:" + f"m{i}".encode().hex() + "\n"), f"reader {i}"


def test_a_blocked_reader_gets_the_highest_priority_of_what_is_queued_by_then(mq, procs):
    q = mq / "q"
    mq.sh("touch q")
    reader = procs.start([program("read_sizes"), q, "100"], text=True)
    wait_blocked(reader, SYS_READ, "the reader")
    put(q, b"first")  # served at once: the reader was waiting
    assert finish(reader)[:2] == (0, "5:" + b"first".hex() + "\n")


@pytest.mark.parametrize("size", [1, 3])
def test_blocked_reader_with_small_buffer_gets_the_first_part(mq, procs, size):
    q = mq / "q"
    mq.sh("touch q")
    reader = procs.start([program("read_sizes"), q, str(size), "100"], text=True)
    wait_blocked(reader, SYS_READ, "the reader")
    put(q, b"abcdef")
    assert finish(reader)[:2] == (0, f"{size}:{b'abcdef'[:size].hex()}\n{6 - size}:{b'abcdef'[size:].hex()}\n")
    assert iattr(q, "curmsgs") == 0
