"""Several users on one mount (SPEC section 8): with allow_other and
default_permissions, modes and owners decide who may send and receive."""
import contextlib
import os
import subprocess
import tempfile

import pytest

from helpers import MQFS, is_mounted, wait_until

NOBODY = 65534


def as_nobody(command, cwd, timeout=10):
    """Runs a shell command as the unprivileged user nobody."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c", command],
        cwd=cwd, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def shared_mount(mount_mqfs):
    m = mount_mqfs("allow_other")
    # The test's temporary directory must be reachable by nobody.
    os.chmod(os.path.dirname(m.path), 0o755)
    yield m


def test_modes_decide_who_sends_and_receives(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("echo secret > q && chmod 600 q")
        denied_write = as_nobody("echo x > q", m.path)
        assert denied_write.returncode != 0 and "Permission denied" in denied_write.stderr
        denied_read = as_nobody("timeout 5 cat q", m.path)
        assert denied_read.returncode != 0 and "Permission denied" in denied_read.stderr
        assert m.getattr("q", "curmsgs") == "1"  # nothing sent, nothing taken

        m.sh("chmod 622 q")  # others may send, not receive
        assert as_nobody("echo from-nobody > q", m.path).returncode == 0
        assert as_nobody("timeout 5 cat q", m.path).returncode != 0
        assert m.getattr("q", "curmsgs") == "2"

        m.sh("chmod 644 q")  # others may receive, not send
        assert as_nobody("timeout 5 cat q", m.path).stdout == "secret\n"
        assert as_nobody("echo y > q", m.path).returncode != 0


def test_queues_belong_to_their_creator_and_chown_works(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("mkdir shared && chmod 1777 shared")
        assert as_nobody("umask 077; echo mine > shared/q", m.path).returncode == 0
        st = os.stat(m / "shared/q")
        assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o600)
        # Root cannot be kept out, but other users can: the creator's mode rules.
        assert as_nobody("timeout 5 cat shared/q", m.path).stdout == "mine\n"

        m.sh("echo r > shared/rootq && chmod 600 shared/rootq")
        assert as_nobody("echo x > shared/rootq", m.path).returncode != 0
        m.sh("chown nobody shared/rootq")
        assert os.stat(m / "shared/rootq").st_uid == NOBODY
        assert as_nobody("echo x > shared/rootq", m.path).returncode == 0
        # Only root may give a queue away.
        assert as_nobody("chown root shared/rootq", m.path).returncode != 0


def test_attributes_follow_the_file_mode(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("touch q && chmod 644 q")
        denied = as_nobody("setfattr -n user.mq.maxmsg -v 5 q", m.path)
        assert denied.returncode != 0
        assert m.getattr("q", "maxmsg") == "10"
        assert as_nobody("getfattr -n user.mq.maxmsg q", m.path).returncode == 0


# -- purging takes messages: read permission as well as write (SPEC section 2) ------------------

def as_nobody_python(script, cwd, groups=None, timeout=10):
    """Runs a Python script as nobody; its stdout is the result."""
    ids = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", *ids, "/usr/bin/python3", "-c", script],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_truncate_needs_read_permission_as_well_as_write(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("echo a > q && echo b > q && chmod 622 q")  # others may send, not receive
        denied = as_nobody("truncate -s 0 q", m.path)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied.stderr
        assert m.getattr("q", "curmsgs") == "2"  # nothing purged
        m.sh("chmod 666 q")
        assert as_nobody("truncate -s 0 q", m.path).returncode == 0
        assert m.getattr("q", "curmsgs") == "0"
        # Root passes, as the kernel lets it read any file.
        m.sh("echo c > q && chmod 200 q && truncate -s 0 q")
        assert m.getattr("q", "curmsgs") == "0"


def test_truncate_read_permission_through_the_group_and_supplementary_groups(mount_mqfs):
    users = 100  # Debian's group "users"
    with shared_mount(mount_mqfs) as m:
        m.sh(f"echo a > q && chgrp {users} q && chmod 062 q")  # the group may receive, others only send
        assert as_nobody("truncate -s 0 q", m.path).returncode != 0
        assert m.getattr("q", "curmsgs") == "1"
        member = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", f"--groups={users}",
                                 "truncate", "-s", "0", "q"], cwd=m.path, capture_output=True, text=True, timeout=10)
        assert member.returncode == 0, member.stderr
        assert m.getattr("q", "curmsgs") == "0"


FTRUNCATE = """
import errno, os, sys
fd = os.open("q", os.O_WRONLY if sys.argv[1] == "wronly" else os.O_RDWR)
os.fchmod(fd, 0o222)  # from now on nobody, the owner, may send but not receive
try:
    os.ftruncate(fd, 0)
    print("purged")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_ftruncate_purges_through_a_descriptor_open_for_reading_or_with_read_permission(mount_mqfs):
    """The kernel checks only that the descriptor is open for writing. A
    purge also takes messages: allowed when the descriptor is open for
    reading (it could take them all anyway) or its caller may read the queue."""
    with shared_mount(mount_mqfs) as m:
        def attempt(access):
            m.sh("touch q && chown nobody q && chmod 666 q && echo a > q && echo b > q")
            result = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c",
                 FTRUNCATE, access], cwd=m.path, capture_output=True, text=True, timeout=10)
            assert result.returncode == 0, result.stderr
            curmsgs = m.getattr("q", "curmsgs")
            m.sh("rm q")
            return result.stdout.strip(), curmsgs

        assert attempt("wronly") == ("EACCES", "2")
        assert attempt("rdwr") == ("purged", "0")
        # With read permission, a write-only descriptor purges too.
        m.sh("touch q && chmod 666 q && echo a > q")
        fd = os.open(m / "q", os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        assert m.getattr("q", "curmsgs") == "0"


# -- a write clears set-user-ID and set-group-ID (SPEC section 1) -------------------------------

def mode_of(path):
    return os.stat(path).st_mode & 0o7777


@pytest.mark.parametrize("before,after", [(0o4777, 0o777), (0o2777, 0o777), (0o6777, 0o777), (0o6767, 0o2767)],
                         ids=["setuid", "setgid", "both", "setgid-without-group-execute"])
def test_a_write_by_another_user_clears_the_set_id_bits(mount_mqfs, before, after):
    """pjdfstest chmod/12.t; set-group-ID without group-execute is not a
    privilege (it marks mandatory locking) and stays, as in Linux."""
    with shared_mount(mount_mqfs) as m:
        m.sh(f"touch q && chmod {before:o} q")
        written = as_nobody_python("import os\nfd = os.open('q', os.O_RDWR)\nos.write(fd, b'x')\n"
                                   "print(oct(os.fstat(fd).st_mode & 0o7777))", m.path)
        assert written.returncode == 0, written.stderr
        assert written.stdout.strip() == oct(after)
        assert mode_of(m / "q") == after
        assert m.getattr("q", "curmsgs") == "1"


def test_root_keeps_the_set_id_bits_and_the_owner_does_not(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("touch q && chmod 6777 q && echo by-root > q")
        assert mode_of(m / "q") == 0o6777
        m.sh("chown nobody q && chmod 6777 q")
        # As on ext4: only the privilege to keep them (CAP_FSETID) counts, not ownership.
        assert as_nobody("echo by-owner > q", m.path).returncode == 0
        assert mode_of(m / "q") == 0o777


def test_a_write_that_waits_for_room_clears_the_set_id_bits_at_once(mount_mqfs):
    with shared_mount(mount_mqfs) as m:
        m.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo first > q && chmod 6777 q")
        writer = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                   "bash", "-c", "echo second > q"], cwd=m.path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: mode_of(m / "q") == 0o777, what="the waiting write to clear the set-ID bits")
            assert writer.poll() is None  # still waiting for room
            assert m.sh("cat q").stdout == "first\n"
            writer.communicate(timeout=10)
            assert writer.returncode == 0
            assert m.sh("cat q").stdout == "second\n"
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.communicate(timeout=10)


