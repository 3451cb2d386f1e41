"""SPEC section 15, the command-line companion `mq`, run as a real program
(MQ_BIN) against real mounts: `mq send` (one message per argument or all of
standard input, -p/-t for this send alone, -w, the framings, topics), `mq
recv` (priority order, several queues like BLPOP, -n, -w, type selection,
-v, --raw, framed queues, signals, topics), `mq peek`, `mq stat` (text,
--json, --prometheus, directories, -r), the error lines and exit codes
(0 done, 1 error, 2 usage, 3 timeout), --help and --version.

What mq does is checked from the daemon's side as well: the messages it
sent are read back with plain read(2) and MQFS_IOC_GET_DELIVERY, what it
took or left is counted with the user.mq.* attributes, and what mq stat
prints is compared with them.

Every mq call has a timeout; a waiting mq is seen waiting (in a read or
write that mqfs holds, or in poll/select/epoll) before the test acts, and
this process's own descriptors are non-blocking.
"""
import collections
import contextlib
import json
import os
import platform
import re
import signal
import struct
import subprocess
import time

import pytest

from helpers import (EPOLL_SYSCALLS, POLL_SYSCALLS, SELECT_SYSCALLS, SYS_CLOSE, SYS_READ, SYS_WRITE, attr, clean_env,
                     drain, finish, iattr, in_fuse_request, put, set_attr, sleeping_in, take, wait_blocked, wait_exit,
                     wait_until)
from test_leases import STREAM, PyClient, counts, queue, reader
from test_topics import py, topic, wait_subscribers  # noqa: F401 (py is a fixture)
from test_types import send as send_typed

MQ = os.environ["MQ_BIN"]
USAGE_HINT = "Run with --help for more information."
TYPE_RANGE = "1..9223372036854775807"


# -- running mq --------------------------------------------------------------------------------------

Ran = collections.namedtuple("Ran", "code out err seconds")


def mq_run(*args, stdin=b"", timeout=10, cwd=None, user=None):
    """Runs `mq ARGS...` to its end with `stdin` as its standard input:
    Ran(exit status, stdout bytes, stderr text, seconds it took). `user`
    runs it as that user (setpriv). Fails the test after `timeout` seconds."""
    command = [MQ, *map(str, args)]
    if user:
        command = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *command]
    started = time.monotonic()
    try:
        r = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, cwd=cwd, env=clean_env())
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mq {args} still ran after {timeout}s; output so far: {e.stdout!r} {e.stderr!r}")
    return Ran(r.returncode, r.stdout, r.stderr.decode(errors="replace"), time.monotonic() - started)


def mq_ok(*args, **kwargs):
    """Runs mq, which must exit 0 with nothing on stderr; returns its stdout (bytes)."""
    r = mq_run(*args, **kwargs)
    assert (r.code, r.err) == (0, ""), f"mq {args}: {r}"
    return r.out


def mq_start(procs, *args):
    """Starts `mq ARGS...` in the background (stdin /dev/null, stdout and stderr pipes)."""
    return procs.start([MQ, *map(str, args)], stdin=subprocess.DEVNULL, env=clean_env())


def assert_error(r, code, line, out=b""):
    """mq exited with `code`, printed exactly the error line `line` on stderr and `out` on stdout."""
    assert (r.code, r.err, r.out) == (code, line + "\n", out), r


def assert_usage(r):
    """A usage error: exit 2, nothing on stdout, one line `mq: ...` and the hint on stderr."""
    lines = r.err.splitlines()
    assert (r.code, r.out) == (2, b""), r
    assert len(lines) == 2 and lines[0].startswith("mq: ") and lines[1] == USAGE_HINT, r


def assert_range_error(r, line):
    """A value out of range: exit 2, the line `line` first on stderr (the usage hint may follow)."""
    lines = r.err.splitlines()
    assert (r.code, r.out) == (2, b""), r
    assert lines[:1] == [line] and lines[1:] in ([], [USAGE_HINT]), r


_WAIT_SYSCALLS = POLL_SYSCALLS | SELECT_SYSCALLS | EPOLL_SYSCALLS
# fsync(2), which ends a whole-file message as close does (SPEC section 14).
SYS_FSYNC = {"x86_64": 74, "aarch64": 82}[platform.machine()]


def _waits(pid):
    """Whether a thread of process `pid` waits: in a read, write, close or
    fsync (of a whole-file message) that mqfs holds, or in poll/select/epoll."""
    with contextlib.suppress(FileNotFoundError):
        for tid in map(int, os.listdir(f"/proc/{pid}/task")):
            if any(in_fuse_request(tid, call) for call in (SYS_READ, SYS_WRITE, SYS_CLOSE, SYS_FSYNC)) or \
                    sleeping_in(tid, _WAIT_SYSCALLS):
                return True
    return False


def wait_waiting(proc, what):
    """Waits until the mq process `proc` waits for its queues; fails if it ends instead."""
    def waiting():
        if proc.poll() is not None:
            pytest.fail(f"{what}: mq ended ({proc.returncode}) instead of waiting: {proc.communicate(timeout=5)}")
        return _waits(proc.pid)
    wait_until(waiting, what=what)


def ended(proc, what, timeout=10):
    """Waits for a background mq to end: (exit status, stdout bytes, stderr text)."""
    code, out, err = finish(proc, timeout=timeout, what=what)
    return code, out, err.decode(errors="replace")


# -- the daemon's side -----------------------------------------------------------------------------

def deliveries(path):
    """Every message queued in `path` with its MQFS_IOC_GET_DELIVERY, taken in
    queue order through a non-blocking stream-mode descriptor: [(bytes, Delivery)]."""
    c = PyClient()
    fd = c.open(path)
    out = []
    try:
        c.set_read_mode(fd, STREAM)
        while True:
            try:
                data = c.read(fd)
            except BlockingIOError:
                return out
            if not data:
                return out
            out.append((data, c.delivery(fd)))
    finally:
        c.close(fd)


def frame(payload):
    """A u32 frame: the 4-byte little-endian length, then the payload."""
    return struct.pack("<I", len(payload)) + payload


def take_one(path):
    """One message (one line, one frame) of `path`, read through a fresh
    message-mode descriptor: (its bytes, its priority, its type)."""
    c = PyClient()
    fd = c.open(path)
    try:
        data = c.read(fd)
        d = c.delivery(fd)
    finally:
        c.close(fd)
    return data, d.priority, d.type


def take_frame(path):
    """take_one of a u32 queue, its header checked and taken off: (payload, priority, type)."""
    data, priority, message_type = take_one(path)
    assert len(data) >= 4, data
    (length,) = struct.unpack("<I", data[:4])
    assert length == len(data) - 4, data
    return data[4:], priority, message_type


