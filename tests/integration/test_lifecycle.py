"""When the daemon dies, hangs or is cut off: what clients and the mount
point see, and how to recover (SPEC section 8; README "Troubleshooting").

Most of this is the kernel's FUSE layer, not mqfs; these tests pin down
what it gives, exactly, so that the README can promise it:

- Daemon killed (SIGKILL, a crash): the kernel closes its /dev/fuse
  descriptor and aborts the connection. A request the daemon had taken and
  not answered (a blocked read or write) fails with ECONNABORTED ("Software
  caused connection abort"); every later operation, on the mount point and
  on descriptors opened before, fails with ENOTCONN ("Transport endpoint is
  not connected"). Nothing hangs.
- The stale mount stays until it is unmounted: `fusermount3 -u`, `umount`,
  or `umount -l` (the only one that works while a process still uses it).
  A new mqfs then mounts on the same directory; the old queues are gone, as
  mqfs keeps them in memory only.
- Daemon hung (SIGSTOP): a request it has not taken yet ends on a fatal
  signal (`timeout cat q`); one it has taken waits in the kernel, even for
  SIGKILL, until the daemon answers. `umount -l`, `umount -c` and
  `fusermount3 -u`/`-uz` detach its mount at once.
- Connection aborted through fusectl: the clients see what a kill gives;
  the daemon sees its device gone and exits by itself; the mount stays until
  `fusermount3 -u`.
- Clean stop (SIGTERM) with queues open: mqfs answers blocked requests with
  ENOTCONN and detaches the mount; open descriptors get ENOTCONN next time.

Every daemon here is ended by its test, so the tests start them through the
`daemons` fixture (which does not fail a test for a dead daemon), and every
step that could hang runs in a child process with a timeout.
"""
import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import (LineReader, SYS_READ, SYS_WRITE, end_daemon, finish, is_mounted, kill_daemon, program,
                     run_mqfs, task_state, wait_blocked, wait_stale, wait_until)

ENOTCONN = "ENOTCONN"
ECONNABORTED = "ECONNABORTED"


# -- fixtures and shared steps -----------------------------------------------------------------

@pytest.fixture
def start(procs, daemons):  # noqa: F811 (fixtures)
    """The `daemons` factory, torn down before `procs`: the daemons are killed
    before the client processes are, so that no client stays stuck in the kernel."""
    return daemons


def errname(number):
    return errno.errorcode.get(number, str(number))


def stop_daemon(m):
    """SIGSTOP: the daemon hangs, its mount stays."""
    m.proc.send_signal(signal.SIGSTOP)
    wait_until(lambda: (task_state(m.proc.pid) or "?")[0] == "T", what="the daemon to stop")


def continue_daemon(m):
    m.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: (task_state(m.proc.pid) or "?")[0] != "T", what="the daemon to continue")


def run(args, timeout=10):
    """Runs a command outside the mount (cwd /); fails the test if it does not end in time."""
    try:
        return subprocess.run(args, cwd="/", capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} did not end within {timeout}s")


def wait_daemon_exit(m, timeout=10, what="the daemon to exit by itself"):
    try:
        return m.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s waiting for {what}")


def round_trip(m, text="again"):
    """The mount serves: a message sent is received."""
    result = m.sh(f"echo {text} > q && cat q")
    assert result.stdout == text + "\n"


def block_clients(m, procs):  # noqa: F811 (fixtures)
    """A read_sizes reader and a `cat` blocked on the empty queue `empty`, and a
    write_sizes writer blocked on the full queue `full` (maxmsg 1)."""
    m.sh("touch empty full && setfattr -n user.mq.maxmsg -v 1 full && echo 1 > full")
    reader = procs.start([program("read_sizes"), m / "empty", "100"], text=True)
    cat = procs.start(["cat", m / "empty"], text=True)
    writer = procs.start([program("write_sizes"), m / "full", "2"], text=True)
    wait_blocked(reader, SYS_READ, "the reader")
    wait_blocked(cat, SYS_READ, "cat")
    wait_blocked(writer, SYS_WRITE, "the writer")
    return reader, cat, writer


def failed_with(proc, timeout=5):
    """The errno name that read_sizes' or write_sizes' one call failed with,
    within `timeout` seconds."""
    status, out, err = finish(proc, timeout=timeout)
    assert status == 0 and out.startswith("E:"), f"status {status}: {out!r} {err!r}"
    return errname(int(out.strip()[2:]))


