"""SPEC section 4: any number of blocked readers and writers (thousands)
costs no thread each.

10,000 blocked reads at once: tests/programs/many_waiters.c runs 20
processes of 500 threads, each thread with its own open file and one
blocking read(2). While they all wait, the daemon's thread count and
resident memory are measured (printed; run pytest with -s to see them);
then 10,000 messages release them and each reader must get exactly one.
The same with 10,000 writers blocked on a full queue.
"""
import os
import subprocess
import sys
import time

from helpers import FUSE_WAIT, SANITIZED, counters, daemon_status, program, wait_until

WAITERS = 10_000
PROCS = 20
# About 7 MiB with 10,000 waiters in the build users get; AddressSanitizer
# adds redzones and keeps freed memory in quarantine (up to 256 MiB).
RSS_LIMIT_KB = (512 if SANITIZED else 200) * 1024

WRITE_ALL = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(int(sys.argv[2])):
    os.write(fd, b"m%05d" % i)
"""

READ_ALL = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, (1 << 30) | (4 << 16) | (ord('M') << 8) | 2, struct.pack("i", 1))
with open(sys.argv[3], "w") as out:
    for _ in range(int(sys.argv[2])):
        out.write(os.read(fd, 1024).decode().strip() + "\n")
"""


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def blocked_threads(parent, uninterruptible_too=False):
    """Threads of `parent`'s children that wait in a FUSE request (or, if
    asked, sleep uninterruptibly in the kernel on the way to one)."""
    n = 0
    for child in children(parent):
        try:
            tids = os.listdir(f"/proc/{child}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{child}/task/{tid}/wchan") as f:
                    wchan = f.read()
                if wchan == FUSE_WAIT:
                    n += 1
                elif uninterruptible_too:
                    with open(f"/proc/{child}/task/{tid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "D":
                            n += 1
            except (FileNotFoundError, ProcessLookupError):
                pass
    return n


def report(what, before, during, elapsed):
    grew = during["VmRSS"] - before["VmRSS"]
    line = (f"{what}: daemon threads {before['Threads']} idle -> {during['Threads']} with {WAITERS} waiting; "
            f"VmRSS {before['VmRSS']} kB -> {during['VmRSS']} kB (+{grew} kB, {grew * 1024 / WAITERS:.0f} B "
            f"per waiter), VmHWM {during['VmHWM']} kB; all blocked after {elapsed:.1f}s")
    print("\n" + line)
    return line


def test_ten_thousand_blocked_readers(mq, procs, tmp_path):
    mq.sh("touch q")
    before = daemon_status(mq.proc.pid)
    out_path = tmp_path / "readers.out"
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        readers = procs.start([program("many_waiters"), "read", mq / "q", str(PROCS), str(WAITERS // PROCS)],
                              stdout=out)
    wait_until(lambda: readers.poll() is not None or blocked_threads(readers.pid) == WAITERS, timeout=90,
               interval=0.5, what=f"{WAITERS} readers to block")
    assert readers.poll() is None, f"the readers ended early: {out_path.read_text()[:2000]}"
    elapsed = time.monotonic() - t0
    during = daemon_status(mq.proc.pid)
    line = report("readers", before, during, elapsed)
    assert during["Threads"] == before["Threads"] <= 2, line
    assert during["VmRSS"] < RSS_LIMIT_KB, line
    assert counters(mq / "q") == {"curmsgs": 0, "sent": 0, "received": 0}

    t1 = time.monotonic()
    subprocess.run([sys.executable, "-c", WRITE_ALL, mq / "q", str(WAITERS)], check=True, timeout=120)
    assert readers.wait(timeout=120) == 0, out_path.read_text()[:2000]
    print(f"released {WAITERS} readers in {time.monotonic() - t1:.1f}s")
    lines = out_path.read_text().splitlines()
    assert not [l for l in lines if not l.startswith("got ")], [l for l in lines if not l.startswith("got ")][:10]
    got = [l[4:] for l in lines]
    assert len(got) == WAITERS
    assert sorted(got) == [f"m{i:05d}" for i in range(WAITERS)]  # each reader exactly one, none twice
    assert counters(mq / "q") == {"curmsgs": 0, "sent": WAITERS, "received": WAITERS}
    assert daemon_status(mq.proc.pid)["Threads"] == before["Threads"]


def test_ten_thousand_blocked_writers(mq, procs, tmp_path):
    mq.sh("touch q")
    mq.setattr("q", "maxmsg", 1)
    mq.sh("echo first > q")
    before = daemon_status(mq.proc.pid)
    out_path = tmp_path / "writers.out"
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        writers = procs.start([program("many_waiters"), "write", mq / "q", str(PROCS), str(WAITERS // PROCS)],
                              stdout=out)
    # The kernel lets one write per queue reach the daemon at a time; the
    # others wait in the kernel (uninterruptibly) for the first.
    wait_until(lambda: writers.poll() is not None or blocked_threads(writers.pid, True) == WAITERS, timeout=90,
               interval=0.5, what=f"{WAITERS} writers to block")
    assert writers.poll() is None, f"the writers ended early: {out_path.read_text()[:2000]}"
    elapsed = time.monotonic() - t0
    during = daemon_status(mq.proc.pid)
    line = report("writers", before, during, elapsed)
    assert during["Threads"] == before["Threads"] <= 2, line
    assert during["VmRSS"] < RSS_LIMIT_KB, line
    assert counters(mq / "q") == {"curmsgs": 1, "sent": 1, "received": 0}

    t1 = time.monotonic()
    drained = tmp_path / "drained"
    subprocess.run([sys.executable, "-c", READ_ALL, mq / "q", str(WAITERS + 1), drained], check=True, timeout=120)
    assert writers.wait(timeout=60) == 0, out_path.read_text()[:2000]
    print(f"released {WAITERS} writers in {time.monotonic() - t1:.1f}s")
    sent = [l[5:] for l in out_path.read_text().splitlines() if l.startswith("sent ")]
    assert len(sent) == WAITERS
    got = drained.read_text().splitlines()
    assert got[0] == "first"
    assert sorted(got[1:]) == sorted(sent)
    assert len(set(sent)) == WAITERS
    assert counters(mq / "q") == {"curmsgs": 0, "sent": WAITERS + 1, "received": WAITERS + 1}
