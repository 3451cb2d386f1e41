"""SPEC section 9, durable queues (`-o store=DIR`, `sync=os|disk`), on real
mounts: what survives umount + mount and a SIGKILL of the daemon, a storm of
producers and consumers cut by a SIGKILL, one daemon per store, a full disk
(a small ext4 in a loop file), recovery of a torn or damaged journal, the
store's bounded size, fsync(2), and the store directory itself.

The journal's format is the one docs/design.md ("The journal") describes:
segment files `journal-NNNNNNNN` (8 MiB, preallocated with zeros) that start
with a 16-byte header, then records of a 4-byte length, a CRC-32 (zlib's) of
what follows and the change. The recovery tests read it to find where the
records end and to damage one.

Every daemon is started by the `durable` fixture below and must be alive at
the end of its test and exit 0 on SIGTERM (tests that kill one start it
again); every step that could hang runs in a child process or has a timeout.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib

import pytest

from helpers import (SANITIZED, MQFS, PYTHON, Mount, attr, drain, is_mounted, kill_daemon, put, run_mqfs, set_attr, take,
                     wait_exit, wait_until)

SEGMENT = 8 << 20
MIB = 1 << 20
# Read-only per-queue values that change with every send and receive and are
# not kept (README "Durability": what is not kept).
# Not kept, or growing by themselves.
NOT_KEPT = ("user.mq.lspid", "user.mq.lrpid", "user.mq.oldest_ms")

# _IOW('M', nr, int32_t) of include/mqfs.h
SET_PRIORITY = (1 << 30) | (4 << 16) | (ord("M") << 8) | 1
SET_READ_MODE = (1 << 30) | (4 << 16) | (ord("M") << 8) | 2


# -- fixtures and helpers ---------------------------------------------------------------------------

class Durable:
    """Factory of durable mounts: mount(option, ..., store=..., sync=...)
    mounts a fresh directory with `store=` (by default a new directory in
    the test's work directory, not created beforehand) and returns the Mount,
    with its store's path as `.store`."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="mqfs-durable-")
        self.mounts = []

    def path(self, name):
        return os.path.join(self.workdir, name)

    def mount(self, *options, store=None, sync=None):
        path = self.path(f"mnt{len(self.mounts)}")
        os.mkdir(path)
        store = store or self.path(f"store{len(self.mounts)}")
        opts = [f"store={store}"] + ([f"sync={sync}"] if sync else []) + list(options)
        m = Mount(path, opts)
        m.store = store
        self.mounts.append(m)
        return m

    def stop_all(self):
        """SIGTERM to every daemon; returns what went wrong."""
        failures = []
        for m in self.mounts:
            if m.log.closed and m.proc.poll() is not None:
                continue  # stopped by its test, which checked how
            alive = m.proc.poll() is None
            status = m.stop()
            if not alive and getattr(m, "refused", False):
                continue  # its test saw the daemon refuse to mount and failed already
            if not alive:
                failures.append(f"mqfs at {m.path} died during the test (status {status}):\n{log_of(m)}")
            elif status != 0:
                failures.append(f"mqfs at {m.path} exited with {status}:\n{log_of(m)}")
        return failures


def log_of(m):
    with open(m.log_path) as f:
        return f.read()


@pytest.fixture
def durable():
    d = Durable()
    yield d
    failures = d.stop_all()
    for m in d.mounts:
        if is_mounted(m.path):
            subprocess.run(["umount", "-l", m.path], timeout=10)
    shutil.rmtree(d.workdir, ignore_errors=True)
    if failures:
        pytest.fail("\n".join(failures))


def remount(m, timeout=30):
    """umount (the daemon must end with 0), then a new daemon on the same options."""
    result = subprocess.run(["umount", m.path], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"umount {m.path}: {result.stderr}"
    status, _ = wait_exit(m.proc, timeout, "mqfs to exit after umount")
    assert status == 0, f"mqfs exited with {status} after umount:\n{m.read_log()}"
    m.start(timeout=timeout)


def crash(m, timeout=30):
    """SIGKILL the daemon, detach its mount, start a new daemon on the same options."""
    kill_daemon(m)
    m.start(timeout=timeout)


RESTART = {"umount": remount, "sigkill": crash}


def child(code, *args, timeout=30):
    """Runs Python `code` in a child with `args`; returns its stdout (fails the test on error or timeout)."""
    try:
        result = subprocess.run([PYTHON, "-c", code, *map(str, args)], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"child timed out after {timeout}s: {code[:200]}")
    assert result.returncode == 0, f"child failed ({result.returncode}): {result.stderr}"
    return result.stdout


def tree(root):
    """Every directory and queue under `root`: {relative path: (kind, mode, uid, gid, {xattr: value})},
    queue attributes without the ones that are not kept."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            values = {}
            if name in filenames:
                for key in os.listxattr(full):
                    if key.startswith("user.mq.") and key not in NOT_KEPT:
                        values[key] = os.getxattr(full, key).decode()
            out[os.path.relpath(full, root)] = ("dir" if name in dirnames else "queue", oct(st.st_mode), st.st_uid,
                                                st.st_gid, values)
    return out


def allocated(directory):
    """Bytes the files of `directory` take on disk (st_blocks)."""
    total = 0
    for name in os.listdir(directory):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(os.path.join(directory, name)).st_blocks * 512
    return total


def segments(store):
    return sorted(os.path.join(store, n) for n in os.listdir(store) if re.fullmatch(r"journal-[0-9a-f]{8}", n))


def records(path):
    """The segment's bytes, [(offset, length)] of its whole records, and the offset where they end."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"mqfsjnl1", f"{path} does not start with a segment header"
    offset, found = 16, []
    while offset + 8 <= len(data):
        length, crc = struct.unpack_from("<II", data, offset)
        if length == 0 and crc == 0:
            break
        assert zlib.crc32(data[offset + 8:offset + 8 + length]) == crc, f"{path}: bad record at {offset}"
        found.append((offset, length))
        offset += 8 + length
    assert not any(data[offset:]), f"{path}: bytes after the last record at {offset}"
    return data, found, offset


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    return lines[0]


def write_with_priorities(queue, messages):
    """Writes (priority, text) pairs, each through the queue's user.mq.priority."""
    for priority, text in messages:
        set_attr(queue, "priority", priority)
        assert put(queue, text.encode()) == len(text.encode())


def hand_out_order(messages):
    """The order a queue hands (priority, text) pairs out: highest priority first, FIFO within."""
    return [text for _, text in sorted(messages, key=lambda m: -m[0])]


# -- 1. umount + mount, or SIGKILL, keeps everything -----------------------------------------------

@pytest.mark.parametrize("restart", ["umount", "sigkill"])
@pytest.mark.parametrize("sync", ["os", "disk"])
def test_names_owners_modes_attributes_messages_and_counters_survive(durable, sync, restart):
    m = durable.mount(sync=sync)
    os.makedirs(m / "d1/d2")
    os.chmod(m / "d1", 0o750)
    os.chown(m / "d1/d2", 1234, 5678)
    os.chmod(m / "d1/d2", 0o1777)

    # A queue with messages of several priorities, some of them read.
    q0 = m / "q0"
    open(q0, "w").close()
    os.chmod(q0, 0o600)
    set_attr(q0, "maxmsg", 100)
    sent = [(p, f"q0 p{p} #{i}.{j}") for i in range(6) for j, p in enumerate((0, 9, 5, 0, 32767))]
    write_with_priorities(q0, sent)
    order = hand_out_order(sent)
    for expected in order[:4]:
        assert take(q0) == expected.encode()
    left_q0 = order[4:]

    # Another owner and mode, in a directory.
    q1 = m / "d1/q1"
    open(q1, "w").close()
    for i in range(3):
        put(q1, f"q1 #{i}".encode())
    os.chown(q1, 1234, 5678)
    os.chmod(q1, 0o640)

    # Every writable attribute away from its default, set after its messages.
    q2 = m / "d1/d2/q2"
    open(q2, "w").close()
    put(q2, b"q2 #0")
    put(q2, b"q2 #1")
    writable = {"priority": "7", "maxmsg": "50", "msgsize": "1000", "read_mode": "stream",
                "recv_timeout_ms": "1234", "send_timeout_ms": "4321", "framing": "u32"}
    for name, value in writable.items():
        set_attr(q2, name, value)
    q3 = m / "d1/q3"
    open(q3, "w").close()
    set_attr(q3, "framing", "file")
    set_attr(q3, "framing", "line")
    os.chmod(q3, 0o4755)  # set-user-ID kept as a mode bit

    # A renamed queue keeps its messages under the new name; a removed one is gone.
    put_old = [b"moved #0", b"moved #1"]
    open(m / "old", "w").close()
    for data in put_old:
        put(m / "old", data)
    os.rename(m / "old", m / "d1/new")
    open(m / "gone", "w").close()
    put(m / "gone", b"never again")
    os.unlink(m / "gone")
    # A queue emptied by truncate.
    open(m / "purged", "w").close()
    put(m / "purged", b"purged #0")
    os.truncate(m / "purged", 0)

    before = tree(m.path)
    assert before["q0"][4]["user.mq.sent"] == str(len(sent))
    assert before["q0"][4]["user.mq.received"] == "4"
    assert before["d1/d2/q2"][4]["user.mq.framing"] == "u32"

    RESTART[restart](m)
    after = tree(m.path)
    assert after == before, f"changed by {restart}:\n" + "\n".join(
        f"{k}: {before.get(k)} -> {after.get(k)}" for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k))

    # The messages, in the order handed out; then the reads are kept as well.
    assert drain(q0) == left_q0
    assert drain(m / "d1/q1") == ["q1 #0", "q1 #1", "q1 #2"]
    assert drain(m / "d1/new") == [d.decode() for d in put_old]
    os.removexattr(q2, "user.mq.framing")
    assert drain(q2) == ["q2 #0", "q2 #1"]
    assert drain(m / "purged") == []
    put(q0, b"after restart")
    RESTART[restart](m)
    assert attr(q0, "curmsgs") == "1" and attr(q0, "received") == str(len(sent))
    assert attr(q0, "sent") == str(len(sent) + 1)
    assert attr(m / "d1/new", "curmsgs") == "0" and attr(m / "d1/new", "received") == "2"
    assert take(q0) == b"after restart"
    assert not os.path.exists(m / "gone")


# -- 2. SIGKILL during a storm -----------------------------------------------------------------------

_PRODUCER = r"""
import fcntl, os, struct, sys
path, me, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fds = []
for priority in (0, 3):
    fd = os.open(path, os.O_WRONLY)
    fcntl.ioctl(fd, %d, struct.pack("i", priority))
    fds.append((priority, fd))
log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
seq = 0
while True:
    priority, fd = fds[(seq * 7 // 5) %% 2]
    message = b"P%%d R%%d S%%d" %% (me, priority, seq)
    try:
        os.write(fd, message)
    except OSError as e:
        print("failed", seq, e.errno, flush=True)
        break
    os.write(log, message + b"\n")
    seq += 1
""" % SET_PRIORITY

_CONSUMER = r"""
import fcntl, os, struct, sys
path, log_path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
fcntl.ioctl(fd, %d, struct.pack("i", 1))
log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
while True:
    try:
        data = os.read(fd, 65536)
    except OSError as e:
        print("failed", e.errno, flush=True)
        break
    if not data:
        break
    os.write(log, data + b"\n")
""" % SET_READ_MODE


def _lines(path):
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        return f.read().splitlines()
    return []


def _parse(message):
    m = re.fullmatch(r"P(\d+) R(\d+) S(\d+)", message)
    assert m, f"not a message of the storm: {message!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _check_fifo(messages, what):
    last = {}
    for message in messages:
        producer, priority, seq = _parse(message)
        key = (producer, priority)
        assert seq > last.get(key, -1), f"{what}: {message} after S{last[key]} of P{producer} R{priority}"
        last[key] = seq


@pytest.mark.parametrize("sync,before_kill", [("os", 3000), ("disk", 600)])
def test_sigkill_during_a_storm_loses_no_acknowledged_message(durable, procs, sync, before_kill):
    producers, consumers = 3, 2
    m = durable.mount("maxmsg=1000000", sync=sync)
    queue = m / "storm"
    open(queue, "w").close()
    logs = durable.path("logs")
    os.mkdir(logs)
    writers = [procs.start([PYTHON, "-c", _PRODUCER, queue, str(p), f"{logs}/p{p}"], text=True)
               for p in range(producers)]
    # A backlog first, so that something is left to drain after the kill.
    wait_until(lambda: int(attr(queue, "curmsgs")) >= before_kill // 3, timeout=60, what="a backlog")
    readers = [procs.start([PYTHON, "-c", _CONSUMER, queue, f"{logs}/c{c}"], text=True) for c in range(consumers)]
    wait_until(lambda: sum(len(_lines(f"{logs}/c{c}")) for c in range(consumers)) >= before_kill, timeout=60,
               what="the consumers to receive")
    assert all(p.poll() is None for p in writers + readers), "a producer or consumer ended before the kill"

    kill_daemon(m)
    for p in writers + readers:
        wait_exit(p, 20, "a producer or consumer to fail once the daemon is gone")
    outcome = {}
    for p in range(producers):
        out = writers[p].stdout.read().split()
        assert out[0] == "failed", out
        outcome[p] = int(out[1])  # the seq whose write failed
    m.start()
    left = drain(queue, timeout=60)

    written = {p: _lines(f"{logs}/p{p}") for p in range(producers)}
    acknowledged = {msg for lines in written.values() for msg in lines}
    received = [_lines(f"{logs}/c{c}") for c in range(consumers)]
    before = [msg for lines in received for msg in lines]
    assert len(set(before)) == len(before), "a message received twice before the kill"
    assert len(set(left)) == len(left), "a message twice in the queue after the restart"
    # A write that failed when the daemon died may have been stored or not;
    # nothing else may appear that was not acknowledged.
    in_flight = {msg for msg in set(before) | set(left) if msg not in acknowledged}
    for msg in in_flight:
        producer, _, seq = _parse(msg)
        assert seq == outcome[producer] == len(written[producer]), \
            f"{msg} was never written (P{producer} acknowledged {len(written[producer])} writes)"
    lost = acknowledged - set(before) - set(left)
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
    again = set(before) & set(left)
    assert len(again) <= 64, f"{len(again)} messages received before the kill are queued again"
    for c, lines in enumerate(received):
        _check_fifo(lines, f"consumer {c}")
    _check_fifo(left, "drained after the restart")
    priorities = [_parse(msg)[1] for msg in left]
    assert priorities == sorted(priorities, reverse=True), "drained out of priority order"
    assert attr(queue, "curmsgs") == "0"
    print(f"sync={sync}: {len(acknowledged)} acknowledged, {len(before)} received before the kill, "
          f"{len(left)} after, {len(again)} again, {len(in_flight)} in flight")


# -- 3. one daemon per store ---------------------------------------------------------------------------

def test_a_second_daemon_on_the_same_store_is_refused(durable):
    m = durable.mount()
    open(m / "q", "w").close()
    put(m / "q", b"first")
    other = durable.path("other")
    os.mkdir(other)
    # By the same path, and by a relative one from the store's parent.
    for cwd, store in ((None, m.store), (os.path.dirname(m.store), os.path.basename(m.store))):
        status, out, err = run_mqfs(["-f", other, "-o", f"store={store}"], cwd=cwd)
        line = one_line(err)
        assert status != 0
        assert m.store in line and str(m.proc.pid) in line, line
        assert not is_mounted(other)
    # The first mount serves on, and its store is as it was.
    put(m / "q", b"second")
    assert take(m / "q") == b"first"
    with open(os.path.join(m.store, "lock")) as f:
        assert f.read().split() == [str(m.proc.pid)]
    remount(m)
    assert drain(m / "q") == ["second"]


# -- 4. a full disk -----------------------------------------------------------------------------------

@pytest.fixture
def small_fs(durable):
    """A 40 MiB ext4 in a loop file, mounted at durable.path("small"); the
    daemons are stopped before it is unmounted."""
    image, point = durable.path("small.img"), durable.path("small")
    os.mkdir(point)
    subprocess.run(["truncate", "-s", "40M", image], check=True, timeout=10)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, timeout=60)
    result = subprocess.run(["mount", "-o", "loop", image, point], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"cannot mount a loop file: {result.stderr}"
    try:
        yield point
    finally:
        failures = durable.stop_all()
        subprocess.run(["umount", point], capture_output=True, timeout=30)
        if is_mounted(point):
            subprocess.run(["umount", "-l", point], timeout=30)
        if failures:
            pytest.fail("\n".join(failures))


_FILL = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
for seq in range(int(sys.argv[2])):
    try:
        os.write(fd, (b"%08d" % seq).ljust(4096, b"x"))
    except OSError as e:
        print(seq, e.errno)
        break
else:
    print(seq + 1, 0)
"""

_TAKE = r"""
import fcntl, json, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fcntl.ioctl(fd, %d, struct.pack("i", 1))
print(json.dumps([os.read(fd, 1 << 20).decode()[:8] for _ in range(int(sys.argv[2]))]))
""" % SET_READ_MODE


def test_a_full_disk_fails_the_write_with_enospc_and_keeps_what_was_acknowledged(durable, small_fs):
    m = durable.mount("maxmsg=100000", "msgsize=8192", store=os.path.join(small_fs, "store"))
    queue = m / "q"
    open(queue, "w").close()
    written, error = map(int, child(_FILL, queue, 20000, timeout=120).split())
    assert error == errno.ENOSPC, f"after {written} writes: {os.strerror(error) if error else 'no error'}"
    assert written >= 1000, f"ENOSPC after only {written} messages on a 40 MiB file system"
    # The failed write queued nothing, and the next one fails the same way.
    assert attr(queue, "curmsgs") == str(written) and attr(queue, "sent") == str(written)
    fd = os.open(queue, os.O_WRONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError) as failed:
            os.write(fd, b"y" * 4096)
        assert failed.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert attr(queue, "curmsgs") == str(written)

    # Reads work on the full disk, and every acknowledged message is there.
    read = 1000
    assert json.loads(child(_TAKE, queue, read)) == [f"{s:08d}" for s in range(read)]
    assert attr(queue, "curmsgs") == str(written - read)
    assert attr(queue, "received") == str(read)

    remount(m)
    assert attr(queue, "curmsgs") == str(written - read)
    assert attr(queue, "sent") == str(written) and attr(queue, "received") == str(read)
    left = drain(queue, timeout=60)
    assert [msg[:8] for msg in left] == [f"{s:08d}" for s in range(read, written)]
    assert all(msg == f"{s:08d}".ljust(4096, "x") for s, msg in zip(range(read, written), left))


def _fill_to_enospc(m):
    queue = m / "q"
    open(queue, "w").close()
    written, error = map(int, child(_FILL, queue, 20000, timeout=120).split())
    assert error == errno.ENOSPC, f"after {written} writes: {os.strerror(error) if error else 'no error'}"
    return queue, written


def _fill_the_file_system(path):
    """Takes every block left on the file system of `path` with a file of its own."""
    with open(os.path.join(path, "filler"), "wb", buffering=0) as f:
        for chunk in (MIB, 64 << 10, 4096):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    assert shutil.disk_usage(path).free < 64 << 10


def test_reading_everything_on_a_full_disk_makes_room_for_new_writes(durable, small_fs):
    m = durable.mount("maxmsg=100000", store=os.path.join(small_fs, "store"))
    queue, written = _fill_to_enospc(m)
    assert len(drain(queue, timeout=60)) == written
    assert attr(queue, "curmsgs") == "0"
    remount(m)
    assert put(queue, b"y" * 4096) == 4096, "nothing is queued and still no room for one message"


def test_reads_on_a_completely_full_disk_are_recorded(durable, small_fs):
    m = durable.mount("maxmsg=100000", store=os.path.join(small_fs, "store"))
    queue, written = _fill_to_enospc(m)
    _fill_the_file_system(small_fs)
    assert len(drain(queue, timeout=60)) == written
    errors = [line for line in m.read_log().splitlines() if "error" in line]
    crash(m)
    back = int(attr(queue, "curmsgs"))
    assert back <= 64, f"{back} of {written} messages read before the crash are queued again"
    assert len(errors) <= 5, f"{len(errors)} error lines while reading, e.g. {errors[:3]}"


# -- 5. recovery ------------------------------------------------------------------------------------

def _some_messages(m):
    sent = [(p, f"m{i} p{p}") for i in range(20) for p in (1, 4)]
    open(m / "q", "w").close()
    set_attr(m / "q", "maxmsg", 1000)
    write_with_priorities(m / "q", sent)
    os.mkdir(m / "d")
    open(m / "d/r", "w").close()
    put(m / "d/r", b"the last record: a message")
    return hand_out_order(sent)


@pytest.mark.parametrize("garbage", ["noise", "half-record"])
def test_a_torn_record_at_the_end_is_dropped_with_a_warning(durable, garbage):
    m = durable.mount()
    expected = _some_messages(m)
    kill_daemon(m)
    last = segments(m.store)[-1]
    data, found, end = records(last)
    offset, length = found[-1]
    tail = {"noise": bytes([0x17, 0xa5, 0x3c, 0xe9, 0x81, 0x42, 0x99]),
            "half-record": data[offset:offset + 8 + length // 2]}[garbage]
    with open(last, "r+b") as f:
        f.seek(end)
        f.write(tail)

    m.start()
    log = m.read_log()
    warnings = [line for line in log.splitlines() if "torn" in line and os.path.basename(last) in line]
    assert warnings and str(end) in warnings[0], f"no warning about the torn record at {end}:\n{log}"
    assert drain(m / "q") == expected
    assert drain(m / "d/r") == ["the last record: a message"]
    # Appending goes on where the records end: all of it survives the next restart.
    put(m / "d/r", b"after recovery")
    remount(m)
    assert drain(m / "d/r") == ["after recovery"]
    assert attr(m / "q", "received") == str(len(expected))


def test_damage_before_the_end_refuses_the_mount_naming_file_and_offset(durable):
    m = durable.mount()
    expected = _some_messages(m)
    kill_daemon(m)
    first = segments(m.store)[0]
    data, found, _ = records(first)
    assert len(found) > 4
    offset, length = found[2]
    at = offset + 8 + length // 2
    with open(first, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at] ^ 0x40]))

    status, out, err = run_mqfs(["-f", m.path, "-o", f"store={m.store}"])
    line = one_line(err)
    assert status != 0
    assert os.path.basename(first) in line and re.search(rf"\b{offset}\b", line), line
    assert not is_mounted(m.path)
    # The refusal changed nothing: repaired, the store mounts with everything.
    with open(first, "rb") as f:
        assert f.read() == data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]
    # What README offers when there is no backup: a copy cut at the offset
    # mounts with what was recorded before the damage.
    cut = durable.path("cut")
    shutil.copytree(m.store, cut)
    os.truncate(os.path.join(cut, os.path.basename(first)), offset)
    os.unlink(os.path.join(cut, "lock"))
    assert set(os.listdir(durable.mount(store=cut).path)) <= {"q", "d"}
    with open(first, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at]]))
    m.start()
    assert drain(m / "q") == expected


def test_a_hole_in_the_unsynced_end_after_a_power_cut_is_dropped_as_torn(durable):
    """sync=os: nothing written since the mount was synced (the store's
    `synced` file says how far the disk is known to hold the journal). A
    power cut that writes back a later page of the reads' records but not an
    earlier one is what this simulates, after a SIGKILL, by zeroing the
    earlier page: recovery ends the journal at the hole."""
    m = durable.mount("maxmsg=1000")
    queue = m / "q"
    open(queue, "w").close()
    messages = [f"m{i:04d} ".ljust(100, "x") for i in range(800)]
    for text in messages:
        put(queue, text.encode())
    assert len(drain(queue)) == len(messages)
    kill_daemon(m)
    last = segments(m.store)[-1]
    data, found, end = records(last)
    takes = [offset for offset, _ in found if data[offset + 8] == 6]  # the records of messages taken
    page = (takes[0] // 4096 + 1) * 4096
    assert page + 4096 < end, "the records of the reads span too few pages"
    with open(last, "r+b") as f:
        f.seek(page)
        f.write(bytes(4096))
    m.refused = True
    m.start()
    m.refused = False
    # The reads whose records were lost come back; every message is there at most once, in order.
    left = drain(queue)
    assert left == messages[len(messages) - len(left):]


# -- 6. bounded size ---------------------------------------------------------------------------------

_U32_WRITER = r"""
import os, struct, sys
path, total, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY)
seq = 0
while seq < total:
    n = min(32, total - seq)
    batch = b"".join(struct.pack("<IQ", size, s) + bytes([s % 251]) * (size - 8) for s in range(seq, seq + n))
    assert os.write(fd, batch) == len(batch)
    seq += n
print("wrote", seq)
"""

_U32_READER = r"""
import fcntl, os, struct, sys
path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
fcntl.ioctl(fd, %d, struct.pack("i", 1))
seq = 0
while seq < count:
    data = os.read(fd, min(count - seq, 64) * (size + 4))
    at = 0
    while at < len(data):
        length, got = struct.unpack_from("<IQ", data, at)
        assert length == size and got == seq, (length, got, seq)
        assert data[at + 12] == seq %% 251 and data[at + 3 + length] == seq %% 251
        at += 4 + length
        seq += 1
print("read", seq)
""" % SET_READ_MODE


def test_the_store_stays_bounded_under_traffic(durable, procs):
    size, keep = 4096, 300
    total = 32 * (4 * MIB) // size  # 128 MiB through a queue of at most ~2 MiB, max_bytes 4M
    m = durable.mount("max_bytes=4M", "maxmsg=512", "framing=u32", "read_mode=stream")
    queue = m / "q"
    open(queue, "w").close()
    writer = procs.start([PYTHON, "-c", _U32_WRITER, queue, str(total), str(size)], text=True)
    reader = procs.start([PYTHON, "-c", _U32_READER, queue, str(total - keep), str(size)], text=True)
    worst = (0, 0, 0)  # the largest excess over the bound seen while the traffic runs
    deadline = time.monotonic() + (240 if SANITIZED else 90)
    while writer.poll() is None or reader.poll() is None:
        assert time.monotonic() < deadline, "the traffic took too long"
        with contextlib.suppress(OSError):
            live = int(attr(queue, "curbytes"))
            used = allocated(m.store)
            if used - (2 * live + 64 * MIB) > worst[0] - (2 * worst[1] + 64 * MIB):
                worst = (used, live, len(segments(m.store)))
        time.sleep(0.02)
    assert writer.wait() == 0 and reader.wait() == 0, writer.stderr.read() + reader.stderr.read()
    assert worst[0] <= 2 * worst[1] + 64 * MIB, \
        f"the store took {worst[0]} bytes ({worst[2]} segments) with {worst[1]} bytes live"
    assert attr(queue, "curmsgs") == str(keep)

    crash(m)
    used, live = allocated(m.store), int(attr(queue, "curbytes"))
    assert live == keep * size
    assert used <= 2 * live + 64 * MIB, f"after the restart the store takes {used} bytes for {live} live"
    set_attr(queue, "framing", "none")
    left = drain(queue, timeout=60)
    assert len(left) == keep
    for seq, msg in zip(range(total - keep, total), left):
        data = msg.encode("latin-1")
        assert struct.unpack_from("<Q", data)[0] == seq and data[8:] == bytes([seq % 251]) * (size - 8)
    assert attr(queue, "sent") == str(total) and attr(queue, "received") == str(total)


# -- 7. fsync(2) --------------------------------------------------------------------------------------

_FSYNC = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"synced")
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
print(os.read(fd, 100).decode())
"""


@pytest.mark.parametrize("mode", ["memory", "os", "disk"])
def test_fsync_on_a_queue_returns_0(durable, mount_mqfs, mode):
    m = mount_mqfs() if mode == "memory" else durable.mount(sync=mode)
    assert child(_FSYNC, m / "q", timeout=20) == "synced\n"


# -- 8. the store directory ------------------------------------------------------------------------------

def test_a_missing_store_directory_is_made_with_mode_0700(durable):
    m = durable.mount()
    assert os.stat(m.store).st_mode & 0o7777 == 0o700
    open(m / "q", "w").close()
    put(m / "q", b"x")
    remount(m)
    assert os.stat(m.store).st_mode & 0o7777 == 0o700
    assert take(m / "q") == b"x"


def test_missing_parents_of_the_store_are_made_as_mkdir_p_makes_them(durable):
    store = durable.path("var/lib/mqfs/mq")
    m = durable.mount(store=store)
    assert os.stat(store).st_mode & 0o7777 == 0o700
    assert os.path.isdir(os.path.dirname(store))
    open(m / "q", "w").close()
    put(m / "q", b"x")
    remount(m)
    assert take(m / "q") == b"x"


def _pid_ended(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@contextlib.contextmanager
def daemonized(args, mnt, store, cwd=None):
    """Runs `mqfs ARGS` (no -f: it daemonizes and moves to /), which must
    mount `mnt` with its store in `store`; yields, then unmounts with umount
    and waits for the daemon (its pid from the store's lock) to end."""
    pid = None
    try:
        result = subprocess.run([MQFS, *args], cwd=cwd, capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mnt)
        with open(os.path.join(store, "lock")) as f:
            pid = int(f.read())
        yield
        subprocess.run(["umount", mnt], check=True, timeout=20)
        wait_until(lambda: _pid_ended(pid), timeout=20, what="the daemon to end after umount")
        pid = None
    finally:
        if pid and not _pid_ended(pid):
            os.kill(pid, signal.SIGKILL)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], timeout=10)