def nacked_once(path):
    """Leases the first message of `path` with an explicit descriptor and returns it:
    it goes back to its place with one delivery counted."""
    c = PyClient()
    h = reader(c, path)
    try:
        data = c.read(h)
        c.nack(h, c.delivery(h).id)
        return data
    finally:
        c.close(h)


def lines(out):
    return out.decode().splitlines()


# -- --help and --version --------------------------------------------------------------------------

HELP_OPTIONS = {"send": ["-p", "-t", "-w"], "recv": ["-t", "-x", "-n", "-w", "-v", "--raw"],
                "peek": ["-n", "-v", "--raw"], "work": ["-j", "-n"], "stat": ["-r", "--json", "--prometheus"],
                "top": ["-s", "-d"]}


def test_mq_help_names_every_subcommand_and_exits_0():
    out = mq_ok("--help").decode()
    for sub in HELP_OPTIONS:
        assert re.search(rf"\b{sub}\b", out), (sub, out)


@pytest.mark.parametrize("sub", sorted(HELP_OPTIONS))
def test_each_subcommands_help_shows_its_options_and_exits_0(sub):
    out = mq_ok(sub, "--help").decode()
    assert re.search(rf"\bmq {sub}\b", out), out
    for option in HELP_OPTIONS[sub]:
        assert re.search(rf"(^|[\s\[,]){re.escape(option)}\b", out, re.M), (option, out)


def test_version_prints_mq_and_the_version():
    out = mq_ok("--version").decode()
    assert re.fullmatch(r"mq \S+\n", out), out


# -- usage errors: exit 2 ----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["send", "--bogus", "Q", "x"],
    ["recv", "--bogus", "Q"],
    ["peek", "-k", "Q"],
    ["stat", "--bogus", "Q"],
    ["send"],
    ["recv"],
    ["peek"],
    ["stat"],
    ["recv", "-t", "1", "-x", "2", "Q"],
    ["peek", "-x", "2", "-t", "1", "Q"],
    ["recv", "-x", "0", "Q"],
    ["recv", "-n", "many", "Q"],
    ["recv", "-n", "-1", "Q"],
    ["peek", "-n", "-2", "Q"],
    ["recv", "-w", "soon", "Q"],
    ["recv", "-w", "-1", "Q"],
    ["send", "-w", "later", "Q", "x"],
    ["send", "-p", "high", "Q", "x"],
    ["recv", "-t", "first", "Q"],
    ["stat", "--json", "--prometheus", "Q"],
    ["frobnicate", "Q"],
], ids=lambda args: " ".join(args))
def test_a_usage_error_exits_2_with_one_line_and_the_hint_and_touches_nothing(mq, args):
    q = queue(mq)
    put(q, b"stays")
    r = mq_run(*[q if a == "Q" else a for a in args])
    assert_usage(r)
    assert counts(q, "curmsgs", "sent", "received") == (1, 1, 0)


def test_mq_without_a_subcommand_is_a_usage_error():
    r = mq_run()
    assert (r.code, r.out) == (2, b""), r


# -- mq send: what is sent -------------------------------------------------------------------------

def test_send_sends_one_message_per_argument_in_order_exactly_and_prints_nothing(mq):
    q = queue(mq)
    assert mq_ok("send", q, "first", "with space", "third\n") == b""
    assert drain(q) == ["first", "with space", "third\n"]
    assert counts(q, "sent") == (3,)


def test_send_without_messages_sends_all_of_standard_input_as_one_message(mq):
    q = queue(mq)
    assert mq_ok("send", q, stdin=b"line one\nline two\n") == b""
    assert drain(q) == ["line one\nline two\n"]


def test_send_reads_standard_input_to_its_end_for_the_one_message(mq):
    q = queue(mq, msgsize=300000)
    data = bytes(i % 251 for i in range(200000))  # more than a pipe holds: many reads for mq
    mq_ok("send", q, stdin=data)
    assert counts(q, "curmsgs", "curbytes") == (1, len(data))
    assert take(q) == data


def test_send_p_and_t_set_this_sends_priority_and_type_not_the_queues(mq):
    q = queue(mq)
    mq_ok("send", "-p", "7", "-t", "3", q, "hello")
    [(data, d)] = deliveries(q)
    assert (data, d.priority, d.type) == (b"hello", 7, 3)
    assert (attr(q, "priority"), attr(q, "type")) == ("0", "1")


def test_send_without_p_and_t_uses_the_queues_priority_and_type_and_p_0_overrides_it(mq):
    q = queue(mq, priority=2, type=5)
    mq_ok("send", q, "default")
    mq_ok("send", "-p", "0", "-t", "1", q, "explicit")
    got = [(data, d.priority, d.type) for data, d in deliveries(q)]
    assert got == [(b"default", 2, 5), (b"explicit", 0, 1)]
    assert (attr(q, "priority"), attr(q, "type")) == ("2", "5")


def test_send_p_and_t_take_their_limits(mq):
    q = queue(mq)
    mq_ok("send", "-p", "32767", "-t", "9223372036854775807", q, "top")
    mq_ok("send", "-p", "0", q, "bottom")
    got = [(data, d.priority, d.type) for data, d in deliveries(q)]
    assert got == [(b"top", 32767, 2**63 - 1), (b"bottom", 0, 1)]


def test_concurrent_senders_at_different_priorities_never_take_each_others(mq, procs):
    q = queue(mq, maxmsg=400)
    each = 100
    senders = {prio: mq_start(procs, "send", "-p", prio, q, *[f"p{prio}-{i}" for i in range(each)])
               for prio in (3, 9)}
    for prio, proc in senders.items():
        assert ended(proc, f"the sender at priority {prio}") == (0, b"", "")
    got = deliveries(q)
    assert len(got) == 2 * each
    for data, d in got:
        assert d.priority == int(data.decode().split("-")[0][1:]), (data, d)
    for prio in (3, 9):
        assert [data for data, _ in got if data.startswith(b"p%d-" % prio)] == \
            [f"p{prio}-{i}".encode() for i in range(each)]
    assert attr(q, "priority") == "0"


def test_send_to_a_topic_publishes_to_its_subscribers(mq, py):
    t = topic(mq)
    h = py.open(t)
    py.set_read_mode(h, STREAM)
    wait_subscribers(t, 1)
    mq_ok("send", "-p", "4", t, "news")
    assert py.read(h) == b"news" and py.delivery(h).priority == 4
    assert counts(t, "curmsgs", "sent", "dropped") == (0, 1, 0)


def test_send_to_a_topic_without_subscribers_succeeds_and_the_message_is_dropped(mq):
    t = topic(mq)
    mq_ok("send", t, "nobody listens")
    assert counts(t, "curmsgs", "sent", "dropped") == (0, 1, 1)


# -- mq send: the framings -------------------------------------------------------------------------