@pytest.mark.parametrize("command,after", [("truncate -s 0 q", 0o777), ("chown nobody q", 0o777)],
                         ids=["truncate", "chown"])
def test_truncate_and_chown_clear_the_set_id_bits(mount_mqfs, command, after):
    """The kernel asks for it in the setattr it sends."""
    with shared_mount(mount_mqfs) as m:
        m.sh("echo a > q && chmod 6777 q")
        result = as_nobody(command, m.path) if command.startswith("truncate") else m.sh(command)
        assert result.returncode == 0, result.stderr
        assert mode_of(m / "q") == after


def test_without_allow_other_other_users_are_kept_out(mount_mqfs):
    m = mount_mqfs()
    os.chmod(os.path.dirname(m.path), 0o755)
    m.sh("echo x > q && chmod 666 q")
    result = as_nobody("ls", m.path)
    assert result.returncode != 0 and "Permission denied" in result.stderr


@contextlib.contextmanager
def fuse_device_open_to_users():
    """A standard Debian system has /dev/fuse mode 0666 (udev); some
    containers keep it 0600. Open it for the test and restore the mode."""
    mode = os.stat("/dev/fuse").st_mode & 0o777
    os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


def test_a_user_mounts_through_fusermount3_and_unmounts():
    with fuse_device_open_to_users(), tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        path = os.path.join(d, "mnt")
        os.mkdir(path)
        os.chown(path, NOBODY, NOBODY)
        log = open(os.path.join(d, "log"), "w")
        daemon = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", MQFS, "-f", path],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: is_mounted(path) or daemon.poll() is not None, what="the user's mount")
            assert daemon.poll() is None, open(os.path.join(d, "log")).read()
            # Without allow_other even root is kept out: act as the user.
            assert as_nobody(f"echo hi > {path}/q && cat {path}/q", d).stdout == "hi\n"
            assert as_nobody(f"stat -c %u {path}/q", d).stdout == f"{NOBODY}\n"
            assert subprocess.run(["ls", path], capture_output=True, timeout=10).returncode != 0
            result = as_nobody(f"fusermount3 -u {path}", d)
            assert result.returncode == 0, result.stderr
            assert daemon.wait(timeout=10) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)
            if is_mounted(path):
                subprocess.run(["umount", "-l", path], timeout=10)
            log.close()