def connection_of(path):
    """The name of the mount's FUSE connection in /sys/fs/fuse/connections: its
    device number (the kernel's MKDEV(major, minor)) from /proc/self/mountinfo."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        entries = [line.split() for line in f if line.split()[4] == path]
    assert entries, f"{path} is not mounted"
    major, minor = (int(n) for n in entries[-1][2].split(":"))
    return str((major << 20) | minor)


def abort_connection(path):
    """`echo 1 > /sys/fs/fuse/connections/N/abort` for the mount at `path`. fusectl
    is mounted for this in a private mount namespace, so the system's mounts
    stay as they are."""
    script = 'mount -t fusectl fusectl /sys/fs/fuse/connections && echo 1 > "/sys/fs/fuse/connections/$0/abort"'
    result = run(["unshare", "-m", "sh", "-c", script, connection_of(path)])
    assert result.returncode == 0, result.stderr


def hold_open(procs, queue):  # noqa: F811 (fixtures)
    """A qio with `queue` open for reading and writing, waiting for a line on
    stdin before it reads, writes, asks MQFS_IOC_GET_ATTR and closes."""
    holder = procs.start([program("qio"), queue, "open:rwn", "ready", "stdin", "read:100", "write:x", "attr",
                          "close"], stdin=subprocess.PIPE)
    lines = LineReader(holder)
    assert lines.line(what="qio to open") == "open OK"
    assert lines.line(what="qio to be ready") == "ready"
    return holder


def use_held(holder):
    """Lets `hold_open`'s qio go on; returns its lines (without timings)."""
    holder.stdin.write(b"\n")
    holder.stdin.flush()
    status, out, err = finish(holder)
    assert status == 0, err
    return [re.sub(r" ms=[\d.]+$", "", line) for line in out.decode().splitlines()]


_TRY_EVERYTHING = r"""
import errno, os, sys
mnt = sys.argv[1]
q = os.path.join(mnt, "q")
operations = [
    ("stat the mount point", lambda: os.stat(mnt)),
    ("list the mount point", lambda: os.listdir(mnt)),
    ("statvfs", lambda: os.statvfs(mnt)),
    ("stat a queue", lambda: os.stat(q)),
    ("open a queue to read", lambda: os.close(os.open(q, os.O_RDONLY | os.O_NONBLOCK))),
    ("open a queue to write", lambda: os.close(os.open(q, os.O_WRONLY | os.O_NONBLOCK))),
    ("create a queue", lambda: os.close(os.open(os.path.join(mnt, "new"), os.O_WRONLY | os.O_CREAT, 0o644))),
    ("mkdir", lambda: os.mkdir(os.path.join(mnt, "d"))),
    ("getxattr", lambda: os.getxattr(q, "user.mq.curmsgs")),
    ("setxattr", lambda: os.setxattr(q, "user.mq.maxmsg", b"5")),
    ("unlink", lambda: os.unlink(q)),
]
for name, call in operations:
    try:
        call()
        result = "OK"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
    print(f"{name}: {result}", flush=True)
"""


def try_everything(path, timeout=10):
    """Each operation of _TRY_EVERYTHING on the mount at `path`, in a child
    process: {operation: "OK" or the errno name}."""
    try:
        result = subprocess.run([sys.executable, "-c", _TRY_EVERYTHING, path], cwd="/", capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"an operation on {path} hung for {timeout}s; done before it: {e.stdout!r}")
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ") for line in result.stdout.splitlines())


# -- 1. killed while clients wait ----------------------------------------------------------------

def test_sigkill_fails_blocked_reader_and_writer_with_econnaborted(start, procs):  # noqa: F811
    """The requests mqfs had parked fail at once with ECONNABORTED, also
    those of writers waiting behind another writer (each waits in mqfs)."""
    m = start()
    reader, cat, writer = block_clients(m, procs)
    queued_writer = procs.start([program("write_sizes"), m / "full", "3"], text=True)
    wait_blocked(queued_writer, SYS_WRITE, "the second writer")
    assert end_daemon(m) == -signal.SIGKILL
    assert failed_with(reader) == ECONNABORTED
    assert failed_with(writer) == ECONNABORTED
    assert failed_with(queued_writer) == ECONNABORTED
    status, out, err = finish(cat, timeout=5)
    # cat reports its read; its close sends no request (a file open only for
    # reading has nothing to flush), so it succeeds.
    assert (status, out) == (1, "")
    assert err.splitlines() == [f"cat: {m / 'empty'}: {os.strerror(errno.ECONNABORTED)}"]
    assert is_mounted(m.path), "the stale mount stays until someone unmounts it"


# -- 2. after the kill, everything fails with ENOTCONN ---------------------------------------------