def test_send_to_a_line_queue_adds_the_newline_each_message_is_one_line(mq):
    q = queue(mq, framing="line")
    mq_ok("send", "-p", "4", "-t", "6", q, "one", "two\n")
    mq_ok("send", q, stdin=b"three")
    assert [take_one(q) for _ in range(3)] == [(b"one\n", 4, 6), (b"two\n", 4, 6), (b"three\n", 0, 1)]


@pytest.mark.parametrize("how", ["argument", "stdin"])
@pytest.mark.parametrize("message", ["a\nb", "a\n\n", "\nb"], ids=["inner", "two-at-end", "first"])
def test_send_to_a_line_queue_refuses_a_message_holding_a_newline_before_its_end(mq, message, how):
    q = queue(mq, framing="line")
    r = mq_run("send", q, message) if how == "argument" else mq_run("send", q, stdin=message.encode())
    assert_error(r, 1, f"mq: {q}: message holds a newline, which line framing would split")
    assert counts(q, "curmsgs", "sent") == (0, 0)


def test_send_to_a_line_queue_counts_the_added_newline_against_msgsize(mq):
    q = queue(mq, framing="line", msgsize=4)
    assert_error(mq_run("send", q, "abcd"), 1, f"mq: {q}: message of 5 bytes larger than msgsize 4")
    mq_ok("send", q, "abc")
    assert take(q) == b"abc\n"


def test_send_to_a_u32_queue_writes_the_length_first_the_stored_message_is_the_argument(mq):
    q = queue(mq, framing="u32")
    mq_ok("send", "-p", "5", q, "hello", "a\nb\x01")
    mq_ok("send", q, stdin=b"from\x00stdin")
    assert counts(q, "curmsgs") == (3,)
    assert [take_frame(q) for _ in range(3)] == [(b"hello", 5, 1), (b"a\nb\x01", 5, 1), (b"from\x00stdin", 0, 1)]


def test_send_to_a_u32_queue_keeps_the_priority_and_type_of_the_send(mq):
    q = queue(mq, framing="u32")
    mq_ok("send", q, "low")
    mq_ok("send", "-p", "5", "-t", "2", q, "high")
    assert [take_frame(q) for _ in range(2)] == [(b"high", 5, 2), (b"low", 0, 1)]


def test_msgsize_of_a_u32_queue_bounds_the_payload(mq):
    q = queue(mq, framing="u32", msgsize=5)
    mq_ok("send", q, "hello")
    assert_error(mq_run("send", q, "hello!"), 1, f"mq: {q}: message of 6 bytes larger than msgsize 5")
    assert take_frame(q) == (b"hello", 0, 1)
    assert counts(q, "curmsgs") == (0,)


def test_send_to_a_file_queue_sends_one_message_per_argument_each_at_the_sends_priority(mq):
    q = queue(mq, framing="file")
    mq_ok("send", q, "first")
    mq_ok("send", "-p", "6", "-t", "2", q, "a", "bb", "ccc")
    assert [(data, d.priority, d.type) for data, d in deliveries(q)] == \
        [(b"a", 6, 2), (b"bb", 6, 2), (b"ccc", 6, 2), (b"first", 0, 1)]


def test_send_to_a_file_queue_sends_standard_input_as_one_message(mq):
    q = queue(mq, framing="file", msgsize=300000)
    data = b"x" * 150000
    mq_ok("send", q, stdin=data)
    assert counts(q, "curmsgs", "curbytes") == (1, len(data))


# -- mq send: errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["40000", "32768", "-1"])
def test_send_priority_out_of_range_is_exit_2_before_anything_is_opened(mq, value):
    q = queue(mq)
    assert_range_error(mq_run("send", "-p", value, q, "x"), f"mq: {q}: priority {value} out of range 0..32767")
    assert counts(q, "sent") == (0,)
    missing = mq / "nope"
    assert_range_error(mq_run("send", "-p", value, missing, "x"),
                       f"mq: {missing}: priority {value} out of range 0..32767")
    assert not os.path.exists(missing)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_send_type_out_of_range_is_exit_2(mq, value):
    q = queue(mq)
    assert_range_error(mq_run("send", "-t", value, q, "x"), f"mq: {q}: type {value} out of range {TYPE_RANGE}")
    assert counts(q, "sent") == (0,)


def test_send_to_a_missing_queue_is_exit_1_no_such_queue_and_creates_nothing(mq):
    missing = mq / "nope"
    assert_error(mq_run("send", missing, "x"), 1, f"mq: {missing}: no such queue")
    assert not os.path.exists(missing)


def test_send_takes_a_message_starting_with_a_dash_after_a_double_dash(mq):
    q = queue(mq)
    mq_ok("send", q, "--", "-p", "--raw")
    assert drain(q) == ["-p", "--raw"]


def test_the_error_line_names_the_queue_as_the_user_gave_it(mq):
    os.mkdir(mq / "d")
    assert_error(mq_run("send", "d/../nope", "x", cwd=mq.path), 1, "mq: d/../nope: no such queue")


def test_send_to_a_directory_is_exit_1(mq):
    os.mkdir(mq / "d")
    assert_error(mq_run("send", mq / "d", "x"), 1, f"mq: {mq / 'd'}: is a directory")


def test_send_of_a_message_larger_than_msgsize_is_exit_1_in_words(mq):
    q = queue(mq, msgsize=8)
    assert_error(mq_run("send", q, "123456789"), 1, f"mq: {q}: message of 9 bytes larger than msgsize 8")
    assert_error(mq_run("send", q, stdin=b"x" * 20), 1, f"mq: {q}: message of 20 bytes larger than msgsize 8")
    assert counts(q, "curmsgs", "sent") == (0, 0)


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_send_of_an_empty_message_is_exit_1(mq, how):
    q = queue(mq)
    r = mq_run("send", q, "") if how == "argument" else mq_run("send", q, stdin=b"")
    assert_error(r, 1, f"mq: {q}: empty message (a message holds 1 to msgsize bytes)")
    assert counts(q, "sent") == (0,)


FRAMINGS = ["none", "line", "u32", "file"]


def put_one(path, framing, text):
    """Queues the message `text` (bytes) with one write, framed as the queue's `framing` wants."""
    put(path, frame(text) if framing == "u32" else text + b"\n" if framing == "line" else text)


def stored(path, framing):
    """The next message of `path` as mq send's argument was (u32 header and the
    line's newline taken off): (bytes, priority, type)."""
    data, priority, message_type = take_frame(path) if framing == "u32" else take_one(path)
    if framing == "line":
        assert data.endswith(b"\n"), data
        data = data[:-1]
    return data, priority, message_type


