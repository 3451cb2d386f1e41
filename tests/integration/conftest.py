"""The pytest fixtures of the integration tests: each mounts a real mqfs or
starts real processes, and cleans up after the test. The helpers they and the
tests use are in helpers.py.

Every blocking step has a timeout. A test that cannot mount fails. The one
skip here is redis_server's without redis-server installed, and only
outside CI: under CI=true that fails too.
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from helpers import Mount, Procs, is_mounted, wait_until


@pytest.fixture
def mount_mqfs():
    """Factory: mount_mqfs(option, ...) mounts a fresh mqfs with `-o options`.

    At the end of the test the daemon must still be running (no crash; a test
    that kills it must start it again) and must exit cleanly on SIGTERM.
    """
    mounts = []
    workdir = tempfile.mkdtemp(prefix="mqfs-test-")

    def mount(*options, extra_args=(), run=()):
        path = os.path.join(workdir, f"mnt{len(mounts)}")
        os.mkdir(path)
        m = Mount(path, options, extra_args, run)
        mounts.append(m)
        return m

    yield mount
    failures = []
    for m in mounts:
        alive = m.proc.poll() is None
        status = m.stop()
        if not alive:
            failures.append(f"mqfs at {m.path} died during the test (status {status}):\n{m.read_log()}")
        elif status != 0:
            failures.append(f"mqfs at {m.path} exited with {status}:\n{m.read_log()}")
    with contextlib.suppress(OSError):
        for m in mounts:
            os.rmdir(m.path)
            os.unlink(m.log_path)
        os.rmdir(workdir)
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def mq(mount_mqfs):
    """A fresh mqfs with the default options."""
    return mount_mqfs()


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


@pytest.fixture
def procs():
    """A Procs: procs.start(args, ...) and procs.qio(path, step, ...) start
    background processes, which are killed by pid when the test ends."""
    p = Procs()
    yield p
    p.cleanup()


class RedisServer:
    """A redis-server of the test's own on a free port of 127.0.0.1 (and of
    the other `addresses`), stopped by its PID. `persistent`: it keeps an
    append-only file in its directory, synced at every write, so that stop()
    and start() keep the data. `password`: clients must give it."""

    def __init__(self, workdir, persistent=False, password=None, addresses=()):
        self.dir = workdir
        self.persistent = persistent
        self.password = password
        self.addresses = ("127.0.0.1", *addresses)
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(workdir, "redis.log")

    def start(self, timeout=10):
        assert self.proc is None, "redis-server runs already"
        args = ["redis-server", "--port", str(self.port), "--bind", " ".join(self.addresses), "--save", "",
                "--dir", self.dir, "--logfile", self.log_path]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: self.ping() or self.proc.poll() is not None, timeout=timeout, what="redis-server")
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}")
        return self

    def stop(self):
        """Kills it (SIGKILL), as a crash would."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def pause(self):
        """Makes it hang (SIGSTOP), its connections open."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def ping(self):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall((f"AUTH {self.password}\r\n" if self.password else "").encode() + b"PING\r\n")
            return b"+PONG" in s.recv(64)
        return False

    def url(self, address="127.0.0.1"):
        password = f":{self.password}@" if self.password else ""
        return f"redis://{password}{address}:{self.port}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server():
    """Factory: redis_server(persistent=False) starts a redis-server (SPEC
    section 10), killed by PID at the end of the test. Without redis-server
    the test fails under CI=true and is skipped elsewhere."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    servers = []
    workdir = tempfile.mkdtemp(prefix="mqfs-redis-test-")

    def start(persistent=False, password=None, addresses=()):
        server = RedisServer(workdir, persistent, password, addresses).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc:
            server.resume()
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


class Host:
    """Another host: a network namespace joined to this one by a veth pair,
    this side at `gateway`, the other at `address`. run: the command prefix
    that runs a program there (only its network is the host's: it mounts
    into this mount namespace)."""

    def __init__(self, number):
        self.name = f"mqfs-test-{os.getpid()}-{number}"
        subnet = f"10.231.{(os.getpid() + number) % 250 + 1}"
        self.gateway, self.address = f"{subnet}.1", f"{subnet}.2"
        self.link = f"mq{os.getpid() % 100000}h{number}"
        self.run = ["nsenter", f"--net=/run/netns/{self.name}"]
        ip = ["ip", "netns", "exec", self.name, "ip"]
        for command in (["ip", "netns", "add", self.name],
                        ["ip", "link", "add", self.link, "type", "veth", "peer", "name", self.link + "p"],
                        ["ip", "link", "set", self.link + "p", "netns", self.name],
                        ["ip", "addr", "add", self.gateway + "/24", "dev", self.link],
                        ["ip", "link", "set", self.link, "up"],
                        ip + ["addr", "add", self.address + "/24", "dev", self.link + "p"],
                        ip + ["link", "set", self.link + "p", "up"],
                        ip + ["link", "set", "lo", "up"]):
            subprocess.run(command, check=True, timeout=10, capture_output=True)

    def cut(self):
        """Takes its link down: its packets go nowhere, its connections hang."""
        subprocess.run(["ip", "link", "set", self.link, "down"], check=True, timeout=10)

    def join(self):
        subprocess.run(["ip", "link", "set", self.link, "up"], check=True, timeout=10)

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], timeout=10, capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], timeout=10, capture_output=True)


@pytest.fixture
def host():
    """Factory: host() makes another host on this machine (Host), removed at
    the end of the test."""
    made = []

    def make():
        made.append(Host(len(made)))
        return made[-1]

    yield make
    for h in made:
        h.remove()