def test_after_sigkill_every_operation_fails_with_enotconn(start, procs):  # noqa: F811
    m = start()
    m.sh("echo kept > q")
    holder = hold_open(procs, m / "q")
    assert end_daemon(m) == -signal.SIGKILL
    wait_stale(m.path)

    results = try_everything(m.path)
    assert len(results) == 11 and results == {name: ENOTCONN for name in results}, results
    assert use_held(holder) == ["read ERR ENOTCONN", "write ERR ENOTCONN", "attr ERR ENOTCONN",
                                "close ENOTCONN"]
    for command, status in (("echo x > {q}", 1), ("cat {q}", 1), ("ls {mnt}", 2)):
        result = run(["bash", "-c", command.format(q=m / "q", mnt=m.path)])
        assert result.returncode == status, (command, result.stderr)
        assert result.stderr.rstrip().endswith("Transport endpoint is not connected"), (command, result.stderr)


# -- 3. recovery: unmount the dead mount, mount again ---------------------------------------------

@pytest.mark.parametrize("command", [["fusermount3", "-u"], ["umount"], ["umount", "-l"]],
                         ids=["fusermount3-u", "umount", "umount-l"])
def test_dead_mount_unmounts_and_a_new_daemon_starts_empty_on_it(start, command):
    """Queues live in the daemon's memory only: the new daemon has none of them."""
    m = start()
    m.sh("mkdir d && echo lost > d/q && echo lost > q")
    assert end_daemon(m) == -signal.SIGKILL

    # A new daemon on the stale mount point refuses with one clear line that
    # names the error and the command that clears it.
    status, out, err = run_mqfs(["-f", m.path])
    assert status == 1 and len(err.splitlines()) == 1, err
    assert "Transport endpoint is not connected" in err and f"fusermount3 -u {os.path.realpath(m.path)}" in err, err

    result = run(command + [m.path])
    assert result.returncode == 0, result.stderr
    assert not is_mounted(m.path)
    assert os.listdir(m.path) == []  # the plain directory again

    again = start.on(m.path)
    assert os.listdir(again.path) == []
    round_trip(again)


def test_dead_mount_still_in_use_needs_umount_l(start, procs):  # noqa: F811
    """A process with its working directory in the dead mount keeps it busy:
    `umount` and `fusermount3 -u` refuse, `umount -l` detaches it, and a new
    daemon mounts there while that process lives on."""
    m = start()
    user = procs.start(["sleep", "60"], cwd=m.path, text=True)
    assert end_daemon(m) == -signal.SIGKILL

    result = run(["umount", m.path])
    assert (result.returncode, result.stderr) == (32, f"umount: {m.path}: target is busy.\n")
    result = run(["fusermount3", "-u", m.path])
    assert (result.returncode, result.stderr) == (1, f"fusermount3: failed to unmount {m.path}: "
                                                     "Device or resource busy\n")
    assert is_mounted(m.path)

    result = run(["umount", "-l", m.path])
    assert result.returncode == 0, result.stderr
    assert not is_mounted(m.path)
    round_trip(start.on(m.path))
    assert user.poll() is None


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_kill_daemon_and_start_mount_an_empty_mqfs_again_on_the_same_options(mount_mqfs, procs, busy):  # noqa: F811
    """kill_daemon and Mount.start, the crash and restart a durable store is
    tested with: on an in-memory mount the SIGKILLed daemon's queues are gone,
    and a new daemon serves at the same place with the same options, also
    when a process kept the dead mount busy (it is detached lazily)."""
    m = mount_mqfs("maxmsg=3", "msgsize=100")
    m.sh("mkdir d && echo one > q && echo two > d/q")
    user = procs.start(["sleep", "60"], cwd=m.path) if busy else None
    first = m.proc.pid
    assert kill_daemon(m) == -signal.SIGKILL
    assert not is_mounted(m.path) and os.listdir(m.path) == []

    m.start()
    assert m.proc.pid != first and is_mounted(m.path)
    assert os.listdir(m.path) == []
    m.sh("touch q")
    assert [m.getattr("q", name) for name in ("maxmsg", "msgsize", "curmsgs")] == ["3", "100", "0"]
    round_trip(m)
    assert user is None or user.poll() is None


# -- 4. hung (stopped) daemon ---------------------------------------------------------------------

def test_timeout_ends_a_cat_on_a_stopped_daemon_and_nothing_is_lost(start):
    """`timeout 2 cat q` ends after 2 s: its request waits, not yet taken by the
    daemon, and timeout's SIGTERM takes it back. After SIGCONT the daemon serves
    the message that was queued all along."""
    m = start()
    m.sh("echo kept > q")
    stop_daemon(m)
    try:
        result = run(["timeout", "2", "cat", m / "q"], timeout=10)
        assert (result.returncode, result.stdout) == (124, "")
    finally:
        continue_daemon(m)
    assert m.getattr("q", "received") == "0"
    assert m.sh("cat q").stdout == "kept\n"
    round_trip(m)
    assert end_daemon(m, signal.SIGTERM) == 0