@pytest.mark.parametrize("framing", FRAMINGS)
def test_send_to_a_full_queue_with_w_times_out_with_exit_3_keeping_what_it_sent(mq, framing):
    q = queue(mq, maxmsg=2, framing=framing)
    r = mq_run("send", "-w", "0.3", q, "a", "b", "c", "d")
    assert_error(r, 3, f"mq: {q}: timed out")
    assert 0.25 <= r.seconds < 8, r.seconds
    assert counts(q, "curmsgs", "sent") == (2, 2)
    assert [stored(q, framing)[0] for _ in range(2)] == [b"a", b"b"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_send_w_0_does_not_wait_for_room(mq, framing):
    q = queue(mq, maxmsg=1, framing=framing)
    put_one(q, framing, b"full")
    r = mq_run("send", "-w", "0", q, "more")
    assert_error(r, 3, f"mq: {q}: timed out")
    assert r.seconds < 5, r.seconds
    assert counts(q, "curmsgs", "sent") == (1, 1)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_send_w_with_room_for_everything_is_exit_0(mq, framing):
    q = queue(mq, maxmsg=3, framing=framing)
    mq_ok("send", "-w", "0", q, "a", "b")
    mq_ok("send", "-w", "5", "-p", "1", q, "c")
    assert [stored(q, framing) for _ in range(3)] == [(b"c", 1, 1), (b"a", 0, 1), (b"b", 0, 1)]


def test_send_hitting_the_queues_send_timeout_ms_is_exit_3(mq):
    q = queue(mq, maxmsg=1, send_timeout_ms=200)
    put(q, b"full")
    assert_error(mq_run("send", q, "more"), 3, f"mq: {q}: timed out")
    assert drain(q) == ["full"]


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("wait", [[], ["-w", "30"]], ids=["no-w", "w-30"])
def test_a_send_waiting_for_room_is_released_by_a_reader(mq, procs, wait, framing):
    q = queue(mq, maxmsg=1, framing=framing)
    put_one(q, framing, b"first")
    sender = mq_start(procs, "send", *wait, "-p", "2", "-t", "4", q, "second")
    wait_waiting(sender, "mq send to wait for room")
    assert sender.poll() is None
    assert stored(q, framing) == (b"first", 0, 1)
    assert ended(sender, "mq send to get through") == (0, b"", "")
    assert stored(q, framing) == (b"second", 2, 4)
    assert counts(q, "curmsgs") == (0,)


def test_send_without_permission_is_exit_1_permission_denied(mount_mqfs):
    m = mount_mqfs("allow_other")
    os.chmod(os.path.dirname(m.path), 0o755)
    q = queue(m)
    os.chmod(q, 0o600)
    assert_error(mq_run("send", "q", "x", cwd=m.path, user="nobody"), 1, "mq: q: permission denied")
    put(q, b"private")
    assert_error(mq_run("recv", "-w", "1", "q", cwd=m.path, user="nobody"), 1, "mq: q: permission denied")
    assert counts(q, "curmsgs", "sent") == (1, 1)


@pytest.mark.parametrize("sub", ["send", "recv", "peek"])
def test_a_file_outside_mqfs_is_not_an_mqfs_queue_and_is_left_alone(tmp_path, sub):
    path = tmp_path / "x"
    path.write_bytes(b"data")
    args = [sub, path, "x"] if sub == "send" else [sub, "-w", "1", path] if sub == "recv" else [sub, path]
    assert_error(mq_run(*args), 1, f"mq: {path}: not an mqfs queue")
    assert path.read_bytes() == b"data"


@pytest.mark.parametrize("sub", ["recv", "peek"])
def test_recv_and_peek_of_a_missing_queue_or_a_directory_are_exit_1(mq, sub):
    missing, d = mq / "nope", mq / "d"
    os.mkdir(d)
    assert_error(mq_run(sub, missing), 1, f"mq: {missing}: no such queue")
    assert_error(mq_run(sub, d), 1, f"mq: {d}: is a directory")
    assert not os.path.exists(missing)


# -- mq recv -----------------------------------------------------------------------------------------

def test_recv_takes_one_message_by_default_the_highest_priority_first(mq):
    q = queue(mq)
    send_typed(q, "1/1:low", "1/5:high", "1/3:mid")
    assert mq_ok("recv", q) == b"high\n"
    assert counts(q, "curmsgs", "received") == (2, 1)


def test_recv_n_takes_count_messages_in_priority_then_fifo_order(mq):
    q = queue(mq)
    send_typed(q, "1/1:low", "1/5:high1", "1/3:mid", "1/5:high2", "1/1:low2")
    assert mq_ok("recv", "-n", "4", q) == b"high1\nhigh2\nmid\nlow\n"
    assert drain(q) == ["low2"]


def test_recv_adds_a_newline_only_to_a_message_without_one(mq):
    q = queue(mq)
    put(q, b"plain")
    put(q, b"ends\n")
    put(q, b"bin\x00ary")
    put(q, b"two\n\n")
    assert mq_ok("recv", "-n", "4", q) == b"plain\nends\nbin\x00ary\ntwo\n\n"


def test_recv_raw_prints_the_bytes_exactly(mq):
    q = queue(mq)
    messages = [b"\x00\x01\xff", b"no newline", b"\n", bytes(range(256))]
    for m in messages:
        put(q, m)
    assert mq_ok("recv", "--raw", "-n", "4", q) == b"".join(messages)


def test_recv_v_prints_a_header_line_before_each_message(mq):
    q = queue(mq)
    send_typed(q, "3/7:hello", "1/2:world\n")
    out = mq_ok("recv", "-v", "-n", "2", q)
    assert out == f"{q} priority=7 type=3 delivery=1\nhello\n{q} priority=2 type=1 delivery=1\nworld\n".encode()


def test_recv_v_names_the_queue_as_given_and_counts_earlier_deliveries(mq):
    q = queue(mq)
    put(q, b"again")
    assert nacked_once(q) == b"again"
    assert mq_ok("recv", "-v", "./q", cwd=mq.path) == b"./q priority=0 type=1 delivery=2\nagain\n"


def test_recv_v_raw_prints_the_header_line_then_the_bytes_exactly(mq):
    q = queue(mq)
    put(q, b"a\x00")
    put(q, b"b")
    assert mq_ok("recv", "-v", "--raw", "-n", "2", q) == \
        f"{q} priority=0 type=1 delivery=1\n".encode() + b"a\x00" + f"{q} priority=0 type=1 delivery=1\n".encode() + b"b"


def test_recv_takes_from_the_first_queue_given_that_has_a_message(mq):
    q1, q2, q3 = (queue(mq, name) for name in ("q1", "q2", "q3"))
    send_typed(q2, "1/1:in q2")
    send_typed(q3, "1/9:in q3")  # a higher priority in a later queue does not count
    assert mq_ok("recv", "-v", q1, q2, q3) == f"{q2} priority=1 type=1 delivery=1\nin q2\n".encode()
    assert [counts(q, "curmsgs") for q in (q1, q2, q3)] == [(0,), (0,), (1,)]


def test_recv_n_checks_the_queues_in_the_order_given_for_each_message(mq):
    q1, q2 = queue(mq, "q1"), queue(mq, "q2")
    for q, text in ((q1, b"a1"), (q1, b"a2"), (q2, b"b1")):
        put(q, text)
    assert mq_ok("recv", "-n", "2", q1, q2) == b"a1\na2\n"  # q1 first each time: no turns
    put(q1, b"a3")
    assert mq_ok("recv", "-n", "2", q1, q2) == b"a3\nb1\n"  # then q1 is empty


def test_recv_of_several_queues_one_missing_is_exit_1_and_takes_nothing(mq):
    q = queue(mq)
    put(q, b"stays")
    missing = mq / "nope"
    assert_error(mq_run("recv", q, missing), 1, f"mq: {missing}: no such queue")
    assert counts(q, "curmsgs", "received") == (1, 0)


@pytest.mark.parametrize("sub", ["recv", "peek"])
@pytest.mark.parametrize("framing", ["none", "u32"])
def test_recv_and_peek_print_a_large_message_whole(mq, sub, framing):
    q = queue(mq, msgsize=600000, framing=framing)
    data = bytes(i % 253 for i in range(500000))
    put(q, frame(data) if framing == "u32" else data)
    put(q, frame(b"next") if framing == "u32" else b"next")
    assert mq_ok(sub, "--raw", "-n", "2", q) == data + b"next"
    assert counts(q, "curmsgs") == ((2,) if sub == "peek" else (0,))


@pytest.mark.parametrize("sub", ["recv", "peek"])
@pytest.mark.parametrize("framing", ["none", "line", "u32"])
def test_a_message_longer_than_a_lowered_msgsize_is_printed_whole(mq, sub, framing):
    # mq reads with room for msgsize first; a message sent before msgsize
    # was lowered is longer, and must still come whole and alone.
    q = queue(mq, msgsize=8192, framing=framing)
    data = b"".join(b"%d," % i for i in range(1500))[:6000] + (b"\n" if framing == "line" else b"")
    for message in (data, b"next\n" if framing == "line" else b"next"):
        put(q, frame(message) if framing == "u32" else message)
    set_attr(q, "msgsize", "100")
    assert mq_ok(sub, "--raw", "-n", "1", q) == data
    assert counts(q, "curmsgs") == ((2,) if sub == "peek" else (1,))
    assert mq_ok(sub, "--raw", "-n", "2" if sub == "peek" else "1", q) == (data if sub == "peek" else b"") + (
        b"next\n" if framing == "line" else b"next")


def test_recv_waits_on_every_queue_and_is_woken_by_a_write_to_the_second(mq, procs):
    q1, q2 = queue(mq, "q1"), queue(mq, "q2")
    receiver = mq_start(procs, "recv", "-v", "-w", "30", q1, q2)
    wait_waiting(receiver, "mq recv to wait on both queues")
    send_typed(q2, "4/6:wake up")
    assert ended(receiver, "mq recv to get the message") == \
        (0, f"{q2} priority=6 type=4 delivery=1\nwake up\n".encode(), "")
    assert [counts(q, "curmsgs", "received") for q in (q1, q2)] == [(0, 0), (0, 1)]


def test_concurrent_receivers_on_two_queues_get_every_message_once(mq, procs):
    q1, q2 = queue(mq, "q1", maxmsg=100), queue(mq, "q2", maxmsg=100)
    receivers = [mq_start(procs, "recv", "-n", "50", "-w", "60", q1, q2) for _ in range(2)]
    for proc in receivers:
        wait_waiting(proc, "mq recv to wait on both queues")
    mq_ok("send", q1, *[f"a{i}" for i in range(50)], timeout=30)
    mq_ok("send", q2, *[f"b{i}" for i in range(50)], timeout=30)
    got = []
    for proc in receivers:
        code, out, err = ended(proc, "mq recv to get 50 messages", timeout=60)
        assert (code, err, len(lines(out))) == (0, "", 50), (code, err, out)
        got += lines(out)
        for prefix in "ab":  # each queue's messages in the order sent
            mine = [int(m[1:]) for m in lines(out) if m[0] == prefix]
            assert mine == sorted(mine), out
    assert sorted(got) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)])
    assert counts(q1, "curmsgs") == counts(q2, "curmsgs") == (0,)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("wait", [[], ["-w", "30"]], ids=["no-w", "w-30"])
