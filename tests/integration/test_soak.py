"""Soak test: a bounded, randomized run of everything at once (SPEC sections
1-5), checked after every phase.

The run is MQFS_SOAK_SECONDS long (default 60), split into phases of about
10 s. Each phase makes a few fresh queues and lets a single-threaded,
seeded controller loose on them:
- producers: Python programs (one descriptor per priority, priority set
  with MQFS_IOC_SET_PRIORITY, blocking or O_NONBLOCK) and bash loops whose
  builtin `echo` writes at the queue's user.mq.priority; each message is
  unique ("q3.p7:123:5": queue, producer, sequence number, priority);
- consumers: Python programs in message mode (reopen after every end of
  file), stream mode, or whatever the queue's user.mq.read_mode says;
- killers: SIGKILL, SIGTERM or SIGINT to producers and consumers, preferring
  ones that are blocked in a read or write at that moment;
- attribute changes while writers wait: maxmsg up and down, msgsize (also
  below the size of the messages: EMSGSIZE), read_mode, both timeouts,
  priority; chmod;
- mv of queues that are open (sometimes over an existing queue holding a
  message of its own, which the rename replaces), and rm of a queue that is
  open (at most one per phase).
At the end of each phase the producers stop, the consumers are killed, every
queue is drained and removed, and the phase is checked:
- exactly once: every message whose write returned success was received
  exactly once; a message whose producer died between "attempting" and
  "sent" at most once; a message whose write failed (EAGAIN, ETIMEDOUT,
  EMSGSIZE) never; nothing else, nothing twice; each message from the
  queue it was written to;
- order: per consumer (and for the final drain), a producer's messages of
  one priority come in the order written, and the drain only has messages
  newer than the ones consumed;
- memory: the daemon's VmRSS is at most the baseline (taken after the first
  phase) plus a margin (16 MiB; 32 MiB under AddressSanitizer, whose
  quarantine is limited to 4 MiB here), and `df` shows 0 bytes in use;
- all the while, a sampler looks at every process of the test and every
  process with a file on the mount several times a second: one seen in
  state D at the same wchan for 1.5 s (4 s for disk waits) fails the
  test at once, with its pid, wchan, system call, command line and kernel
  stack (SPEC 4: no waiter sits in an unkillable wait, e.g. on the inode
  lock a writer waiting in a full queue would hold). The run is then torn
  down by aborting the FUSE connection, so nothing stays stuck.
The daemon must serve a last message and exit 0 on SIGTERM (under the
sanitizers a report makes it exit non-zero).

How the records cannot lie: a consumer reads straight into a shared memory
mapping of its log file (os.readv into an mmap), so the bytes of a message
are recorded by the very read(2) that takes it: a consumer can be killed at
any instant without losing a record. A producer logs "A seq prio" before
its write and "S seq" or "F seq" after it. Queues are only removed after a
"keeper" opened them; the keeper drains what is left through that open
file, so a removed queue's messages are still counted.

Environment: MQFS_SOAK_SECONDS (run length, default 60), MQFS_SOAK_SEED
(default: random; printed at the start, set it to replay a run),
MQFS_SOAK_MODE=nonblocking (every producer uses O_NONBLOCK, so that no
writer ever waits in a full queue and none waits behind another) for runs
that must leave that case out. tests/README.md says more.
"""
import collections
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import SANITIZED, daemon_status, task_state

SECONDS = float(os.environ.get("MQFS_SOAK_SECONDS", "60"))
SEED = int(os.environ.get("MQFS_SOAK_SEED") or random.SystemRandom().randrange(1 << 31))
MODE = os.environ.get("MQFS_SOAK_MODE", "full")
PHASES = max(2, round(SECONDS / 10))
PHASE_CHAOS = max(2.0, SECONDS / PHASES - 1.5)  # each phase's stop, drain and check take about 1.5 s
# How far above the baseline the daemon's VmRSS may be after a phase: malloc
# keeps some freed memory. Under AddressSanitizer the quarantine of freed
# blocks is limited to 4 MiB for this test (ASAN_OPTIONS, below), and its
# allocator keeps more per size class.
RSS_MARGIN_KB = (32 if SANITIZED else 16) * 1024
PRIORITIES = (0, 1, 5, 9)
LOG_SIZE = 8 << 20  # bytes of a consumer's record mapping

