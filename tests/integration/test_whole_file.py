"""Whole-file messages (SPEC section 14): with user.mq.framing `file`, what one
open file writes from open to close (or fsync) is one message."""
import os
import signal
import subprocess

import pytest

from helpers import LineReader, SYS_CLOSE, counters, drain, program, wait_blocked, wait_exit


def whole_file_queue(mq, name="q", **attrs):
    open(mq / name, "w").close()
    mq.setattr(name, "framing", "file")
    for key, value in attrs.items():
        mq.setattr(name, key, value)
    return mq / name


def plain(lines):
    """qio's lines without their timings."""
    return [line.split(" ms=")[0] for line in lines]


def qio(path, *steps, timeout=10):
    """Runs qio to the end; its output lines."""
    result = subprocess.run([program("qio"), path, *steps], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_head_c_is_one_message(mq, tmp_path):
    q = whole_file_queue(mq, msgsize=65536)
    data = tmp_path / "data"
    data.write_bytes(os.urandom(50000))
    mq.sh(f"head -c 20000 {data} > q")
    messages = drain(q)
    assert len(messages) == 1
    assert messages[0].encode("latin-1") == data.read_bytes()[:20000]


def test_cp_of_a_file_is_one_message(mq, tmp_path):
    q = whole_file_queue(mq, msgsize=200000)
    big = tmp_path / "big.json"
    big.write_text("[" + ",".join(f'{{"n": {i}, "pad": "{"x" * 40}"}}' for i in range(2500)) + "]\n")
    assert big.stat().st_size > 100000  # more than one write of cp's buffer
    mq.sh(f"cp {big} q")
    assert [m.encode("latin-1") for m in drain(q)] == [big.read_bytes()]


def test_bin_echo_of_a_long_string_is_one_message(mq):
    q = whole_file_queue(mq, msgsize=65536)
    long = "y" * 30000
    mq.sh(f'/bin/echo "{long}" > q')
    assert drain(q) == [long + "\n"]


def test_a_scripts_builtin_echo_is_one_message(mq, tmp_path):
    q = whole_file_queue(mq, msgsize=65536)
    script = tmp_path / "send.sh"
    script.write_text(f'long=$(printf "%0.s-" $(seq 9000))\necho "$long" > "{q}"\n')
    mq.sh(f"bash {script}")
    assert drain(q) == ["-" * 9000 + "\n"]


def test_many_writes_then_close_is_one_message(mq):
    q = whole_file_queue(mq)
    lines = qio(q, "open:w", "write:one ", "write:two ", "write:three", "close")
    assert plain(lines) == ["open OK", "write OK 4", "write OK 4", "write OK 5", "close OK"]
    assert drain(q) == ["one two three"]


def test_nothing_is_queued_before_the_close(mq, procs):
    q = whole_file_queue(mq)
    writer = procs.qio(q, "open:w", "write:part", "ready", "stdin", "close", stdin=subprocess.PIPE)
    out = LineReader(writer)
    assert out.line() == "open OK"
    assert out.line().startswith("write OK 4")
    assert out.line() == "ready"
    assert counters(q)["curmsgs"] == 0
    writer.stdin.write("\n")
    writer.stdin.flush()
    assert out.line() == "close OK"
    wait_exit(writer, 10)
    assert drain(q) == ["part"]


def test_writes_past_msgsize_fail_and_send_nothing(mq):
    q = whole_file_queue(mq, msgsize=8)
    lines = qio(q, "open:w", "write:12345", "write:6789", "write:x", "close", "open:w", "write:fresh", "close")
    assert plain(lines) == [
        "open OK", "write OK 5", "write ERR EMSGSIZE",
        "write ERR EMSGSIZE",  # the rest of a refused message is refused too
        "close OK", "open OK", "write OK 5", "close OK"]
    assert drain(q) == ["fresh"]


def test_a_close_with_nothing_written_sends_nothing(mq):
    q = whole_file_queue(mq)
    qio(q, "open:w", "close", "open:w", "write:a", "fsync", "close")
    assert drain(q) == ["a"]


def test_fsync_ends_a_message(mq):
    q = whole_file_queue(mq)
    lines = qio(q, "open:w", "write:first", "fsync", "write:sec", "write:ond", "close")
    assert "fsync OK" in lines
    assert drain(q) == ["first", "second"]


def test_full_queue_makes_the_close_wait_until_there_is_room(mq, procs):
    q = whole_file_queue(mq, maxmsg=1)
    qio(q, "open:w", "write:first", "close")
    writer = procs.qio(q, "open:w", "write:second", "ready", "close")
    out = LineReader(writer)
    assert out.line() == "open OK"
    assert out.line().startswith("write OK 6")
    assert out.line() == "ready"
    wait_blocked(writer, SYS_CLOSE, what="the close to wait for room")
    assert counters(q)["curmsgs"] == 1
    # One read makes room: the close finishes with its message queued.
    assert plain(qio(q, "open:r", "read")) == ["open OK", "read OK 5 first"]
    assert out.line() == "close OK"
    wait_exit(writer, 10)
    assert drain(q) == ["second"]


def test_a_waiting_close_is_interruptible_and_queues_nothing(mq, procs):
    q = whole_file_queue(mq, maxmsg=1)
    qio(q, "open:w", "write:first", "close")
    writer = procs.qio(q, "catch:10", "open:w", "write:second", "ready", "close")
    out = LineReader(writer)
    assert out.line() == "catch OK"
    assert out.line() == "open OK"
    assert out.line().startswith("write OK")
    assert out.line() == "ready"
    wait_blocked(writer, SYS_CLOSE, what="the close to wait for room")
    os.kill(writer.pid, signal.SIGUSR1)
    assert out.line() == "close EINTR"
    assert out.line() == "signal 10"
    wait_exit(writer, 10)
    assert drain(q) == ["first"]


def test_timeout_ends_a_waiting_close(mq):
    """`timeout` kills a writer whose close waits: it ends promptly, and its
    message is not queued."""
    q = whole_file_queue(mq, maxmsg=1)
    qio(q, "open:w", "write:first", "close")
    result = mq.sh(f"timeout 1 {program('qio')} {q} open:w write:second close", check=False, timeout=10)
    assert result.returncode == 124
    assert drain(q) == ["first"]


def test_send_timeout_ends_a_waiting_close_with_etimedout(mq):
    q = whole_file_queue(mq, maxmsg=1, send_timeout_ms=200)
    qio(q, "open:w", "write:first", "close")
    lines = qio(q, "open:w", "write:second", "close")
    assert lines[-1] == "close ETIMEDOUT"
    assert drain(q) == ["first"]


def test_nonblocking_close_of_a_full_queue_fails_with_eagain(mq):
    q = whole_file_queue(mq, maxmsg=1)
    qio(q, "open:w", "write:first", "close")
    lines = qio(q, "open:wn", "write:second", "close")
    assert lines[-1] == "close EAGAIN"
    assert drain(q) == ["first"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_writer_killed_between_two_writes_sends_nothing(mq, procs, sig):
    q = whole_file_queue(mq)
    writer = procs.qio(q, "open:w", "write:half", "ready", "stdin", "write:other half", "close",
                       stdin=subprocess.PIPE)
    out = LineReader(writer)
    assert out.line() == "open OK"
    assert out.line().startswith("write OK 4")
    assert out.line() == "ready"
    os.kill(writer.pid, sig)
    code, _ = wait_exit(writer, 10)
    assert code == -sig
    # The kernel closed its files before it became a zombie: their close is done.
    assert counters(q) == {"curmsgs": 0, "sent": 0, "received": 0}
    qio(q, "open:w", "write:next", "close")
    assert drain(q) == ["next"]


def test_a_writer_that_exits_without_closing_sends_its_message(mq):
    q = whole_file_queue(mq)
    lines = qio(q, "open:w", "write:left ", "write:open")  # qio exits with the file open
    assert lines[-1].startswith("write OK 4")
    assert drain(q) == ["left open"]


def test_each_program_sharing_a_descriptor_sends_its_own_message(mq):
    whole_file_queue(mq)
    mq.sh("( /bin/echo a; /bin/echo b ) > q")
    assert drain(mq / "q") == ["a\n", "b\n"]


def test_shell_builtins_sharing_a_descriptor_send_one_message(mq):
    whole_file_queue(mq)
    mq.sh("{ echo a; echo b; } > q")
    assert drain(mq / "q") == ["a\nb\n"]


def test_closing_a_dup_ends_the_message_written_so_far(mq):
    q = whole_file_queue(mq)
    lines = qio(q, "open:w", "dup:1", "write:x", "1@close", "write:y", "close")
    assert plain(lines) == ["open OK", "dup OK", "write OK 1", "close OK", "write OK 1", "close OK"]
    assert drain(q) == ["x", "y"]


def test_held_bytes_are_charged_to_the_mount(mount_mqfs):
    mq = mount_mqfs("max_bytes=4096")
    q = whole_file_queue(mq, msgsize=100000)
    lines = qio(q, "open:w", "write:" + "z" * 3000, "write:" + "z" * 3000, "close")
    assert plain(lines) == [
        "open OK", "write OK 3000", "write ERR ENOSPC", "close OK"]
    assert counters(q)["curmsgs"] == 0


def test_reads_of_a_whole_file_queue_are_one_message_each(mq):
    q = whole_file_queue(mq)
    qio(q, "open:w", "write:abcdef", "close")
    lines = qio(q, "open:r", "read:4", "read:4", "read:4")
    assert plain(lines) == ["open OK", "read OK 4 abcd", "read OK 2 ef", "read EOF"]


def test_framing_file_is_a_mount_option(mount_mqfs):
    mq = mount_mqfs("framing=file")
    open(mq / "q", "w").close()
    assert mq.getattr("q", "framing") == "file"
    mq.sh("{ echo a; echo b; } > q")
    assert drain(mq / "q") == ["a\nb\n"]