def test_a_waiting_recv_n_takes_messages_as_they_come(mq, procs, framing, wait):
    q = queue(mq, framing=framing)
    receiver = mq_start(procs, "recv", "-n", "2", *wait, q)
    put_one(q, framing, b"one")
    wait_until(lambda: counts(q, "curmsgs") == (0,), what="mq recv to take the first message")
    wait_waiting(receiver, "mq recv to wait for the second message")
    put_one(q, framing, b"two")
    assert ended(receiver, "mq recv to get both") == (0, b"one\ntwo\n", "")
    assert counts(q, "curmsgs", "received") == (0, 2)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_recv_w_of_a_framed_queue_prints_what_came_then_exits_3(mq, framing):
    q = queue(mq, framing=framing)
    put_one(q, framing, b"only")
    r = mq_run("recv", "-n", "2", "-w", "0.3", q)
    assert_error(r, 3, f"mq: {q}: timed out", out=b"only\n")
    assert counts(q, "curmsgs", "received") == (0, 1)


def test_recv_w_prints_what_came_then_exits_3(mq):
    q1, q2 = queue(mq, "q1"), queue(mq, "q2")
    put(q2, b"only one")
    r = mq_run("recv", "-n", "3", "-w", "0.4", q1, q2)
    assert_error(r, 3, f"mq: {q1}: timed out", out=b"only one\n")
    assert 0.3 <= r.seconds < 8, r.seconds


def test_recv_w_with_nothing_prints_only_the_error_line(mq):
    q = queue(mq)
    r = mq_run("recv", "-w", "0.3", q)
    assert_error(r, 3, f"mq: {q}: timed out")
    assert 0.25 <= r.seconds < 8, r.seconds


def test_recv_w_0_takes_only_what_is_there_now(mq):
    q = queue(mq)
    put(q, b"a")
    put(q, b"b")
    assert_error(mq_run("recv", "-w", "0", "-n", "5", q), 3, f"mq: {q}: timed out", out=b"a\nb\n")
    assert_error(mq_run("recv", "-w", "0", q), 3, f"mq: {q}: timed out")
    put(q, b"c")
    assert mq_ok("recv", "-w", "0", q) == b"c\n"


def test_recv_hitting_the_queues_recv_timeout_ms_is_exit_3(mq):
    q = queue(mq, recv_timeout_ms=200)
    r = mq_run("recv", q)
    assert_error(r, 3, f"mq: {q}: timed out")


TYPED = ("5:five", "3:three", "2:two", "4:four", "2:two again", "1/9:one high")


