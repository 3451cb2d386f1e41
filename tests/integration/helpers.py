"""The shared helpers of the integration tests, each concept once.

- programs: MQFS, PROGRAMS, PYTHON, program, clean_env
- waiting: wait_until, finish, wait_exit, LineReader, run_or_release, Procs
  (behind the `procs` fixture)
- process states from /proc: system call numbers (SYS_*), FUSE_WAIT,
  task_state, in_fuse_request, sleeping_in, wait_blocked, wait_sleeping_in,
  assert_still_blocked, daemon_status
- mounts and daemons: mounts_at, is_mounted, Mount, end_daemon, kill_daemon,
  run_mqfs, statfs
- queues: attribute names and defaults, attr, iattr, set_attr, counters,
  errno_of, put, take, fill, drain, read_sizes, write_sizes, parse_reads,
  pattern, parse_qio_read, parse_qio_write, MESSAGE_OVERHEAD
- readiness: Readiness (poll/select/epoll through tests/programs/readiness)

The fixtures (mount_mqfs, mq, daemons, procs) are in conftest.py.

Every blocking step has a timeout; in-process reads and writes use O_NONBLOCK
(or run in a child process) so that they can never hang the test run.
"""
import contextlib
import errno
import json
import os
import platform
import re
import select
import signal
import subprocess
import sys
import time

import pytest

# -- programs -----------------------------------------------------------------------------------

MQFS = os.environ.get("MQFS_BIN", os.path.join(os.path.dirname(__file__), "../../build/mqfs"))
PROGRAMS = os.environ.get("MQFS_PROGRAMS", os.path.join(os.path.dirname(__file__), "../../build/tests"))

# The Python running the tests (Debian's, with pytest); used for child scripts.
PYTHON = sys.executable
# The daemon under test was built with AddressSanitizer and UBSan (tests/CMakeLists.txt):
# slower, and its memory is not what users get.
SANITIZED = os.environ.get("MQFS_SANITIZED", "0") in ("1", "ON", "TRUE", "true")


def program(name):
    """Path of a test program built from tests/programs/NAME.c."""
    path = os.path.join(PROGRAMS, name)
    assert os.access(path, os.X_OK), f"test program {path} is not built"
    return path


def clean_env(**extra):
    """The environment for child processes, without PYTHONUNBUFFERED (which
    would make a child Python write its stdout unbuffered, a write per call)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(extra)
    return env


# -- waiting --------------------------------------------------------------------------------------

def wait_until(condition, timeout=10.0, interval=0.005, what="condition"):
    """Polls `condition` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def finish(proc, timeout=10, what=None):
    """Waits for `proc` and returns (returncode, stdout, stderr). After
    `timeout` seconds it kills the process and fails the test with what it
    printed so far."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out = err = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            out, err = proc.communicate(timeout=10)
        pytest.fail(f"timed out after {timeout}s waiting for {what or f'process {proc.args}'} to end; "
                    f"output so far: {out!r} {err!r}")
    return proc.returncode, out, err


def wait_exit(proc, timeout, what="the process to exit"):
    """Waits for `proc` to end; returns (returncode, seconds waited). Fails after `timeout`."""
    t0 = time.monotonic()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s waiting for {what} (pid {proc.pid})")
    return proc.returncode, time.monotonic() - t0


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
        return self._take()

    def maybe_line(self, timeout):
        """The next line, or None when none comes within `timeout` seconds."""
        if not self._fill(time.monotonic() + timeout):
            return None
        return self._take()

    def _take(self):
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text


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
        state, wchan, _ = task_state(p.pid) or ("?", "", None)
        p.kill()
        release()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.communicate(timeout=10)
        pytest.fail(f"{args} was stuck for {timeout}s (state {state}, wchan {wchan}, not killable) "
                    "while a writer was blocked on the queue")


class Procs:
    """Starts processes and kills (by pid) whatever is left of them at the end
    of the test; the `procs` fixture."""

    CLEANUP_TIMEOUT = 10  # seconds for all of them; one stuck in the kernel is left to the daemon's end

    def __init__(self):
        self.started = []

    def start(self, args, **kwargs):
        """Popen(args) with stdout and stderr pipes (bytes unless text=True)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(args, **kwargs)
        self.started.append(proc)
        return proc

    def qio(self, path, *steps, **kwargs):
        """Starts tests/programs/qio on `path` with `steps`; its stdout is a line-buffered text pipe."""
        kwargs.setdefault("text", True)
        kwargs.setdefault("bufsize", 1)
        return self.start([program("qio"), path, *steps], **kwargs)

    def cleanup(self):
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + self.CLEANUP_TIMEOUT
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    with contextlib.suppress(OSError):
                        stream.close()


