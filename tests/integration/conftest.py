"""The pytest fixtures of the integration tests: each mounts a real mqfs or
starts real processes, and cleans up after the test. The helpers they and the
tests use are in helpers.py.

Every blocking step has a timeout. A test that cannot mount fails: nothing
here skips.
"""
import contextlib
import os
import subprocess
import tempfile

import pytest

from helpers import Mount, Procs, is_mounted


@pytest.fixture
def mount_mqfs():
    """Factory: mount_mqfs(option, ...) mounts a fresh mqfs with `-o options`.

    At the end of the test the daemon must still be running (no crash; a test
    that kills it must start it again) and must exit cleanly on SIGTERM.
    """
    mounts = []
    workdir = tempfile.mkdtemp(prefix="mqfs-test-")

    def mount(*options, extra_args=()):
        path = os.path.join(workdir, f"mnt{len(mounts)}")
        os.mkdir(path)
        m = Mount(path, options, extra_args)
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