@pytest.mark.parametrize("sub", ["recv", "peek"])
@pytest.mark.parametrize("selection, expected", [
    (["-t", "2"], ["two", "two again"]),
    (["-t", "0"], ["one high", "five", "three", "two", "four", "two again"]),
    (["-x", "2"], ["one high", "five", "three", "four"]),
    (["-t", "-3"], ["one high", "two", "two again", "three"]),
    (["-t", "-1"], ["one high"]),
    (["-t", "7"], []),
], ids=["only-2", "any", "all-but-2", "lowest-up-to-3", "lowest-up-to-1", "none"])
def test_type_selection_is_msgrcvs(mq, sub, selection, expected):
    q = queue(mq)
    send_typed(q, *TYPED)
    if sub == "recv":
        r = mq_run("recv", *selection, "-n", str(len(expected) + 1), "-w", "0", q)
        want = "".join(m + "\n" for m in expected).encode()
        assert_error(r, 3, f"mq: {q}: timed out", out=want)
        assert counts(q, "curmsgs") == (len(TYPED) - len(expected),)
    else:
        assert mq_ok("peek", *selection, q) == "".join(m + "\n" for m in expected).encode()
        assert counts(q, "curmsgs") == (len(TYPED),)


def test_a_waiting_recv_t_is_not_woken_by_other_types(mq, procs):
    q = queue(mq)
    receiver = mq_start(procs, "recv", "-t", "2", "-w", "30", q)
    wait_waiting(receiver, "mq recv -t 2 to wait")
    send_typed(q, "1:other")
    time.sleep(0.3)  # nothing must happen: mq recv -t 2 keeps waiting
    assert receiver.poll() is None and _waits(receiver.pid)
    send_typed(q, "2:mine")
    assert ended(receiver, "mq recv -t 2 to get its message") == (0, b"mine\n", "")
    assert drain(q) == ["other"]


@pytest.mark.parametrize("sub", ["recv", "peek"])
def test_a_u32_queue_prints_the_payload(mq, sub):
    q = queue(mq, framing="u32")
    put(q, frame(b"first") + frame(b"sec\x00ond\n"))
    assert mq_ok(sub, "-n", "2", q) == b"first\nsec\x00ond\n"
    assert counts(q, "curmsgs") == ((2,) if sub == "peek" else (0,))


def test_peek_raw_of_a_u32_queue_prints_the_payloads_exactly(mq):
    q = queue(mq, framing="u32")
    put(q, frame(b"\x00\x01") + frame(b"xyz"))
    assert mq_ok("peek", "--raw", q) == b"\x00\x01xyz"


def test_recv_raw_of_a_u32_queue_prints_the_payloads_exactly(mq):
    q = queue(mq, framing="u32")
    put(q, frame(b"\x00\x01") + frame(b"xyz"))
    assert mq_ok("recv", "--raw", "-n", "2", q) == b"\x00\x01xyz"


def test_recv_of_a_framed_queue_takes_only_the_messages_it_prints(mq):
    lq, uq = queue(mq, "lq", framing="line"), queue(mq, "uq", framing="u32")
    put(lq, b"one\ntwo\nthree\n")
    put(uq, frame(b"one") + frame(b"two") + frame(b"three"))
    assert mq_ok("recv", lq) == b"one\n"
    assert mq_ok("recv", uq) == b"one\n"
    assert counts(lq, "curmsgs") == counts(uq, "curmsgs") == (2,)
    assert mq_ok("recv", "-v", "-n", "2", lq) == \
        f"{lq} priority=0 type=1 delivery=1\ntwo\n{lq} priority=0 type=1 delivery=1\nthree\n".encode()
    assert take_frame(uq)[0] == b"two"


