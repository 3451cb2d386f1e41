"""Mounts a real mqfs for each test and drives it from real processes.

Every blocking step has a timeout. A test that cannot mount fails: nothing
here skips.
"""
import contextlib
import os
import signal
import subprocess
import tempfile
import time

import pytest

MQFS = os.environ.get("MQFS_BIN", os.path.join(os.path.dirname(__file__), "../../build/mqfs"))
PROGRAMS = os.environ.get("MQFS_PROGRAMS", os.path.join(os.path.dirname(__file__), "../../build/tests"))


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


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Mount:
    """A running mqfs daemon (in the foreground) and its mount point."""

    def __init__(self, path, options=(), extra_args=()):
        self.path = path
        self.log_path = path + ".log"
        args = [MQFS, "-f", path]
        if options:
            args += ["-o", ",".join(options)]
        args += list(extra_args)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: is_mounted(path) or self.proc.poll() is not None, what="the mount")
        if self.proc.poll() is not None:
            pytest.fail(f"mqfs exited with {self.proc.returncode} before mounting:\n{self.read_log()}")

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
        return os.getxattr(self / queue, "user.mq." + name).decode()

    def setattr(self, queue, name, value):
        os.setxattr(self / queue, "user.mq." + name, str(value).encode())

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


@pytest.fixture
def mount_mqfs():
    """Factory: mount_mqfs(option, ...) mounts a fresh mqfs with `-o options`.

    At the end of the test the daemon must still be running (no crash) and
    must exit cleanly on SIGTERM.
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


def program(name):
    """Path of a test program built from tests/programs/NAME.c."""
    path = os.path.join(PROGRAMS, name)
    assert os.access(path, os.X_OK), f"test program {path} is not built"
    return path