PRODUCER = r"""
import errno, fcntl, os, random, struct, sys, time
path, label, log, nonblock, seed, stop = sys.argv[1:7]
SET_PRIORITY = (1 << 30) | (4 << 16) | (ord('M') << 8) | 1
rng = random.Random(int(seed))
out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
fds = {}
try:
    for p in (0, 1, 5, 9):
        fds[p] = os.open(path, os.O_WRONLY | (os.O_NONBLOCK if nonblock == "1" else 0))
        fcntl.ioctl(fds[p], SET_PRIORITY, struct.pack("i", p))
except FileNotFoundError:
    sys.exit(0)  # renamed or removed before it could open: nothing written
seq = 0
while not os.path.exists(stop):
    p = rng.choice((0, 1, 5, 9))
    os.write(out, b"A %d %d\n" % (seq, p))
    try:
        os.write(fds[p], b"%s:%d:%d\n" % (label.encode(), seq, p))
        os.write(out, b"S %d\n" % seq)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.ETIMEDOUT, errno.EMSGSIZE):
            raise
        os.write(out, b"F %d %s\n" % (seq, errno.errorcode[e.errno].encode()))
        if e.errno != errno.ETIMEDOUT:
            time.sleep(rng.uniform(0.002, 0.02))
    seq += 1
    if rng.random() < 0.3:
        time.sleep(rng.uniform(0, 0.004))
"""

# A bash loop of builtin `echo`s on one descriptor (opened without O_CREAT by
# the Python that execs bash, so that a rename cannot make it create a new
# queue); its messages carry the queue's priority: "-1" in the record.
SHELL_PRODUCER = r"""
i=0
while [ ! -e "$STOP" ]; do
  echo "A $i -1" >> "$LOG"
  if echo "$LABEL:$i:-1" >&3 2>/dev/null; then echo "S $i" >> "$LOG"; else echo "F $i shell" >> "$LOG"; sleep 0.01; fi
  i=$((i+1))
done
"""
SHELL_LAUNCH = r"""
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | (os.O_NONBLOCK if sys.argv[3] == "1" else 0))
except FileNotFoundError:
    sys.exit(0)
os.dup2(fd, 3)
os.execvp("bash", ["bash", "-c", sys.argv[2]])
"""

# Consumer, drainer and keeper: every read goes straight into a shared
# mapping of LOG, so the record exists as soon as the read returned.
CONSUMER = r"""
import errno, fcntl, mmap, os, sys, time
path, log, how = sys.argv[1:4]
SET_READ_MODE = (1 << 30) | (4 << 16) | (ord('M') << 8) | 2
SIZE = %d
lf = os.open(log, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(lf, SIZE)
view = memoryview(mmap.mmap(lf, SIZE))
def opened():
    flags = os.O_RDONLY | (os.O_NONBLOCK if how in ("drain", "keep") else 0)
    fd = os.open(path, flags)
    mode = {"stream": 1, "message": 0, "drain": 1, "keep": 1}.get(how)
    if mode is not None:
        fcntl.ioctl(fd, SET_READ_MODE, mode.to_bytes(4, "little"))
    return fd
try:
    fd = opened()
except FileNotFoundError:
    sys.exit(0)
if how == "keep":
    print("open", flush=True)
    sys.stdin.readline()
off = 0
while off < SIZE - 65536:
    try:
        n = os.readv(fd, [view[off:off + 65536]])
    except OSError as e:
        if e.errno == errno.EAGAIN and how in ("drain", "keep"):
            break
        if e.errno == errno.ETIMEDOUT:
            continue
        raise
    if n == 0:
        if how in ("drain", "keep"):
            break
        os.close(fd)
        try:
            fd = opened()
        except FileNotFoundError:
            sys.exit(0)
        continue
    off += n
print("records %%d" %% off, flush=True)
""" % LOG_SIZE