@pytest.mark.parametrize("queues", [1, 2], ids=["one-queue", "two-queues"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_waiting_recv_ended_by_a_signal_takes_nothing(mq, procs, sig, queues):
    qs = [queue(mq, f"q{i}") for i in range(queues)]
    receiver = mq_start(procs, "recv", *qs)
    wait_waiting(receiver, "mq recv to wait")
    receiver.send_signal(sig)
    code, _ = wait_exit(receiver, 10, "mq recv to end on the signal")
    assert code != 0
    assert receiver.stdout.read() == b""
    put(qs[-1], b"still here")
    assert counts(qs[-1], "curmsgs", "received", "waiting_readers") == (1, 0, 0)
    assert take(qs[-1]) == b"still here"


def test_recv_on_a_topic_gets_a_message_published_after_it_started(mq, procs):
    t = topic(mq)
    mq_ok("send", t, "before")  # no subscriber yet: dropped
    receiver = mq_start(procs, "recv", "-v", "-w", "30", t)
    wait_subscribers(t, 1)
    send_typed(t, "2/3:after")
    assert ended(receiver, "mq recv to get the published message") == \
        (0, f"{t} priority=3 type=2 delivery=1\nafter\n".encode(), "")
    wait_subscribers(t, 0)
    assert counts(t, "sent", "dropped") == (2, 1)


def test_recv_n_on_a_topic_stays_subscribed_for_every_message(mq, procs):
    t = topic(mq)
    receiver = mq_start(procs, "recv", "-n", "3", "-w", "30", t)
    wait_subscribers(t, 1)
    for text in ("one", "two", "three"):
        put(t, text.encode())
    assert ended(receiver, "mq recv to get three published messages") == (0, b"one\ntwo\nthree\n", "")
    assert counts(t, "dropped") == (0,)


# -- mq peek -----------------------------------------------------------------------------------------

def test_peek_prints_every_queued_message_in_order_and_takes_none(mq):
    q = queue(mq)
    send_typed(q, "1/1:low", "1/5:high1", "1/3:mid", "1/5:high2")
    before = counts(q, "curmsgs", "curbytes", "received", "inflight")
    assert mq_ok("peek", q) == b"high1\nhigh2\nmid\nlow\n"
    assert counts(q, "curmsgs", "curbytes", "received", "inflight") == before == (4, 16, 0, 0)
    assert mq_ok("peek", q) == b"high1\nhigh2\nmid\nlow\n"
    assert mq_ok("recv", q) == b"high1\n"


def test_peek_n_prints_the_first_count(mq):
    q = queue(mq)
    send_typed(q, "1/1:low", "1/5:high", "1/3:mid")
    assert mq_ok("peek", "-n", "2", q) == b"high\nmid\n"
    assert mq_ok("peek", "-n", "9", q) == b"high\nmid\nlow\n"
    assert counts(q, "curmsgs") == (3,)


def test_peek_v_shows_the_deliveries_so_far(mq):
    q = queue(mq)
    send_typed(q, "6/2:tried", "1/1:fresh\n")
    assert nacked_once(q) == b"tried"
    assert mq_ok("peek", "-v", q) == \
        f"{q} priority=2 type=6 delivery=1\ntried\n{q} priority=1 type=1 delivery=0\nfresh\n".encode()


def test_peek_raw_prints_the_bytes_exactly(mq):
    q = queue(mq)
    put(q, b"a\x00")
    put(q, b"b")
    assert mq_ok("peek", "--raw", q) == b"a\x00b"


def test_peek_of_an_empty_queue_prints_nothing_and_does_not_wait(mq):
    q = queue(mq)
    r = mq_run("peek", q, timeout=10)
    assert (r.code, r.out, r.err) == (0, b"", "")
    assert counts(q, "waiting_readers") == (0,)


# -- mq stat -----------------------------------------------------------------------------------------

COLUMNS = ["QUEUE", "MSGS", "BYTES", "MAXMSG", "MSGSIZE", "READERS", "WRITERS", "INFLIGHT", "SENT", "RECEIVED",
           "OLDEST"]
COLUMN_ATTRS = {"MSGS": "curmsgs", "BYTES": "curbytes", "MAXMSG": "maxmsg", "MSGSIZE": "msgsize",
                "READERS": "waiting_readers", "WRITERS": "waiting_writers", "INFLIGHT": "inflight", "SENT": "sent",
                "RECEIVED": "received"}
JSON_ATTRS = {"messages": "curmsgs", "bytes": "curbytes", "maxmsg": "maxmsg", "msgsize": "msgsize",
              "waiting_readers": "waiting_readers", "waiting_writers": "waiting_writers", "inflight": "inflight",
              "sent": "sent", "received": "received", "dead_lettered": "dead_lettered", "dropped": "dropped",
              "subscribers": "subscribers"}
GAUGES = {"mq_messages": "curmsgs", "mq_bytes": "curbytes", "mq_maxmsg": "maxmsg", "mq_msgsize": "msgsize",
          "mq_waiting_readers": "waiting_readers", "mq_waiting_writers": "waiting_writers",
          "mq_inflight": "inflight", "mq_oldest_seconds": None}
PROM_COUNTERS = {"mq_sent_total": "sent", "mq_received_total": "received",
                 "mq_dead_lettered_total": "dead_lettered", "mq_dropped_total": "dropped"}


def stat_table(out):
    """The rows of mq stat's text output as dicts by column, after checking the
    header and that every column is aligned (its fields all start, or all end,
    at the same place)."""
    text = lines(out)
    assert text and text[0].split() == COLUMNS, text
    spans = [[m.span() for m in re.finditer(r"\S+", line)] for line in text]
    assert all(len(s) == len(COLUMNS) for s in spans), text
    for i, column in enumerate(COLUMNS):
        starts, ends = {s[i][0] for s in spans}, {s[i][1] for s in spans}
        assert len(starts) == 1 or len(ends) == 1, f"column {column} is not aligned:\n" + "\n".join(text)
    return [dict(zip(COLUMNS, line.split())) for line in text[1:]]


def stat_rows(*args, **kwargs):
    return stat_table(mq_ok("stat", *args, **kwargs))


OLDEST_UNITS = (("ms", 1, 1000), ("s", 1000, 60000), ("m", 60000, 3600000), ("h", 3600000, 86400000),
                ("d", 86400000, None))


def oldest_texts(low_ms, high_ms):
    """Every way OLDEST may show an age between low_ms and high_ms: the unit
    its size calls for, the count cut or rounded."""
    texts = set()
    for ms in range(max(0, low_ms), high_ms + 1):
        unit, size, _ = next(u for u in OLDEST_UNITS if u[2] is None or ms < u[2])
        texts.update({f"{ms // size}{unit}", f"{round(ms / size)}{unit}"})
    return texts


def check_row(row, path):
    """A text row shows the queue's counters and its oldest message's age."""
    for column, name in COLUMN_ATTRS.items():
        assert row[column] == attr(path, name), (column, row)


def busy_mount(m, procs, py):
    """Queues in every state mq stat shows: {name: path}. q: 3 messages, one of
    them leased (in flight) and one moved to the dead-letter queue dl; e: a
    reader waits; f: full, a writer waits; t: a topic with a subscriber and a
    dropped message."""
    paths = {"dl": queue(m, "dl")}
    paths["q"] = queue(m, "q", dead_letter="dl", max_deliveries=1)
    send_typed(paths["q"], "1/3:dead", "1/2:leased", "1/1:a", "1/1:bb")
    h = reader(py, paths["q"])
    py.read(h)
    py.nack(h, py.delivery(h).id)  # past max_deliveries: to dl
    assert py.read(h) == b"leased"
    paths["e"] = queue(m, "e")
    wait_blocked(procs.qio(paths["e"], "open:r", "read"), SYS_READ, what="a reader to wait on e")
    paths["f"] = queue(m, "f", maxmsg=1)
    put(paths["f"], b"full")
    wait_blocked(procs.qio(paths["f"], "open:w", "write:more"), SYS_WRITE, what="a writer to wait on f")
    paths["t"] = topic(m)
    put(paths["t"], b"dropped")
    py.open(paths["t"])
    assert counts(paths["q"], "curmsgs", "inflight", "dead_lettered") == (2, 1, 1)
    assert counts(paths["e"], "waiting_readers") == counts(paths["f"], "waiting_writers") == (1,)
    assert counts(paths["t"], "subscribers", "dropped") == (1, 1)
    return paths


def test_stat_of_a_queue_prints_the_header_and_its_row(mq):
    q = queue(mq, maxmsg=20, msgsize=4096)
    put(q, b"hello")
    put(q, b"world!")
    take(q)
    [row] = stat_rows(q)
    assert row["QUEUE"] == q
    assert {c: row[c] for c in COLUMN_ATTRS} == {"MSGS": "1", "BYTES": "6", "MAXMSG": "20", "MSGSIZE": "4096",
                                                 "READERS": "0", "WRITERS": "0", "INFLIGHT": "0", "SENT": "2",
                                                 "RECEIVED": "1"}


def test_stat_shows_waiting_readers_writers_inflight_and_counters_as_the_attributes_do(mq, procs, py):
    paths = busy_mount(mq, procs, py)
    names = sorted(paths)
    rows = stat_rows(*(paths[n] for n in names))
    assert [row["QUEUE"] for row in rows] == [paths[n] for n in names]
    for name, row in zip(names, rows):
        check_row(row, paths[name])


def test_stat_takes_nothing(mq):
    q = queue(mq)
    put(q, b"x")
    stat_rows(q)
    mq_ok("stat", "--json", q)
    mq_ok("stat", "--prometheus", q)
    assert counts(q, "curmsgs", "received", "inflight") == (1, 0, 0)


def test_stat_of_a_directory_lists_its_queues_by_name_not_those_below(mq):
    for name in ("d/b", "d/a", "d/c", "d/sub/x"):
        queue(mq, name)
    put(mq / "d/c", b"in c")
    rows = stat_rows("d", cwd=mq.path)
    assert [row["QUEUE"] for row in rows] == ["d/a", "d/b", "d/c"]
    assert rows[2]["MSGS"] == "1"


def test_stat_r_lists_the_queues_of_subdirectories_too(mq):
    for name in ("d/b", "d/a", "d/sub/y", "d/sub/x", "d/sub/deeper/z", "other/w"):
        queue(mq, name)
    rows = stat_rows("-r", "d", cwd=mq.path)
    assert [row["QUEUE"] for row in rows] == ["d/a", "d/b", "d/sub/deeper/z", "d/sub/x", "d/sub/y"]
    rows = stat_rows("-r", mq.path)
    assert [row["QUEUE"] for row in rows] == [os.path.join(mq.path, n) for n in
                                              ("d/a", "d/b", "d/sub/deeper/z", "d/sub/x", "d/sub/y", "other/w")]


def test_stat_r_visits_a_directory_at_its_place_among_the_names(mq):
    """Depth-first with names sorted: a subdirectory's queues come where its name sorts."""
    for name in ("a", "m/x", "z"):
        queue(mq, name)
    assert [row["QUEUE"] for row in stat_rows("-r", ".", cwd=mq.path)] == ["./a", "./m/x", "./z"]


def test_stat_prints_the_paths_in_the_order_given(mq):
    a, b = queue(mq, "a"), queue(mq, "b")
    assert [row["QUEUE"] for row in stat_rows(b, a)] == [b, a]


def test_stat_oldest_is_a_dash_then_ms_then_seconds(mq):
    q = queue(mq)
    [row] = stat_rows(q)
    assert row["OLDEST"] == "-"
    put(q, b"ageing")
    low = iattr(q, "oldest_ms")
    [row] = stat_rows(q)
    high = iattr(q, "oldest_ms")
    assert row["OLDEST"] in oldest_texts(low - 50, high + 50), (row, low, high)
    assert row["OLDEST"].endswith("ms") or high > 900, row  # young: in milliseconds
    wait_until(lambda: iattr(q, "oldest_ms") >= 1100, what="the message to age past a second")
    low = iattr(q, "oldest_ms")
    [row] = stat_rows(q)
    high = iattr(q, "oldest_ms")
    assert re.fullmatch(r"\d+s", row["OLDEST"]) and row["OLDEST"] in oldest_texts(low - 50, high + 50), \
        (row, low, high)


def test_stat_json_is_an_array_whose_numbers_are_the_attributes(mq, procs, py):
    paths = busy_mount(mq, procs, py)
    low = {name: iattr(path, "oldest_ms") for name, path in paths.items()}
    out = mq_ok("stat", "--json", "-r", mq.path)
    high = {name: iattr(path, "oldest_ms") for name, path in paths.items()}
    got = json.loads(out)
    assert isinstance(got, list)
    assert [o["queue"] for o in got] == [paths[n] for n in sorted(paths)]
    for name, o in zip(sorted(paths), got):
        path = paths[name]
        assert set(o) == {"queue", "kind", "oldest_ms", *JSON_ATTRS}, o
        assert all(type(o[k]) is int for k in (*JSON_ATTRS, "oldest_ms")), o
        assert o["kind"] == ("topic" if name == "t" else "queue")
        assert {k: o[k] for k in JSON_ATTRS} == {k: iattr(path, a) for k, a in JSON_ATTRS.items()}, name
        assert low[name] - 50 <= o["oldest_ms"] <= high[name] + 50, (name, o, low, high)


def test_stat_json_and_prometheus_escape_the_queue_names(mq):
    names = ['we"ird', "back\\slash", "sp ace"]
    paths = [queue(mq, name) for name in names]
    assert [o["queue"] for o in json.loads(mq_ok("stat", "--json", *paths))] == paths
    samples = prometheus(mq_ok("stat", "--prometheus", *paths))[2]
    assert {label for metric, label in samples if metric == "mq_messages"} == set(paths)


def test_stat_json_of_an_empty_directory_is_an_empty_array(mq):
    os.mkdir(mq / "empty")
    assert json.loads(mq_ok("stat", "--json", mq / "empty")) == []


PROM_SAMPLE = re.compile(r'^(\w+)\{queue="((?:[^"\\]|\\.)*)"\} (\S+)$')


def prometheus(out):
    """Parses the text exposition format: ({metric: help}, {metric: type}, {(metric, queue): value})."""
    helps, types, samples = {}, {}, {}
    for line in lines(out):
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            assert name not in helps and text, line
            helps[name] = text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name not in types and name in helps, line
            types[name] = kind
        else:
            m = PROM_SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, label, value = m.groups()
            label = re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], label)
            assert name in types and (name, label) not in samples, line
            samples[(name, label)] = float(value)
    return helps, types, samples


