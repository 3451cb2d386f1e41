"""Shared helpers of the waiting, signal, timeout, poll, ioctl and stress tests.

Processes started here are tracked by the `procs` fixture and killed (by
pid) when the test ends, whatever happened. Every wait has a timeout.
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import program, wait_until

# x86_64 system call numbers, as /proc/PID/syscall shows them.
SYS_READ = 0
SYS_WRITE = 1
SYS_POLL = 7
SYS_SELECT = 23
SYS_EPOLL_WAIT = 232
SYS_PSELECT6 = 270
SYS_PPOLL = 271
SYS_EPOLL_PWAIT = 281
SYS_EPOLL_PWAIT2 = 441
POLL_SYSCALLS = {SYS_POLL, SYS_PPOLL}
SELECT_SYSCALLS = {SYS_SELECT, SYS_PSELECT6}
EPOLL_SYSCALLS = {SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT, SYS_EPOLL_PWAIT2}

# Where the kernel keeps a task whose FUSE request the daemon has not answered.
FUSE_WAIT = "request_wait_answer"


class Procs:
    """Starts processes and kills whatever is left of them at the end of the test."""

    def __init__(self):
        self.started = []

    def start(self, args, **kwargs):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(args, **kwargs)
        self.started.append(proc)
        return proc

    def qio(self, path, *steps, **kwargs):
        """Starts tests/programs/qio on `path` with `steps`; its stdout is a text pipe."""
        kwargs.setdefault("text", True)
        kwargs.setdefault("bufsize", 1)
        return self.start([program("qio"), path, *steps], **kwargs)

    def cleanup(self):
        for proc in self.started:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def task_state(pid):
    """(state letter, wchan, syscall number or None) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
        syscall = int(fields[0]) if fields and fields[0].lstrip("-").isdigit() else None
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return state, wchan, syscall


def is_waiting_on_fuse(pid, syscall=None):
    """True when `pid` sleeps in a FUSE request the daemon keeps waiting (read or write)."""
    s = task_state(pid)
    if s is None:
        return False
    state, wchan, nr = s
    return state == "S" and wchan == FUSE_WAIT and (syscall is None or nr == syscall)


def wait_fuse_blocked(pid, syscall=None, timeout=10, what=None):
    """Waits until `pid` is blocked in a FUSE read or write that the daemon parked."""
    wait_until(lambda: is_waiting_on_fuse(pid, syscall), timeout=timeout,
               what=what or f"process {pid} to block in a FUSE request (syscall {syscall})")


def wait_sleeping_in(pid, syscalls, timeout=10, what=None):
    """Waits until `pid` sleeps in one of `syscalls` (poll, select, epoll_wait...)."""
    def sleeping():
        s = task_state(pid)
        return s is not None and s[0] == "S" and s[2] in syscalls
    wait_until(sleeping, timeout=timeout, what=what or f"process {pid} to sleep in syscall {syscalls}")


def thread_blocked_on_fuse(pid):
    """Number of threads of `pid` blocked in a FUSE request."""
    n = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if f.read().strip() == FUSE_WAIT:
                    n += 1
        except (FileNotFoundError, ProcessLookupError):
            pass
    return n


def wait_exit(proc, timeout, what="the process to exit"):
    """Waits for `proc` to end; returns (returncode, seconds waited). Fails after `timeout`."""
    t0 = time.monotonic()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s waiting for {what} (pid {proc.pid})")
    return proc.returncode, time.monotonic() - t0


def finish(proc, timeout=10, what="the process"):
    """Waits for `proc` and returns its (returncode, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; output so far: {out!r} {err!r}")
    return proc.returncode, out, err


class LineReader:
    """Reads lines from a child's stdout pipe with a timeout on each."""

    def __init__(self, proc):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buffer = b""
        self.lines = []

    def _fill(self, deadline):
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return False
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def line(self, timeout=10, what="a line"):
        """The next line (without its newline); fails the test after `timeout` seconds."""
        if not self._fill(time.monotonic() + timeout):
            pytest.fail(f"timed out after {timeout}s waiting for {what} from pid {self.proc.pid}; "
                        f"lines so far: {self.lines}, partial: {self.buffer!r}")
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def maybe_line(self, timeout):
        """The next line, or None when none comes within `timeout` seconds."""
        if not self._fill(time.monotonic() + timeout):
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text


def start_reader(procs, path, *args):
    """A binary `cat`-like reader whose stdout is a byte pipe."""
    return procs.start(list(args) or ["cat", path])


_DRAIN = r"""
import fcntl, json, os, struct, sys
MQFS_IOC_SET_READ_MODE = (1 << 30) | (4 << 16) | (ord('M') << 8) | 2
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fcntl.ioctl(fd, MQFS_IOC_SET_READ_MODE, struct.pack("i", 1))
out = []
while True:
    try:
        data = os.read(fd, 1 << 20)
    except BlockingIOError:
        break
    if not data:
        break
    out.append(data.decode("latin-1"))
print(json.dumps(out))
"""