MESSAGE = re.compile(r"^(q\d+\.p\d+):(\d+):(-?\d+)$")
# How long a process may be seen in state D before the test fails, by where
# it sleeps (its wchan). Short D states are normal: the kernel holds a
# file's inode lock while the daemon answers a write, setxattr, rename...
# (wchan: the function that took it, e.g. fuse_file_write_iter,
# vfs_setxattr, vfs_unlink, do_truncate), and an interrupted FUSE request
# waits killably for the daemon's answer. 1.5 s is far longer than any
# answer takes, but short next to a writer waiting in a full queue, which is
# what the lock must never be held for. Waits for the disk (the test's own
# record files on a busy machine) get longer. On a loaded machine the
# samples come late: a D state must also have been seen by 5 samples in a
# row.
IO_WCHAN = re.compile(r"folio|page|writeback|io_schedule|jbd2|blk|bit_wait|ext4|xfs|btrfs")
def d_limit(wchan):
    if IO_WCHAN.search(wchan):
        return 4.0
    return 1.5


def parse_records(path):
    """The messages a consumer's mapping holds, in the order received."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"\0")
    data = data if end < 0 else data[:end]
    lines = data.decode(errors="replace").split("\n")
    if lines[-1] != "":
        raise AssertionError(f"{path}: a torn message at the end: {lines[-1]!r}")
    return lines[:-1]


class Proc:
    def __init__(self, popen, kind, queue, log, label=None):
        self.popen, self.kind, self.queue, self.log, self.label = popen, kind, queue, log, label
        self.signals = []

    @property
    def pid(self):
        return self.popen.pid


class DSampler(threading.Thread):
    """Samples /proc several times a second for processes in state D that
    belong to the test (descendants of this process) or have a file open on
    the mount."""

    def __init__(self, mount_path):
        super().__init__(daemon=True)
        self.mount = os.path.realpath(mount_path)
        self.me = os.getpid()
        self.found = None
        self.since = {}
        self.samples = 0
        self.seen_d = {}  # wchan -> longest time a process was seen in state D there
        self.stopping = threading.Event()

    def ours(self, pid, ppids):
        p = pid
        for _ in range(64):
            if p == self.me:
                return True
            p = ppids.get(p)
            if not p:
                break
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(self.mount + "/"):
                        return True
        return False

    def sample(self):
        states, ppids = {}, {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                states[int(name)] = fields[0]
                ppids[int(name)] = int(fields[1])
        now = time.monotonic()
        d_now = set()
        for pid, state in states.items():
            if state != "D" or not self.ours(pid, ppids):
                continue
            # The state and wchan are read twice: a D seen here is one that was
            # there before and after its wchan was read.
            s, again = task_state(pid), task_state(pid)
            if not s or not again or s[0] != "D" or again[:2] != s[:2]:
                continue
            wchan = s[1]
            d_now.add((pid, wchan))
            first, count = self.since.get((pid, wchan), (now, 0))
            self.since[(pid, wchan)] = (first, count + 1)
            self.seen_d[wchan] = max(self.seen_d.get(wchan, 0.0), now - first)
            if now - first >= d_limit(wchan) and count + 1 >= 5:
                cmd = ""
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().decode(errors="replace").split("\0")
                    cmd = " ".join("<script>" if "\n" in a else a for a in argv).strip()
                syscall = s[2] if s else None
                stack = ""
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/stack") as f:
                        stack = f.read().strip()
                self.found = (f"process {pid} in state D for {now - first:.2f}s (wchan {wchan}, syscall {syscall}): "
                              f"{cmd}\n{stack}")
        for key in list(self.since):
            if key not in d_now:
                del self.since[key]
        self.samples += 1

    def run(self):
        while not self.stopping.is_set() and self.found is None:
            self.sample()
            self.stopping.wait(0.15)
        if self.found is not None:
            # Release whatever waits on the mount (the test's own steps too: a
            # process in D behind a waiting writer may hold the directory's lock).
            with contextlib.suppress(Exception):
                abort_connection(self.mount)


class Soak:
    def __init__(self, m, workdir, rng, sampler):
        self.m, self.dir, self.rng, self.sampler = m, workdir, rng, sampler
        self.procs = []
        self.names = {}  # logical queue -> current file name, while the name exists
        self.keepers = {}  # logical queue -> keeper Proc (queue removed while open)
        self.queue_no = 0
        self.producer_no = 0
        self.file_no = 0
        self.stats = collections.Counter()
        self.failure = None

    # -- helpers -------------------------------------------------------------------------
    def path(self, q):
        return self.m / self.names[q]

    def fresh(self, what):
        self.file_no += 1
        return os.path.join(self.dir, f"{what}-{self.file_no:05d}")

    def run(self, args, timeout=30):
        """A short command on the mount; one that does not end in time is a
        failure, and is left to the teardown (it may be in state D, where
        waiting for it would hang the test)."""
        popen = subprocess.Popen(args, cwd=self.m.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if popen.poll() is not None:  # it ended just now
                out, err = popen.communicate()
                return subprocess.CompletedProcess(args, popen.returncode, out, err)
            s = task_state(popen.pid) or ("?", "?", None)
            self.failure = self.failure or f"{args} did not end within {timeout}s (state {s[0]}, wchan {s[1]})"
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGKILL)
            self.procs.append(Proc(popen, "command", None, self.fresh("command")))
            return None
        return subprocess.CompletedProcess(args, popen.returncode, out, err)

    def spawn(self, args, kind, q, log, label=None, **kwargs):
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        with open(log + ".err", "w") as err:
            popen = subprocess.Popen(args, stderr=err, **kwargs)
        p = Proc(popen, kind, q, log, label)
        self.procs.append(p)
        return p

    def alive(self, kind=None, q=None):
        return [p for p in self.procs if p.popen.poll() is None and (kind is None or p.kind == kind)
                and (q is None or p.queue == q) and p.kind != "keeper"]

    # -- the actors ----------------------------------------------------------------------
    def new_queue(self):
        self.queue_no += 1
        q = self.queue_no
        self.names[q] = f"q{q}-0"
        # Every step on the mount runs in a child process with a timeout.
        self.run(["touch", self.names[q]])
        self.run(["setfattr", "-n", "user.mq.maxmsg", "-v", str(self.rng.choice((1, 2, 5, 10, 50))), self.names[q]])
        return q

    def producer(self, q, stop):
        self.producer_no += 1
        label = f"q{q}.p{self.producer_no}"
        log = self.fresh("producer")
        if self.rng.random() < 0.25:
            env = dict(os.environ, STOP=stop, LOG=log, LABEL=label)
            nonblock = "1" if MODE == "nonblocking" else "0"
            p = self.spawn([sys.executable, "-c", SHELL_LAUNCH, self.path(q), SHELL_PRODUCER, nonblock], "producer", q,
                           log, label, env=env)
        else:
            nonblock = "1" if MODE == "nonblocking" or self.rng.random() < 0.3 else "0"
            p = self.spawn([sys.executable, "-c", PRODUCER, self.path(q), label, log, nonblock,
                            str(self.rng.randrange(1 << 30)), stop], "producer", q, log, label)
        self.stats["producers"] += 1
        return p

    def consumer(self, q):
        log = self.fresh("consumer")
        how = self.rng.choice(("stream", "message", "default"))
        self.stats["consumers"] += 1
        return self.spawn([sys.executable, "-c", CONSUMER, self.path(q), log, how], "consumer", q, log)

    def kill_one(self):
        candidates = self.alive("producer") + self.alive("consumer")
        if not candidates:
            return
        waiting = [p for p in candidates if (task_state(p.pid) or ("", "", None))[1] == "request_wait_answer"]
        p = self.rng.choice(waiting if waiting and self.rng.random() < 0.8 else candidates)
        sig = self.rng.choice((signal.SIGKILL, signal.SIGTERM, signal.SIGINT))
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
            p.signals.append(sig)
            self.stats[f"{p.kind} {signal.Signals(sig).name}" + (" while waiting" if p in waiting else "")] += 1

    def change_attribute(self):
        live = list(self.names)
        if not live:
            return
        q = self.rng.choice(live)
        name, value = self.rng.choice((
            ("maxmsg", self.rng.choice((1, 2, 3, 5, 10, 50))),
            ("maxmsg", self.rng.choice((1, 2, 3, 5, 10, 50))),
            ("msgsize", self.rng.choice((8, 16, 64, 256, 8192))),
            ("read_mode", self.rng.choice(("message", "stream"))),
            ("send_timeout_ms", self.rng.choice((0, 0, 20, 200))),
            ("recv_timeout_ms", self.rng.choice((0, 0, 50))),
            ("priority", self.rng.choice(PRIORITIES)),
            ("chmod", self.rng.choice(("0644", "0666", "0600"))),
        ))
        if name == "chmod":
            args = ["chmod", value, self.names[q]]
        else:
            args = ["setfattr", "-n", "user.mq." + name, "-v", str(value), self.names[q]]
        r = self.run(args)
        if r is not None and r.returncode != 0 and "No such file" not in r.stderr:
            self.failure = self.failure or f"{args} failed: {r.stderr.strip()}"
        self.stats[name] += 1

    def rename(self):
        live = list(self.names)
        if not live:
            return
        q = self.rng.choice(live)
        old = self.names[q]
        new = f"q{q}-{int(old.rsplit('-', 1)[1]) + 1}"
        if self.rng.random() < 0.3:
            # Over an existing queue, which it replaces: one that nobody opened
            # and that holds a message nobody wrote as a producer, so the check
            # would see it if it turned up anywhere.
            self.run(["bash", "-c", f"echo replaced > {new}"])
            self.stats["mv over a queue"] += 1
        r = self.run(["mv", old, new])
        if r is not None and r.returncode != 0:
            self.failure = self.failure or f"mv {old} {new} failed: {r.stderr.strip()}"
            return
        self.names[q] = new
        self.stats["mv"] += 1

    def remove(self):
        live = [q for q in self.names if q not in self.keepers]
        if len(live) < 2:
            return
        q = self.rng.choice(live)
        log = self.fresh("keeper")
        keeper = self.spawn([sys.executable, "-c", CONSUMER, self.path(q), log, "keep"], "keeper", q, log,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.read_line(keeper, 5)
        if line != "open":
            self.failure = self.failure or f"the keeper of {self.names[q]} did not open it: {line!r}"
            return
        r = self.run(["rm", self.names[q]])
        if r is not None and r.returncode != 0:
            self.failure = self.failure or f"rm {self.names[q]} failed: {r.stderr.strip()}"
        self.keepers[q] = keeper
        del self.names[q]
        self.stats["rm while open"] += 1

    def read_line(self, p, timeout):
        result = []
        t = threading.Thread(target=lambda: result.append(p.popen.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        return result[0].strip() if result else None

    # -- one phase -----------------------------------------------------------------------
    def phase(self, number, seconds):
        stop = self.fresh("stop")
        queues = [self.new_queue() for _ in range(self.rng.randint(2, 4))]
        wanted = {q: (self.rng.randint(1, 3), self.rng.randint(1, 3)) for q in queues}
        removed_this_phase = False
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.failure is None and self.sampler.found is None:
            for q in list(self.names):
                if q not in wanted:
                    continue
                np, nc = wanted[q]
                while len(self.alive("producer", q)) < np:
                    self.producer(q, stop)
                while len(self.alive("consumer", q)) < nc:
                    self.consumer(q)
            action = self.rng.random()
            if action < 0.35:
                self.kill_one()
            elif action < 0.75:
                self.change_attribute()
            elif action < 0.85:
                self.rename()
            elif action < 0.88 and not removed_this_phase:
                self.remove()
                removed_this_phase = True
            elif action < 0.95:
                # A new mix for one queue; often no consumers for a while, so that
                # writers wait in a full queue, behind one another.
                q = self.rng.choice(queues)
                wanted[q] = (self.rng.randint(1, 4), 0 if self.rng.random() < 0.4 else self.rng.randint(1, 3))
                for kind, n in zip(("producer", "consumer"), wanted[q]):
                    for p in self.alive(kind, q)[n:]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p.pid, signal.SIGTERM)
                            p.signals.append(signal.SIGTERM)
            time.sleep(self.rng.uniform(0.01, 0.15))  # the pace of the chaos, not a wait for a condition
        if self.failure or self.sampler.found:
            return
        self.settle(stop, queues)

    def settle(self, stop, queues):
        """Stops the producers (consumers keep taking so that blocked ones finish),
        kills the consumers, drains every queue and removes it."""
        for q in queues:
            if q in self.names:
                self.run(["setfattr", "-n", "user.mq.send_timeout_ms", "-v", "0", self.names[q]])
                self.run(["setfattr", "-n", "user.mq.msgsize", "-v", "8192", self.names[q]])
                self.run(["setfattr", "-n", "user.mq.recv_timeout_ms", "-v", "0", self.names[q]])
                if not self.alive("consumer", q):
                    self.consumer(q)
        with open(stop, "w"):
            pass
        # A producer of a removed queue that no consumer reads any more may wait
        # for ever: it ends unconfirmed.
        for q in self.keepers:
            if not self.alive("consumer", q):
                for p in self.alive("producer", q):
                    os.kill(p.pid, signal.SIGKILL)
                    p.signals.append(signal.SIGKILL)
                    self.stats["producer SIGKILL at the end"] += 1
        deadline = time.monotonic() + 3
        while self.alive("producer") and time.monotonic() < deadline and self.sampler.found is None:
            time.sleep(0.02)
        for p in self.alive("producer"):  # still blocked (e.g. on a removed queue): ends unconfirmed
            os.kill(p.pid, signal.SIGKILL)
            p.signals.append(signal.SIGKILL)
            self.stats["producer SIGKILL at the end"] += 1
        for p in self.alive("consumer"):
            os.kill(p.pid, signal.SIGKILL)
            p.signals.append(signal.SIGKILL)
        for p in self.procs:
            if p.kind != "keeper":
                try:
                    p.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.failure = self.failure or f"{p.kind} {p.pid} did not end within 5s of SIGKILL"
                    return
        for q in queues:
            log = self.fresh("drain")
            if q in self.keepers:
                keeper = self.keepers.pop(q)
                keeper.popen.stdin.write("drain\n")
                keeper.popen.stdin.flush()
                line = self.read_line(keeper, 10)
                if not (line or "").startswith("records"):
                    self.failure = self.failure or f"the keeper of removed queue q{q} did not drain it: {line!r}"
                    return
                keeper.popen.wait(timeout=5)
                keeper.kind = "drain"
            else:
                d = self.spawn([sys.executable, "-c", CONSUMER, self.path(q), log, "drain"], "drain", q, log)
                try:
                    d.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.failure = self.failure or f"draining {self.names[q]} took more than 10s"
                    return
                r = self.run(["getfattr", "--only-values", "-n", "user.mq.curmsgs", self.names[q]])
                left = r.stdout.strip() if r else "?"
                if left != "0":
                    self.failure = self.failure or f"{self.names[q]} holds {left} messages after its drain"
                    return
                self.run(["rm", self.names[q]])
                del self.names[q]

    # -- the checks ----------------------------------------------------------------------
    def check(self, number):
        attempts, sent, failed = {}, set(), set()
        received = collections.Counter()
        where = {}
        problems = []
        for p in self.procs:
            err = ""
            with contextlib.suppress(OSError):
                with open(p.log + ".err") as f:
                    err = f.read().strip()
            rc = p.popen.returncode
            if rc not in (0, None) and -rc not in p.signals and not (rc == 1 and signal.SIGINT in p.signals
                                                                    and "KeyboardInterrupt" in err):
                problems.append(f"{p.kind} {p.pid} on q{p.queue} exited with {rc}: {err[-500:]}")
            if p.kind == "producer":
                if not os.path.exists(p.log):
                    continue
                with open(p.log) as f:
                    lines = f.read().split("\n")
                torn = lines.pop()  # "" unless the producer died while writing its record
                for line in lines:
                    kind, seq, *rest = line.split()
                    key = (p.label, int(seq))
                    if kind == "A":
                        attempts[key] = int(rest[0])
                    elif kind == "S":
                        sent.add(key)
                    else:
                        failed.add(key)
                if torn.startswith("A "):
                    pass  # never written: its write had not begun
        order_lists = []
        drained_by_queue = collections.defaultdict(list)
        consumed_by_queue = collections.defaultdict(list)
        for p in self.procs:
            if p.kind not in ("consumer", "drain"):
                continue
            if not os.path.exists(p.log):
                continue
            try:
                msgs = parse_records(p.log)
            except AssertionError as e:
                problems.append(str(e))
                continue
            seen = []
            for text in msgs:
                mm = MESSAGE.match(text)
                if not mm:
                    problems.append(f"{p.kind} of q{p.queue} received a message nobody wrote: {text[:100]!r}")
                    continue
                label, seq, prio = mm.group(1), int(mm.group(2)), int(mm.group(3))
                key = (label, seq)
                received[key] += 1
                where.setdefault(key, []).append(f"{p.kind} {p.pid}")
                if not label.startswith(f"q{p.queue}."):
                    problems.append(f"{text} (written to q{label[1:].split('.')[0]}) was received from q{p.queue}")
                if attempts.get(key, prio) != prio:
                    problems.append(f"{text} was written at priority {attempts[key]}")
                seen.append((label, prio, seq))
            order_lists.append((f"{p.kind} {p.pid}", seen))
            (drained_by_queue if p.kind == "drain" else consumed_by_queue)[p.queue].extend(seen)
        for name, seen in order_lists:
            last = {}
            for label, prio, seq in seen:
                if prio >= 0 and seq <= last.get((label, prio), -1):
                    problems.append(f"{name}: {label}:{seq} at priority {prio} came after {label}:{last[(label, prio)]}")
                last[(label, prio)] = seq
        for q, drained in drained_by_queue.items():
            newest = {}
            for label, prio, seq in consumed_by_queue[q]:
                newest[(label, prio)] = max(newest.get((label, prio), -1), seq)
            for label, prio, seq in drained:
                if prio >= 0 and seq < newest.get((label, prio), -1):
                    problems.append(f"{label}:{seq} at priority {prio} was still queued after a consumer got "
                                    f"{label}:{newest[(label, prio)]}")
        lost = sorted(sent - set(received))
        if lost:
            problems.append(f"{len(lost)} messages sent but never received, e.g. {lost[:10]}")
        twice = sorted(k for k, n in received.items() if n > 1)
        if twice:
            problems.append(f"{len(twice)} messages received more than once, e.g. "
                            + ", ".join(f"{k} by {where[k]}" for k in twice[:5]))
        ghosts = sorted(k for k in received if k in failed)
        if ghosts:
            problems.append(f"{len(ghosts)} messages whose write failed were received, e.g. {ghosts[:10]}")
        unknown = sorted(k for k in received if k not in attempts)
        if unknown:
            problems.append(f"{len(unknown)} received messages were never attempted, e.g. {unknown[:10]}")
        unconfirmed = set(attempts) - sent - failed
        summary = (f"phase {number}: {len(sent)} sent, {len(failed)} failed writes, {len(unconfirmed)} unconfirmed "
                   f"({len(unconfirmed & set(received))} of them received), {sum(received.values())} received, "
                   f"{len(self.procs)} processes")
        self.stats["messages sent"] += len(sent)
        return problems, summary

    def forget(self):
        for p in self.procs:
            for stream in (p.popen.stdin, p.popen.stdout):
                if stream:
                    stream.close()
        self.procs = []

    def kill_all(self):
        for p in self.procs:
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=5)


def connection_of(path):
    """The mount's FUSE connection in /sys/fs/fuse/connections (as in test_lifecycle)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        entries = [line.split() for line in f if line.split()[4] == path]
    major, minor = (int(n) for n in entries[-1][2].split(":"))
    return str((major << 20) | minor)