def test_reader_taken_by_a_stopped_daemon_waits_for_it_and_takes_nothing(start, procs):  # noqa: F811
    """A read mqfs had parked when it hung cannot be abandoned: after a fatal
    signal (timeout's SIGTERM, even SIGKILL) the reader sleeps uninterruptibly
    ("D") in the kernel until the daemon answers. After SIGCONT it ends, having
    taken nothing, and the next message goes to the next reader."""
    m = start()
    m.sh("touch q")
    reader = procs.start([program("read_sizes"), m / "q", "100"], text=True)
    wait_blocked(reader, SYS_READ, "the reader")
    stop_daemon(m)
    try:
        reader.send_signal(signal.SIGTERM)
        wait_until(lambda: (task_state(reader.pid) or "?")[0] == "D", what="the reader to wait uninterruptibly")
        reader.send_signal(signal.SIGKILL)
        time.sleep(0.3)  # proves a negative: not even SIGKILL ends it
        assert reader.poll() is None and task_state(reader.pid)[:2] == ("D", "request_wait_answer")
    finally:
        continue_daemon(m)
    assert finish(reader, timeout=5)[0] == -signal.SIGTERM
    m.sh("echo next > q")
    assert m.getattr("q", "curmsgs") == "1" and m.getattr("q", "received") == "0"
    assert m.sh("cat q").stdout == "next\n"
    assert end_daemon(m, signal.SIGTERM) == 0


@pytest.mark.parametrize("command", [["umount", "-l"], ["umount", "-c"], ["fusermount3", "-uz"],
                                     ["fusermount3", "-u"]],
                         ids=["umount-l", "umount-c", "fusermount3-uz", "fusermount3-u"])
def test_a_stopped_daemons_mount_unmounts_at_once_and_the_daemon_then_exits(start, command):
    """These do not ask the hung daemon anything (plain `umount` does: it stats
    the mount point first, and waits). Continued, the daemon finds its device
    gone and exits by itself."""
    m = start()
    m.sh("echo x > q")
    stop_daemon(m)
    try:
        result = run(command + [m.path], timeout=5)
        assert result.returncode == 0, result.stderr
        assert not is_mounted(m.path)
    finally:
        continue_daemon(m)
    assert wait_daemon_exit(m) == 0
    round_trip(start.on(m.path))


# -- 5. the kernel's abort (fusectl) ----------------------------------------------------------

def test_fusectl_abort_fails_blocked_clients_and_the_daemon_exits(start, procs):  # noqa: F811
    """`echo 1 > /sys/fs/fuse/connections/N/abort`: blocked clients get
    ECONNABORTED, later operations ENOTCONN; mqfs exits by itself (status 0);
    the mount stays, stale, until `fusermount3 -u`, and a new daemon mounts there."""
    m = start()
    reader, cat, writer = block_clients(m, procs)
    abort_connection(m.path)
    assert failed_with(reader) == ECONNABORTED
    assert failed_with(writer) == ECONNABORTED
    assert finish(cat, timeout=5)[0] == 1
    assert wait_daemon_exit(m) == 0
    with open(m.log_path) as log:
        assert f"connection to the kernel aborted; {m.path} stays mounted until `fusermount3 -u {m.path}`" \
            in log.read()

    assert is_mounted(m.path)
    wait_stale(m.path)
    assert try_everything(m.path)["stat the mount point"] == ENOTCONN
    result = run(["fusermount3", "-u", m.path])
    assert result.returncode == 0, result.stderr
    assert not is_mounted(m.path)
    round_trip(start.on(m.path))


# -- 6. clean stop with queues open ----------------------------------------------------------

def test_sigterm_with_queues_open_fails_their_next_use_with_enotconn(start, procs):  # noqa: F811
    """SIGTERM: mqfs answers the parked reader and writer with ENOTCONN, detaches
    the mount and exits 0; a process that holds a queue open gets ENOTCONN on
    each later call, and the mount point is the plain directory again."""
    m = start()
    reader, cat, writer = block_clients(m, procs)
    m.sh("echo kept > held")
    holder = hold_open(procs, m / "held")
    assert end_daemon(m, signal.SIGTERM) == 0
    assert failed_with(reader) == ENOTCONN
    assert failed_with(writer) == ENOTCONN
    status, _, err = finish(cat, timeout=5)
    assert status == 1 and err.splitlines()[0].endswith(os.strerror(errno.ENOTCONN)), err
    assert use_held(holder) == ["read ERR ENOTCONN", "write ERR ENOTCONN", "attr ERR ENOTCONN",
                                "close ENOTCONN"]
    assert not is_mounted(m.path)
    assert os.listdir(m.path) == []
