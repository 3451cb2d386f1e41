"""Exhaustion: the mount-wide caps under attack from many processes.

Each cap holds exactly, past it the errno is the documented one, the daemon
keeps serving, and room comes back when queues drain or go:

  max_queues      creating one more queue or directory: ENOSPC
  max_bytes       a write that would pass it: ENOSPC (each message counts
                  its bytes plus 136 of bookkeeping)
  max_open_files  one more open: ENFILE
  max_waiters     one more read or write that would block: EAGAIN

and together they bound the daemon's memory: README "Limits" gives the cost
of each thing they count, which the last test checks against the daemon's
resident memory while every cap is reached at once.
"""
import os
import subprocess
import textwrap

import pytest

from helpers import (SANITIZED, LineReader, MESSAGE_OVERHEAD, PYTHON, daemon_status, errno_of, finish, program, put,
                     statfs, take, wait_until)

# README "Limits": what the daemon may spend on each counted thing, at most,
# besides max_bytes, and its fixed cost (code, libfuse's buffer, stacks).
PER_QUEUE = 1024
PER_OPEN_FILE = 1024
PER_WAITER = 1024
FIXED = 8 << 20

# Under AddressSanitizer every allocation has redzones and freed memory sits
# in quarantine, so the daemon's memory measures ASan, not mqfs: there the
# tests check the caps and errnos but not the memory bound.

FLOOD = textwrap.dedent(r"""
    # flood QUEUE SIZE: writes SIZE-byte messages, each at its own priority
    # (the costliest shape), until the first error; prints "COUNT ERRNO".
    import errno, fcntl, os, struct, sys
    SET_PRIORITY = (1 << 30) | (4 << 16) | (ord("M") << 8) | 1
    path, size = sys.argv[1], int(sys.argv[2])
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    payload, n = b"x" * size, 0
    while True:
        fcntl.ioctl(fd, SET_PRIORITY, struct.pack("i", n % 32768))
        try:
            os.write(fd, payload)
        except OSError as e:
            print(n, e.errno)
            break
        n += 1
""")

OPEN_ALL = textwrap.dedent(r"""
    # open_all QUEUE: opens QUEUE until the first error; prints "COUNT ERRNO",
    # then holds the files open until its standard input closes.
    import os, resource, sys
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fds = []
    while True:
        try:
            fds.append(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK))
        except OSError as e:
            print(len(fds), e.errno, flush=True)
            break
    sys.stdin.read()
""")

CREATE_MANY = textwrap.dedent(r"""
    # create_many DIR PREFIX N: creates N queues (odd i: directories);
    # prints how many were made and the errnos of the others.
    import os, sys
    made, errors = 0, set()
    for i in range(int(sys.argv[3])):
        path = os.path.join(sys.argv[1], f"{sys.argv[2]}-{i}")
        try:
            if i % 2:
                os.mkdir(path)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK))
            made += 1
        except OSError as e:
            errors.add(e.errno)
    print(made, *sorted(errors))
""")


def run_all(commands, timeout=60):
    """Starts every command at once and returns their stdout lines, split."""
    started = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = []
    for p in started:
        status, out, err = finish(p, timeout=timeout)
        assert status == 0, err
        results.append([int(x) for x in out.split()])
    return results


def release(proc, timeout=30):
    """Closes the standard input `proc` waits on, and waits for it to exit."""
    proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args[:3]} did not exit within {timeout}s")


def rss_kb(m):
    return daemon_status(m.proc.pid)["VmRSS"]


def used_bytes(m):
    st = statfs(m.path)
    return (st["blocks"] - st["bfree"]) * st["bsize"]


def assert_serving(m, name="probe"):
    m.sh(f"echo alive > {name}")
    assert m.sh(f"cat {name}").stdout == "alive\n"


def test_queue_cap_holds_against_many_processes(mount_mqfs):
    m = mount_mqfs("max_queues=300")
    m.sh("touch probe")
    results = run_all([[PYTHON, "-c", CREATE_MANY, m.path, f"x{i}", "100"] for i in range(6)])
    assert sum(r[0] for r in results) == 299  # the cap, less the probe
    assert {e for r in results for e in r[1:]} == {28}  # ENOSPC, nothing else
    assert statfs(m.path)["ffree"] == 0
    assert_serving(m)
    m.sh("find . -mindepth 1 -name 'x*' -delete")
    wait_until(lambda: statfs(m.path)["ffree"] == 299, what="the removed queues to be freed")
    assert run_all([[PYTHON, "-c", CREATE_MANY, m.path, "again", "10"]]) == [[10]]