# -- process states -------------------------------------------------------------------------------

# System call numbers as /proc/PID/syscall shows them.
_SYSCALL_NUMBERS = {
    "x86_64": {"read": 0, "write": 1, "close": 3, "poll": 7, "select": 23, "epoll_wait": 232,
               "pselect6": 270, "ppoll": 271, "epoll_pwait": 281, "epoll_pwait2": 441},
    "aarch64": {"read": 63, "write": 64, "close": 57, "pselect6": 72, "ppoll": 73, "epoll_pwait": 22,
                "epoll_pwait2": 441},
}[platform.machine()]
SYS_READ = _SYSCALL_NUMBERS["read"]
SYS_WRITE = _SYSCALL_NUMBERS["write"]
SYS_CLOSE = _SYSCALL_NUMBERS["close"]


def _numbers(*names):
    return {_SYSCALL_NUMBERS[n] for n in names if n in _SYSCALL_NUMBERS}


POLL_SYSCALLS = _numbers("poll", "ppoll")
SELECT_SYSCALLS = _numbers("select", "pselect6")
EPOLL_SYSCALLS = _numbers("epoll_wait", "epoll_pwait", "epoll_pwait2")

# Where the kernel keeps a task whose FUSE request the daemon has not answered.
FUSE_WAIT = "request_wait_answer"


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


def in_fuse_request(pid, syscall=None):
    """Whether process `pid` sleeps (killably, state S) in a FUSE request made by
    `syscall` (any when None): its request reached mqfs, which keeps it waiting."""
    s = task_state(pid)
    return s is not None and s[0] == "S" and s[1] == FUSE_WAIT and (syscall is None or s[2] == syscall)


def sleeping_in(pid, syscalls):
    """Whether process `pid` sleeps (state S) in one of `syscalls` (poll, select, epoll_wait...)."""
    s = task_state(pid)
    return s is not None and s[0] == "S" and s[2] in syscalls


def _fail_if_ended(proc, what):
    if proc.poll() is not None:
        out = ""
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            out = proc.communicate(timeout=1)[0]
        pytest.fail(f"{what}: process ended ({proc.returncode}) instead of blocking: {out!r}")


def wait_blocked(proc, syscall=None, what=None, timeout=10.0):
    """Waits until process `proc` (a Popen) is blocked in a FUSE request of its
    `syscall` (SYS_READ, SYS_WRITE, ...) that mqfs parked; fails if it ends instead."""
    what = what or f"process {proc.pid} to block in a FUSE request (syscall {syscall})"

    def blocked():
        _fail_if_ended(proc, what)
        return in_fuse_request(proc.pid, syscall)
    wait_until(blocked, timeout=timeout, what=what)


def wait_sleeping_in(proc, syscalls, what=None, timeout=10.0):
    """Waits until process `proc` (a Popen) sleeps in one of `syscalls`; fails if it ends instead."""
    what = what or f"process {proc.pid} to sleep in syscall {syscalls}"

    def sleeping():
        _fail_if_ended(proc, what)
        return sleeping_in(proc.pid, syscalls)
    wait_until(sleeping, timeout=timeout, what=what)


def assert_still_blocked(proc, syscall, seconds=0.3):
    """Proves a negative: after `seconds` the process is still blocked in its call.
    (The one place where a sleep is right: nothing must happen.)"""
    time.sleep(seconds)
    assert proc.poll() is None, f"process ended ({proc.returncode}) but should still be blocked"
    assert in_fuse_request(proc.pid, syscall), "process is no longer blocked in the FUSE request"


