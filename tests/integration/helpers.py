"""Helpers for the integration tests of namespace, send, receive, attributes
and the daemon: running the C test programs, seeing that a process is blocked
in a FUSE request, reading attributes, and daemons that tests stop themselves.

Every blocking step has a timeout; in-process reads and writes use O_NONBLOCK
so that they can never hang the test run.
"""
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import MQFS, Mount, is_mounted, program, wait_until

# The Python running the tests (Debian's, with pytest); used for child scripts.
PYTHON = sys.executable

# Syscall numbers as /proc/PID/syscall shows them.
_SYSCALLS = {
    "x86_64": {"read": 0, "write": 1},
    "aarch64": {"read": 63, "write": 64},
}[platform.machine()]

ALL_ATTRIBUTES = ("priority", "maxmsg", "msgsize", "read_mode", "recv_timeout_ms", "send_timeout_ms",
                  "curmsgs", "curbytes", "sent", "received", "lspid", "lrpid")
WRITABLE_DEFAULTS = {"priority": "0", "maxmsg": "10", "msgsize": "8192", "read_mode": "message",
                     "recv_timeout_ms": "0", "send_timeout_ms": "0"}
MAX_MSGSIZE = (1 << 20) - 4096


def clean_env(**extra):
    """The environment for child processes, without PYTHONUNBUFFERED (which
    would make a child Python write its stdout unbuffered, a write per call)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(extra)
    return env


def errno_of(call, *args, **kwargs):
    """Calls `call` and returns the errno it failed with, or None."""
    try:
        call(*args, **kwargs)
    except OSError as e:
        return e.errno
    return None


def attr(path, name):
    return os.getxattr(path, "user.mq." + name).decode()


def iattr(path, name):
    return int(attr(path, name))


def put(path, data):
    """One non-blocking write(2) of `data` on a fresh open file; returns its count."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def take(path, size=1 << 20):
    """One non-blocking read(2) on a fresh open file: the next message."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def _run(args, timeout):
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s: {args}")
    assert result.returncode == 0, f"{args} failed ({result.returncode}): {result.stdout}{result.stderr}"
    return result.stdout


def parse_reads(output):
    """read_sizes output: bytes per successful read, an int errno per failed one."""
    results = []
    for line in output.splitlines():
        head, _, tail = line.partition(":")
        if head == "E":
            results.append(int(tail))
        else:
            data = bytes.fromhex(tail)
            assert len(data) == int(head), line
            results.append(data)
    return results


def read_sizes(path, *sizes, nonblock=False, timeout=10):
    """Runs tests/programs/read_sizes: one read(2) of exactly each size on one open file."""
    args = [program("read_sizes")] + (["-n"] if nonblock else []) + [path] + [str(s) for s in sizes]
    return parse_reads(_run(args, timeout))


def write_sizes(path, *messages, nonblock=False, align=None, timeout=10):
    """Runs tests/programs/write_sizes: one write(2) per message on one open file.
    Returns the count each write returned, or -errno."""
    args = [program("write_sizes")] + (["-n"] if nonblock else [])
    if align is not None:
        args += ["-a", str(align)]
    args += [path] + list(messages)
    return [(-int(line[2:]) if line.startswith("E:") else int(line)) for line in _run(args, timeout).splitlines()]


def pattern(n):
    """The bytes write_sizes sends for "#n"."""
    return bytes(ord("a") + i % 26 for i in range(n))


def _proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except OSError:
        return ""


def in_fuse_request(pid, syscall):
    """Whether process `pid` sleeps in a FUSE request made by `syscall` (read/write):
    its request reached mqfs, which has not answered yet."""
    number = (_proc(pid, "syscall").split() or [""])[0]
    return _proc(pid, "wchan").strip() == "request_wait_answer" and number == str(_SYSCALLS[syscall])


def sleeping_in(pid, syscall):
    """Whether process `pid` sleeps anywhere inside `syscall`, in mqfs or in
    the kernel on the way there (e.g. the inode lock FUSE takes for writes)."""
    number = (_proc(pid, "syscall").split() or [""])[0]
    state = (_proc(pid, "stat").rpartition(")")[2].split() or [""])[0]
    return number == str(_SYSCALLS[syscall]) and state in ("S", "D")


def wait_blocked(proc, syscall, what="the process to block", strict=True, timeout=10.0):
    """Waits until `proc` sleeps in a FUSE request of its `syscall` (strict) or
    anywhere in that syscall (not strict); fails if it ends instead."""
    check = in_fuse_request if strict else sleeping_in

    def blocked():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{what}: process ended ({proc.returncode}) instead of blocking: {out}")
        return check(proc.pid, syscall)
    wait_until(blocked, timeout=timeout, what=what)


def assert_still_blocked(proc, syscall, seconds=0.3):
    """Proves a negative: after `seconds` the process is still blocked in its call.
    (The one place where a sleep is right: nothing must happen.)"""
    time.sleep(seconds)
    assert proc.poll() is None, f"process ended ({proc.returncode}) but should still be blocked"
    assert in_fuse_request(proc.pid, syscall), "process is no longer blocked in the FUSE request"


@pytest.fixture
def procs():
    """Factory for background processes that are killed at the end of the test."""
    started = []

    def spawn(args, **kwargs):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        p = subprocess.Popen(args, **kwargs)
        started.append(p)
        return p

    yield spawn
    for p in started:
        if p.poll() is None:
            p.kill()
    deadline = time.monotonic() + 5  # a process stuck in the kernel is left to the daemon's end
    for p in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.communicate(timeout=max(0.1, deadline - time.monotonic()))


def finish(proc, timeout=10):
    """Waits for `proc` and returns (returncode, stdout, stderr); fails on a timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        pytest.fail(f"process {proc.args} did not end within {timeout}s")
    return proc.returncode, out, err