def test_byte_cap_holds_against_many_processes_and_tiny_messages(mount_mqfs):
    cap = 4 << 20
    m = mount_mqfs(f"max_bytes={cap}", "maxmsg=1000000", f"msgsize={64 << 10}")
    m.sh("touch probe t0 t1 t2 big")
    floods = [[PYTHON, "-c", FLOOD, m / f"t{i}", "1"] for i in range(3)]
    floods += [[PYTHON, "-c", FLOOD, m / "big", str(64 << 10)] for _ in range(3)]
    results = run_all(floods)
    assert {r[1] for r in results} == {28}, results  # every flood ended at ENOSPC
    queues = ["t0", "t1", "t2", "big"]
    held = sum(int(m.getattr(q, "curbytes")) + MESSAGE_OVERHEAD * int(m.getattr(q, "curmsgs")) for q in queues)
    assert held == used_bytes(m) <= cap
    assert cap - held < 1 + MESSAGE_OVERHEAD  # filled: not even a one-byte message more fits
    assert sum(r[0] for r in results) == sum(int(m.getattr(q, "curmsgs")) for q in queues)
    assert errno_of(put, m / "probe", b"x" * (64 << 10)) == 28
    # A drained message makes room for one more, for anyone.
    take(m / "big")
    assert put(m / "probe", b"y" * 1000) == 1000
    m.sh("rm t0 t1 t2 big")
    wait_until(lambda: used_bytes(m) == 1000 + MESSAGE_OVERHEAD, what="the removed queues' bytes to be freed")