def daemon_status(pid):
    """Threads, VmRSS and VmHWM (kB) of a process, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


# -- mounts and daemons ---------------------------------------------------------------------------

def mounts_at(path):
    """How many mounts are stacked on `path` (/proc/self/mountinfo)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def is_mounted(path):
    return mounts_at(path) > 0


class Mount:
    """A running mqfs daemon (in the foreground) and its mount point.

    `options` are the `-o` options, `extra_args` further command-line
    arguments, `run` a prefix of the command; all are kept, so that start() can mount again on the same
    ones (after kill_daemon, for instance). The daemon's output goes to
    PATH.log, also across restarts.
    """

    def __init__(self, path, options=(), extra_args=(), run=()):
        self.path = path
        self.options = tuple(options)
        self.extra_args = tuple(extra_args)
        self.run = tuple(run)  # a command prefix: the daemon runs on another "host" (conftest.Host)
        self.log_path = path + ".log"
        self.log = None
        self.proc = None
        self.start()

    def start(self, timeout=10):
        """Starts a daemon on the mount point with this Mount's options and waits
        (up to `timeout` seconds) until it has mounted. The mount point must be
        free: the first time, or after the previous daemon ended and its mount
        was detached."""
        assert self.proc is None or self.proc.poll() is not None, f"mqfs at {self.path} still runs"
        assert not is_mounted(self.path), f"{self.path} is still mounted"
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "w" if self.proc is None else "a")
        args = [*self.run, MQFS, "-f", self.path]
        if self.options:
            args += ["-o", ",".join(self.options)]
        args += list(self.extra_args)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: is_mounted(self.path) or self.proc.poll() is not None, timeout=timeout,
                   what="the mount")
        if self.proc.poll() is not None:
            pytest.fail(f"mqfs exited with {self.proc.returncode} before mounting:\n{self.read_log()}")
        return self

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def sh(self, command, timeout=10, check=True, **kwargs):
        """Runs `command` with bash in the mount point; fails the test on a timeout."""
        try:
            result = subprocess.run(["bash", "-c", command], cwd=self.path, capture_output=True,
                                    text=True, timeout=timeout, **kwargs)
        except subprocess.TimeoutExpired:
            pytest.fail(f"command timed out after {timeout}s: {command}")
        if check and result.returncode != 0:
            pytest.fail(f"command failed ({result.returncode}): {command}\n{result.stderr}")
        return result

    def getattr(self, queue, name):
        """attr() of the queue `queue` in this mount."""
        return attr(self / queue, name)

    def setattr(self, queue, name, value):
        """set_attr() of the queue `queue` in this mount."""
        set_attr(self / queue, name, value)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the daemon and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
                pytest.fail(f"mqfs did not exit within {timeout}s of {sig!r}")
        if is_mounted(self.path):
            subprocess.run(["umount", "-l", self.path], timeout=timeout)
        self.log.close()
        return self.proc.returncode


def end_daemon(mount, sig=signal.SIGKILL, timeout=10):
    """Sends `sig` to the daemon of `mount` and returns its exit status once it
    has ended; leaves its mount as it is."""
    mount.proc.send_signal(sig)
    try:
        return mount.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mqfs did not end within {timeout}s of {sig!r}")


def wait_stale(path, timeout=1.0):
    """Waits until stat(2) of the mount at `path`, whose daemon is gone, fails
    with ENOTCONN: the kernel keeps a node's attributes for one clock tick
    (4 ms at HZ=250), and answers from them until then."""
    wait_until(lambda: errno_of(os.stat, path) == errno.ENOTCONN, timeout, what=f"{path} to fail with ENOTCONN")


def kill_daemon(mount, timeout=10):
    """Kills the daemon of `mount` with SIGKILL (a crash: it cleans nothing
    up), waits until it is gone and detaches what it leaves on the mount point
    (`fusermount3 -u`, lazily if the mount is busy), each within `timeout`
    seconds. Returns the daemon's exit status (-SIGKILL). Afterwards
    `mount.start()` mounts a new daemon at the same place with the same options:

        kill_daemon(m)
        m.start()
    """
    status = end_daemon(mount, signal.SIGKILL, timeout)
    if is_mounted(mount.path):
        subprocess.run(["fusermount3", "-u", mount.path], capture_output=True, timeout=timeout)
    if is_mounted(mount.path):
        subprocess.run(["fusermount3", "-u", "-z", mount.path], capture_output=True, timeout=timeout)
    wait_until(lambda: not is_mounted(mount.path), timeout=timeout, what=f"{mount.path} to be unmounted")
    return status