def run_or_release(args, release, timeout=3, **kwargs):
    """Runs `args` (a command that may get stuck behind a blocked writer, in
    the kernel, where no signal ends it). If it has not ended within `timeout`
    seconds, calls `release()` to unblock the writer, lets the command end and
    fails the test. Returns the CompletedProcess otherwise."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(args, p.returncode, out, err)
    except subprocess.TimeoutExpired:
        state = (_proc(p.pid, "stat").rpartition(")")[2].split() or ["?"])[0]
        wchan = _proc(p.pid, "wchan").strip()
        p.kill()
        release()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.communicate(timeout=10)
        pytest.fail(f"{args} was stuck for {timeout}s (state {state}, wchan {wchan}, not killable) "
                    "while a writer was blocked on the queue")


@pytest.fixture
def daemons():
    """Factory like mount_mqfs for tests that end the daemon themselves
    (signals, umount): start(option, ...) mounts a fresh directory;
    start.on(path, option, ...) mounts a new daemon where an earlier one was.
    At the end, whatever still runs (or is stopped) is killed and whatever is
    still mounted is lazily unmounted, without judging how it ended."""
    made = []
    workdir = tempfile.mkdtemp(prefix="mqfs-daemon-test-")

    def on(path, *options, extra_args=()):
        assert not is_mounted(path), f"{path} is still mounted"
        m = Mount(path, options, extra_args)
        made.append(m)
        return m

    def start(*options, extra_args=()):
        path = os.path.join(workdir, f"mnt{len(made)}")
        os.mkdir(path)
        return on(path, *options, extra_args=extra_args)

    start.on = on
    start.workdir = workdir
    yield start
    for m in made:
        with contextlib.suppress(Exception):
            if m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(timeout=10)
        if is_mounted(m.path):
            subprocess.run(["umount", "-l", m.path], timeout=10)
        m.log.close()
    for m in made:
        with contextlib.suppress(OSError):
            os.unlink(m.log_path)
    with contextlib.suppress(OSError):
        for path in {m.path for m in made}:
            os.rmdir(path)
        os.rmdir(workdir)


# What max_bytes charges for each message besides its bytes (README "Limits").
MESSAGE_OVERHEAD = 128


def statfs(path):
    st = os.statvfs(path)
    return {"blocks": st.f_blocks, "bfree": st.f_bfree, "bavail": st.f_bavail, "files": st.f_files,
            "ffree": st.f_ffree, "bsize": st.f_frsize}


__all__ = ["MQFS", "MESSAGE_OVERHEAD", "PYTHON", "ALL_ATTRIBUTES", "WRITABLE_DEFAULTS", "MAX_MSGSIZE", "clean_env", "errno_of", "attr",
           "iattr", "put", "take", "read_sizes", "write_sizes", "parse_reads", "pattern", "in_fuse_request",
           "wait_blocked", "sleeping_in", "assert_still_blocked", "procs", "finish", "run_or_release", "daemons", "statfs", "is_mounted",
           "program", "wait_until", "signal"]