def drain(path, timeout=20):
    """Every message queued in `path`, in the order the queue hands them out.

    Reads in stream mode through a non-blocking descriptor, in a child
    process (so that a hung daemon fails the test instead of hanging it).
    """
    try:
        result = subprocess.run([sys.executable, "-c", _DRAIN, path], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"draining {path} took more than {timeout}s")
    assert result.returncode == 0, f"draining {path} failed: {result.stderr}"
    return json.loads(result.stdout)


def xattr(path, name):
    return os.getxattr(path, "user.mq." + name).decode()


def set_xattr(path, name, value):
    os.setxattr(path, "user.mq." + name, str(value).encode())


def counters(path):
    """curmsgs, sent and received of a queue, as integers."""
    return {name: int(xattr(path, name)) for name in ("curmsgs", "sent", "received")}


def fill(path, messages):
    """Writes each message with one write(2) through a non-blocking descriptor (fails if full)."""
    result = subprocess.run([program("qio"), path, "open:wn"] + [f"write:{m}" for m in messages],
                            capture_output=True, text=True, timeout=20)
    lines = result.stdout.splitlines()
    assert lines[0] == "open OK", lines
    for m, line in zip(messages, lines[1:]):
        assert line.startswith(f"write OK {len(m.encode())} "), (m, line)
    assert len(lines) == len(messages) + 1, lines


def daemon_status(pid):
    """Threads and VmRSS (kB) of a process, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


QIO_READ = re.compile(r"^read OK (\d+) (.*) ms=([\d.]+)$")
QIO_ERR = re.compile(r"^(\w+) ERR (\w+) ms=([\d.]+)$")


def parse_read(line):
    """('OK', data, ms) or ('EOF', None, ms) or ('ERR', errname, ms) from a qio read line."""
    m = QIO_READ.match(line)
    if m:
        return "OK", m.group(2).replace("\\n", "\n"), float(m.group(3))
    if line.startswith("read EOF"):
        return "EOF", None, float(line.split("ms=")[1])
    m = QIO_ERR.match(line)
    if m and m.group(1) == "read":
        return "ERR", m.group(2), float(m.group(3))
    raise AssertionError(f"not a qio read line: {line!r}")


def parse_write(line):
    """('OK', n, ms) or ('ERR', errname, ms) from a qio write line."""
    m = re.match(r"^write OK (\d+) ms=([\d.]+)$", line)
    if m:
        return "OK", int(m.group(1)), float(m.group(2))
    m = QIO_ERR.match(line)
    if m and m.group(1) == "write":
        return "ERR", m.group(2), float(m.group(3))
    raise AssertionError(f"not a qio write line: {line!r}")


MECH_SYSCALLS = {"poll": POLL_SYSCALLS, "select": SELECT_SYSCALLS, "epoll": EPOLL_SYSCALLS,
                 "epollet": EPOLL_SYSCALLS}


class Readiness:
    """tests/programs/readiness: poll/select/epoll on queues, driven by commands."""

    def __init__(self, procs, mech, *specs):
        self.mech = mech
        self.proc = procs.start([program("readiness"), mech, *specs], stdin=subprocess.PIPE)
        self.out = LineReader(self.proc)
        first = self.out.line(what="readiness to start")
        assert first == "ok", first

    def send(self, command):
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout=10):
        return self.out.line(timeout=timeout, what="a reply from readiness")

    def cmd(self, command, timeout=10):
        self.send(command)
        return self.reply(timeout)

    @staticmethod
    def parse_events(line):
        if line == "none":
            return {}
        assert line.startswith("events"), line
        out = {}
        for item in line.split()[1:]:
            index, flags = item.split(":")
            out[int(index)] = set(flags.split(","))
        return out

    def wait(self, ms=0):
        """Events of one poll/select/epoll_wait with an `ms` timeout: {index: {"IN", "OUT"}}."""
        return self.parse_events(self.cmd(f"wait {ms}", timeout=ms / 1000 + 10))

    def start_wait(self, ms=10000):
        """Starts a wait and returns once the program sleeps in it."""
        self.send(f"wait {ms}")
        wait_sleeping_in(self.proc.pid, MECH_SYSCALLS[self.mech], what=f"{self.mech} to sleep")

    def woken(self, timeout=5):
        """The events that ended the wait begun by start_wait."""
        return self.parse_events(self.reply(timeout))

    def read(self, index, size=65536):
        return self.cmd(f"read {index} {size}")

    def write(self, index, text):
        return self.cmd(f"write {index} {text}")

    def quit(self):
        self.send("quit")
        assert finish(self.proc)[0] == 0
