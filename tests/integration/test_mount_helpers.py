"""mount -t fuse.mqfs, /etc/fstab and the systemd unit (SPEC section 8)."""
import contextlib
import os
import shutil
import subprocess
import tempfile

import pytest

from helpers import MQFS, is_mounted, mounts_at, wait_until

HELPERS = os.path.join(os.path.dirname(__file__), "../../mount-helpers")
INSTALLED = "/usr/local/bin/mqfs"


@contextlib.contextmanager
def installed_daemon():
    """Puts the daemon under test where mount.fuse3's shell finds it, and
    restores whatever was there before."""
    backup = None
    if os.path.lexists(INSTALLED):
        backup = INSTALLED + ".before-test"
        os.replace(INSTALLED, backup)
    shutil.copy2(MQFS, INSTALLED)
    try:
        yield
    finally:
        os.unlink(INSTALLED)
        if backup:
            os.replace(backup, INSTALLED)


@contextlib.contextmanager
def mount_point():
    path = tempfile.mkdtemp(prefix="mqfs-mount-")
    try:
        yield path
    finally:
        if is_mounted(path):
            subprocess.run(["umount", "-l", path], timeout=10)
        os.rmdir(path)


def run(*args, timeout=20):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def daemon_ends(path):
    """After umount, no mqfs daemon serves `path` any more."""
    def gone():
        ps = run("ps", "-eo", "args")
        return not any(path in line and "mqfs" in line for line in ps.stdout.splitlines())
    wait_until(gone, timeout=10, what="the daemon to exit after umount")


def check_serves(path, maxmsg):
    queue = os.path.join(path, "q")
    with open(queue, "w") as f:
        f.write("hello\n")
    assert os.getxattr(queue, "user.mq.maxmsg") == str(maxmsg).encode()
    with open(queue) as f:
        assert f.read() == "hello\n"


def test_mount_t_fuse_mqfs_mounts_with_options_and_umount_ends_it():
    with installed_daemon(), mount_point() as path:
        result = run("mount", "-t", "fuse.mqfs", "mqfs", path, "-o", "maxmsg=100,allow_other")
        assert result.returncode == 0, result.stderr
        assert is_mounted(path)
        with open("/proc/self/mounts") as f:
            assert any(f"{path} fuse.mqfs" in line for line in f)
        check_serves(path, 100)
        assert run("umount", path).returncode == 0
        assert not is_mounted(path)
        daemon_ends(path)


def test_fstab_line_mounts_with_mount_point_alone():
    with installed_daemon(), mount_point() as path:
        line = f"mqfs {path} fuse.mqfs maxmsg=42,nofail 0 0\n"
        with open("/etc/fstab") as f:
            original = f.read()
        try:
            with open("/etc/fstab", "a") as f:
                f.write(line)
            result = run("mount", path)
            assert result.returncode == 0, result.stderr
            check_serves(path, 42)
            assert run("umount", path).returncode == 0
            daemon_ends(path)
        finally:
            with open("/etc/fstab", "w") as f:
                f.write(original)


def test_a_bad_option_in_mount_fails_with_one_line():
    with installed_daemon(), mount_point() as path:
        result = run("mount", "-t", "fuse.mqfs", "mqfs", path, "-o", "maxmsg=zero")
        assert result.returncode != 0
        assert "maxmsg=zero" in result.stderr
        assert not is_mounted(path)


def test_mount_t_fuse_mqfs_on_a_live_mount_is_refused_with_one_line():
    with installed_daemon(), mount_point() as path:
        first = run("mount", "-t", "fuse.mqfs", "mqfs", path, "-o", "maxmsg=100")
        assert first.returncode == 0, first.stderr
        try:
            second = run("mount", "-t", "fuse.mqfs", "mqfs", path, "-o", "maxmsg=5")
            count = mounts_at(path)
            assert second.returncode != 0
            lines = second.stderr.splitlines()
            assert len(lines) == 1 and "already a mount" in lines[0], second.stderr
            assert count == 1
            check_serves(path, 100)  # the first mount, untouched
            # The same through fstab: `mount MOUNTPOINT` again.
            with open("/etc/fstab") as f:
                original = f.read()
            try:
                with open("/etc/fstab", "a") as f:
                    f.write(f"mqfs {path} fuse.mqfs maxmsg=5,nofail 0 0\n")
                again = run("mount", path)
                assert again.returncode != 0 and mounts_at(path) == 1, again.stderr
                assert len(again.stderr.splitlines()) == 1 and "already a mount" in again.stderr, again.stderr
            finally:
                with open("/etc/fstab", "w") as f:
                    f.write(original)
            check_serves(path, 100)
        finally:
            while mounts_at(path) > 1:
                run("umount", "-l", path)
        assert run("umount", path).returncode == 0
        daemon_ends(path)


def test_systemd_unit_is_valid():
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is needed to check the unit (package systemd)")
    with tempfile.TemporaryDirectory() as d:
        unit = shutil.copy(os.path.join(HELPERS, "mnt-mq.mount"), d)
        result = run("systemd-analyze", "verify", "--man=no", unit)
        assert result.returncode == 0, result.stdout + result.stderr
        # The check can fail: a unit whose name does not match its mount point.
        wrong = os.path.join(d, "mnt-other.mount")
        os.rename(unit, wrong)
        assert run("systemd-analyze", "verify", "--man=no", wrong).returncode != 0