def test_a_relative_store_path_is_kept_absolute_when_daemonized(durable):
    """Daemonized, mqfs moves to /; the relative path still means the
    directory it was given from."""
    mnt, base = durable.path("daemonized"), durable.path("cwd")
    os.mkdir(mnt)
    os.mkdir(base)
    store = os.path.join(base, "store")
    with daemonized([mnt, "-o", "store=store"], mnt, store, cwd=base):
        assert os.path.isdir(store) and not os.path.exists("/store")
        with open(os.path.join(mnt, "q"), "w") as f:
            f.write("kept")
    m = durable.mount(store=store)
    assert take(m / "q") == b"kept"


@pytest.fixture
def read_only_dir(durable):
    """A directory on a read-only tmpfs, holding an existing directory `store`."""
    path = durable.path("ro")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", path], check=True, timeout=10)
    try:
        os.mkdir(os.path.join(path, "store"), 0o700)
        subprocess.run(["mount", "-o", "remount,ro", path], check=True, timeout=10)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], timeout=10)


@pytest.mark.parametrize("kind", ["a-file", "read-only", "read-only-missing"])
def test_an_unusable_store_is_one_line_and_nothing_mounted(durable, read_only_dir, kind):
    mnt = durable.path("mnt")
    os.mkdir(mnt)
    store = {"a-file": durable.path("file"), "read-only": os.path.join(read_only_dir, "store"),
             "read-only-missing": os.path.join(read_only_dir, "missing")}[kind]
    if kind == "a-file":
        open(store, "w").close()
    status, out, err = run_mqfs(["-f", mnt, "-o", f"store={store}"])
    line = one_line(err)
    assert status != 0 and store in line, line
    assert not is_mounted(mnt)