def run_mqfs(args, timeout=10, **kwargs):
    """Runs mqfs in the foreground with `args` expecting it to fail at startup.
    If it mounts instead, it is stopped and unmounted and the test fails."""
    p = subprocess.Popen([MQFS] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.communicate(timeout=10)
        if p.poll() is None:
            p.kill()
        pytest.fail(f"mqfs {args} was still running after {timeout}s instead of refusing to start")
    return p.returncode, out, err


def statfs(path):
    st = os.statvfs(path)
    return {"blocks": st.f_blocks, "bfree": st.f_bfree, "bavail": st.f_bavail, "files": st.f_files,
            "ffree": st.f_ffree, "bsize": st.f_frsize}


# -- queues -----------------------------------------------------------------------------------------

ALL_ATTRIBUTES = ("priority", "maxmsg", "msgsize", "read_mode", "recv_timeout_ms", "send_timeout_ms",
                  "curmsgs", "curbytes", "sent", "received", "lspid", "lrpid")
WRITABLE_DEFAULTS = {"priority": "0", "maxmsg": "10", "msgsize": "8192", "read_mode": "message",
                     "recv_timeout_ms": "0", "send_timeout_ms": "0"}
MAX_MSGSIZE = (1 << 20) - 4096
# What max_bytes charges for each message besides its bytes (README "Limits").
MESSAGE_OVERHEAD = 136


def attr(path, name):
    """The queue attribute user.mq.NAME of `path`, as a string."""
    return os.getxattr(path, "user.mq." + name).decode()


def iattr(path, name):
    return int(attr(path, name))


def set_attr(path, name, value):
    os.setxattr(path, "user.mq." + name, str(value).encode())


def counters(path):
    """curmsgs, sent and received of a queue, as integers."""
    return {name: iattr(path, name) for name in ("curmsgs", "sent", "received")}


def errno_of(call, *args, **kwargs):
    """Calls `call` and returns the errno it failed with, or None."""
    try:
        call(*args, **kwargs)
    except OSError as e:
        return e.errno
    return None


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


def fill(path, messages):
    """Writes each message with one write(2) through a non-blocking descriptor (fails if full)."""
    result = subprocess.run([program("qio"), path, "open:wn"] + [f"write:{m}" for m in messages],
                            capture_output=True, text=True, timeout=20)
    lines = result.stdout.splitlines()
    assert lines[0] == "open OK", lines
    for m, line in zip(messages, lines[1:]):
        assert line.startswith(f"write OK {len(m.encode())} "), (m, line)
    assert len(lines) == len(messages) + 1, lines


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
        result = subprocess.run([PYTHON, "-c", _DRAIN, path], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"draining {path} took more than {timeout}s")
    assert result.returncode == 0, f"draining {path} failed: {result.stderr}"
    return json.loads(result.stdout)


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


QIO_READ = re.compile(r"^read OK (\d+) (.*) ms=([\d.]+)$")
QIO_WRITE = re.compile(r"^write OK (\d+) ms=([\d.]+)$")
QIO_ERR = re.compile(r"^(\w+) ERR (\w+) ms=([\d.]+)$")


def parse_qio_read(line):
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


def parse_qio_write(line):
    """('OK', n, ms) or ('ERR', errname, ms) from a qio write line."""
    m = QIO_WRITE.match(line)
    if m:
        return "OK", int(m.group(1)), float(m.group(2))
    m = QIO_ERR.match(line)
    if m and m.group(1) == "write":
        return "ERR", m.group(2), float(m.group(3))
    raise AssertionError(f"not a qio write line: {line!r}")


# -- readiness ----------------------------------------------------------------------------------------

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
        wait_sleeping_in(self.proc, MECH_SYSCALLS[self.mech], what=f"{self.mech} to sleep")

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