def test_open_file_cap_gives_enfile_and_room_comes_back(mount_mqfs):
    m = mount_mqfs("max_open_files=2000")
    m.sh("touch q")
    holder = subprocess.Popen([PYTHON, "-c", OPEN_ALL, m / "q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        line = LineReader(holder).line(timeout=60, what="the opener to reach the cap")
        assert [int(x) for x in line.split()] == [2000, 23]  # ENFILE
        result = m.sh("cat q", check=False)
        assert result.returncode != 0 and "Too many open files in system" in result.stderr
        assert m.getattr("q", "curmsgs") == "0"  # attributes need no open file
    finally:
        release(holder)
    wait_until(lambda: errno_of(put, m / "q", b"back") is None, what="room for open files")
    assert take(m / "q") == b"back"


def test_waiter_cap_gives_eagain_and_room_comes_back(mount_mqfs):
    m = mount_mqfs("max_waiters=300")
    m.sh("touch q")
    readers = subprocess.Popen([program("many_waiters"), "read", m / "q", "1", "350"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    output = LineReader(readers)
    try:
        # 50 of them find no place to wait.
        lines = [output.line(timeout=60, what="refused readers") for _ in range(50)]
        assert all(line.startswith("err read") and line.split()[-1] == "11" for line in lines), lines[:3]  # EAGAIN
        assert waiters_full(m / "q")
        m.sh("for i in $(seq 300); do echo m$i > q; done", timeout=60)
    finally:
        status, out, err = finish(readers, timeout=60)
    got = [line for line in (output.buffer.decode() + out).splitlines() if line.startswith("got ")]
    assert sorted(got) == sorted(f"got m{i}" for i in range(1, 301))
    assert m.getattr("q", "curmsgs") == "0"
    # Places to wait are free again.
    assert finish(subprocess.Popen(["timeout", "0.5", "cat", m / "q"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE))[0] == 124  # it waited, and timed out


def test_a_reader_that_never_reads_holds_only_its_queue(mount_mqfs):
    m = mount_mqfs("maxmsg=4", f"msgsize={1 << 19}")
    m.sh("touch slow other")
    assert put(m / "slow", b"r" * (1 << 19)) == 1 << 19
    # Reads one byte of that message and then nothing, for ever: it holds the rest.
    idle = subprocess.Popen([PYTHON, "-c", "import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY);"
                             " os.read(fd, 1); print('holding', flush=True); sys.stdin.read()", m / "slow"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert LineReader(idle).line(what="the idle reader") == "holding"
        for _ in range(4):
            assert put(m / "slow", b"w" * (1 << 19)) == 1 << 19
        assert errno_of(put, m / "slow", b"more") == 11  # full: writers wait or get EAGAIN
        held = used_bytes(m)
        assert held == 5 * ((1 << 19) + MESSAGE_OVERHEAD)  # four queued, one held in part by the reader
        assert_serving(m, "other")  # other queues are not affected
    finally:
        release(idle)
    wait_until(lambda: used_bytes(m) == 4 * ((1 << 19) + MESSAGE_OVERHEAD), what="the held rest to be freed")


def test_memory_stays_within_the_caps_with_every_cap_reached(mount_mqfs):
    caps = {"max_bytes": 16 << 20, "max_queues": 500, "max_open_files": 2000, "max_waiters": 500}
    m = mount_mqfs(*(f"{k}={v}" for k, v in caps.items()), "maxmsg=1000000")
    m.sh("touch q")
    assert_serving(m)
    baseline = rss_kb(m) * 1024
    bound = (caps["max_bytes"] + caps["max_queues"] * PER_QUEUE + caps["max_open_files"] * PER_OPEN_FILE
             + caps["max_waiters"] * PER_WAITER + FIXED)

    # Queues: every one allowed, with the longest names.
    results = run_all([[PYTHON, "-c", CREATE_MANY, m.path, "n" * 240 + f"{i}", "200"] for i in range(3)])
    assert sum(r[0] for r in results) == caps["max_queues"] - 2  # probe and q exist
    # Bytes: one-byte messages, each alone at its priority, from three processes.
    tiny = sorted(name for name in os.listdir(m.path) if name.startswith("n") and not os.path.isdir(m / name))[:3]
    results = run_all([[PYTHON, "-c", FLOOD, m / name, "1"] for name in tiny], timeout=300)
    assert {r[1] for r in results} == {28}
    # Waiters: every place taken by a blocked read (the extra readers are
    # refused, which tells that all places are taken); then open files, every one.
    extra = 20
    readers = subprocess.Popen([program("many_waiters"), "read", m / "q", "1", str(caps["max_waiters"] + extra)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = None
    try:
        output = LineReader(readers)
        refused = [output.line(timeout=60, what="refused readers") for _ in range(extra)]
        assert all(line.split()[-1] == "11" for line in refused), refused[:3]  # EAGAIN
        assert waiters_full(m / "q")
        holder = subprocess.Popen([PYTHON, "-c", OPEN_ALL, m / "q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        count, error = (int(x) for x in LineReader(holder).line(timeout=60, what="open files").split())
        assert error == 23 and count == caps["max_open_files"] - caps["max_waiters"]

        used = rss_kb(m) * 1024 - baseline
        print(f"daemon memory with every cap reached: {used >> 10} KiB above {baseline >> 10} KiB; bound {bound >> 10} KiB")
        if not SANITIZED:
            assert used <= bound
    finally:
        if holder:
            release(holder)
        for name in tiny:
            os.truncate(m / name, 0)
        subprocess.run(["bash", "-c", f"for i in $(seq {caps['max_waiters']}); do echo m > q; done"], cwd=m.path,
                       timeout=60)
        finish(readers, timeout=60)
    m.sh("find . -mindepth 1 -delete")
    assert used_bytes(m) == 0
    wait_until(lambda: statfs(m.path)["ffree"] == caps["max_queues"], what="every queue to be freed")
    # Memory goes back: all but a little of what the attack took.
    after = rss_kb(m) * 1024 - baseline
    print(f"after removal: {after >> 10} KiB above the baseline")
    if not SANITIZED:
        wait_until(lambda: rss_kb(m) * 1024 - baseline <= 4 << 20, timeout=10,
                   what="the daemon to give its memory back")


def waiters_full(path):
    """A blocking read of the empty queue `path` fails at once with EAGAIN
    (instead of waiting, until `timeout` ends it)."""
    result = subprocess.run(["timeout", "5", "cat", path], capture_output=True, text=True, timeout=10)
    return result.returncode == 1 and "Resource temporarily unavailable" in result.stderr