# -- mount-helpers with a store --------------------------------------------------------------------------

HELPERS = os.path.join(os.path.dirname(__file__), "../../mount-helpers")


def _helper_options(name):
    with open(os.path.join(HELPERS, name)) as f:
        lines = [line for line in f.read().splitlines() if line.strip() and not line.startswith("#")]
    if name == "fstab.example":
        (line,) = lines
        return line.split()[3]
    (line,) = [line for line in lines if line.startswith("Options=")]
    return line.partition("=")[2]


@pytest.mark.parametrize("name", ["fstab.example", "mnt-mq.mount"])
def test_the_mount_helpers_options_keep_queues_in_their_store(durable, name):
    """The options of the fstab line and of the systemd unit, with their
    store moved to a test directory, started as mount.fuse3 starts mqfs
    (`mqfs mqfs MOUNTPOINT -o OPTIONS`, daemonized): a message survives
    umount and mount."""
    options = _helper_options(name)
    assert "store=/var/lib/mqfs/" in options
    store = durable.path("var-lib-mqfs-mq")
    options = ",".join(o for o in options.replace("/var/lib/mqfs/mq", store).split(",") if o != "nofail")
    mnt = durable.path("helper-mnt")
    os.mkdir(mnt)
    queue = os.path.join(mnt, "q")
    with daemonized(["mqfs", mnt, "-o", options], mnt, store):
        with open(queue, "w") as f:
            f.write("from the helper's options\n")
    with daemonized(["mqfs", mnt, "-o", options], mnt, store):
        assert take(queue) == b"from the helper's options\n"