def test_stat_prometheus_has_help_type_and_a_sample_per_metric_and_queue(mq, procs, py):
    paths = busy_mount(mq, procs, py)
    low = {name: iattr(path, "oldest_ms") for name, path in paths.items()}
    out = mq_ok("stat", "--prometheus", *paths.values())
    high = {name: iattr(path, "oldest_ms") for name, path in paths.items()}
    helps, types, samples = prometheus(out)
    assert types == {**{g: "gauge" for g in GAUGES}, **{c: "counter" for c in PROM_COUNTERS}}
    assert set(helps) == set(types)
    assert set(samples) == {(metric, path) for metric in types for path in paths.values()}
    for name, path in paths.items():
        for metric, a in {**GAUGES, **PROM_COUNTERS}.items():
            if a:
                assert samples[(metric, path)] == iattr(path, a), (metric, name)
        seconds = samples[("mq_oldest_seconds", path)]
        assert (low[name] - 50) / 1000 <= seconds <= (high[name] + 50) / 1000, (name, seconds, low, high)


def test_stat_prometheus_oldest_seconds_is_a_fraction(mq):
    q = queue(mq)
    put(q, b"x")
    wait_until(lambda: iattr(q, "oldest_ms") >= 300, what="the message to age")
    value = prometheus(mq_ok("stat", "--prometheus", q))[2][("mq_oldest_seconds", q)]
    assert 0.3 <= value < 30 and not value.is_integer(), value


def test_stat_of_a_path_outside_mqfs_prints_the_others_then_exits_1(mq, tmp_path):
    q = queue(mq)
    outside = tmp_path / "x"
    outside.write_text("")
    r = mq_run("stat", q, outside)
    assert (r.code, r.err) == (1, f"mq: {outside}: not an mqfs queue\n"), r
    assert [row["QUEUE"] for row in stat_table(r.out)] == [q]


def test_stat_of_a_missing_queue_is_exit_1(mq):
    missing = mq / "nope"
    r = mq_run("stat", missing)
    assert (r.code, r.err) == (1, f"mq: {missing}: no such queue\n"), r


def test_top_refuses_an_output_that_is_not_a_terminal(mq):
    queue(mq)
    assert_error(mq_run("top", mq.path), 1, "mq: top: standard output is not a terminal (mq stat prints once)")