def abort_connection(path):
    """`echo 1 > /sys/fs/fuse/connections/N/abort`, with fusectl mounted in a
    private mount namespace: every request waiting for the daemon fails."""
    script = 'mount -t fusectl fusectl /sys/fs/fuse/connections && echo 1 > "/sys/fs/fuse/connections/$0/abort"'
    subprocess.run(["unshare", "-m", "sh", "-c", script, connection_of(path)], timeout=10, capture_output=True)


def sent_any(summary):
    return not summary.split(": ", 1)[1].startswith("0 sent")


def used_bytes(path):
    """Bytes in use as `df` shows them (statfs in a child process, with a timeout)."""
    r = subprocess.run(["stat", "-f", "-c", "%b %f %S", path], capture_output=True, text=True, timeout=30)
    blocks, free, size = (int(n) for n in r.stdout.split())
    return (blocks - free) * size


def test_soak(daemons, tmp_path, monkeypatch):  # noqa: F811 (fixture)
    print(f"\nmqfs soak: MQFS_SOAK_SEED={SEED} MQFS_SOAK_SECONDS={SECONDS:g} MQFS_SOAK_MODE={MODE}: "
          f"{PHASES} phases of {PHASE_CHAOS:.1f}s", flush=True)
    t0 = time.monotonic()
    # ASan's quarantine would otherwise hold up to 256 MiB of freed memory.
    asan = os.environ.get("ASAN_OPTIONS")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "quarantine_size_mb=4")
    m = daemons()
    rng = random.Random(SEED)
    sampler = DSampler(m.path)
    sampler.start()
    soak = Soak(m, str(tmp_path), rng, sampler)
    baseline = None
    failure = None
    phases_done = 0
    try:
        for number in range(PHASES):
            if number >= 2 and time.monotonic() - t0 > SECONDS * 1.1:
                print(f"the machine is slow: stopping after {number} phases, at {time.monotonic() - t0:.1f}s")
                break
            soak.phase(number, PHASE_CHAOS)
            if sampler.found or soak.failure:
                failure = sampler.found or soak.failure
                break
            problems, summary = soak.check(number)
            rss = daemon_status(m.proc.pid)["VmRSS"]
            used = used_bytes(m.path)
            if baseline is None:
                baseline = rss
            print(f"{summary}; daemon VmRSS {rss} kB (baseline {baseline} kB), df used {used} bytes, "
                  f"{time.monotonic() - t0:.1f}s", flush=True)
            if not sent_any(summary):
                problems.append("no message was sent in this phase: the check would mean nothing")
            if used != 0:
                problems.append(f"df shows {used} bytes in use after every queue was drained and removed")
            if rss > baseline + RSS_MARGIN_KB:
                problems.append(f"daemon VmRSS {rss} kB is more than {RSS_MARGIN_KB} kB above the baseline {baseline} kB")
            if m.proc.poll() is not None:
                problems.append(f"mqfs exited with {m.proc.returncode}:\n{m.read_log()[-3000:]}")
            if problems:
                failure = f"phase {number}:\n" + "\n".join(problems[:30])
                break
            soak.forget()
            phases_done += 1
    finally:
        sampler.stopping.set()
        sampler.join(5)
        if failure is None and sampler.found:
            failure = sampler.found
        if failure is not None:
            # Clients in D state cannot be killed until the daemon answers: abort the
            # connection first, then kill what is left (the fixture unmounts).
            with contextlib.suppress(Exception):
                abort_connection(m.path)
            soak.kill_all()
            with contextlib.suppress(Exception):
                m.proc.kill()
        else:
            soak.kill_all()
    print("longest D states seen (s, by wchan): " + ", ".join(f"{k} {v:.2f}" for k, v in sampler.seen_d.items()))
    print("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.stats.items())), flush=True)
    if failure is not None:
        pytest.fail(f"soak failed (replay with MQFS_SOAK_SEED={SEED} MQFS_SOAK_SECONDS={SECONDS:g} "
                    f"MQFS_SOAK_MODE={MODE}; sampler took {sampler.samples} samples):\n{failure}")
    assert sampler.samples >= time.monotonic() - t0, "the D-state sampler fell behind"
    if phases_done >= 3:  # a run this long has done each kind of chaos (else the seed is a poor one)
        done = soak.stats
        for what in ("consumer SIGKILL while waiting", "mv", "rm while open", "maxmsg"):
            assert done[what] > 0, f"the run never did {what!r}: {dict(done)}"
    # The daemon still serves, and exits cleanly.
    r = subprocess.run(["bash", "-c", "echo last > end && cat end"], cwd=m.path, capture_output=True, text=True,
                       timeout=10)
    assert r.stdout == "last\n", r
    m.proc.send_signal(signal.SIGTERM)
    try:
        status = m.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("mqfs did not exit within 20s of SIGTERM")
    assert status == 0, f"mqfs exited with {status}:\n{m.read_log()[-5000:]}"
    print(f"soak passed in {time.monotonic() - t0:.1f}s", flush=True)
