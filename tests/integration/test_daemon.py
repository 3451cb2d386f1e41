"""SPEC section 8, the daemon: command line, --help and --version, one clear
line for startup errors, logging, and clean shutdown by SIGTERM, SIGINT and
umount, in the foreground and daemonized."""
import contextlib
import errno
import os
import re
import signal
import subprocess
import tempfile

import pytest

from helpers import (EPOLL_SYSCALLS, MQFS, SYS_READ, SYS_WRITE, errno_of, finish, is_mounted, mounts_at, program,
                     read_sizes, run_mqfs, task_state, wait_blocked, wait_stale, wait_until)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="mqfs-daemon-cli-")
    mnt = os.path.join(path, "mnt")
    os.mkdir(mnt)
    yield path
    if is_mounted(mnt):
        subprocess.run(["umount", "-l", mnt], timeout=10)
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            full = os.path.join(path, name)
            os.rmdir(full) if os.path.isdir(full) else os.unlink(full)
        os.rmdir(path)


# -- --help and --version -------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_every_mqfs_option_and_exits_0(flag):
    result = subprocess.run([MQFS, flag], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mqfs ") and "MOUNTPOINT" in result.stdout
    for option in ("priority=", "maxmsg=", "msgsize=", "read_mode=", "recv_timeout_ms=", "send_timeout_ms=",
                   "framing=", "max_queues=", "max_bytes=", "max_open_files=", "max_waiters=", "log_level=",
                   "log_file=", "store=", "sync=", "-f ", "-d", "allow_other", "default_permissions"):
        assert option in result.stdout, option
    assert "-o opt" in result.stdout or "-o OPTIONS" in result.stdout or "-o NAME" in result.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_leaves_out_the_libfuse_thread_options_mqfs_ignores(flag):
    """mqfs runs one event loop of its own: libfuse's thread and fd options
    do nothing, so --help must not offer them."""
    result = subprocess.run([MQFS, flag], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    for ignored in ("clone_fd", "max_idle_threads", "max_threads", "multi-threaded", "-s "):
        assert ignored not in result.stdout, f"--help offers {ignored!r}:\n{result.stdout}"


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_version_and_exits_0(flag):
    result = subprocess.run([MQFS, flag], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"mqfs version \d+\.\d+\.\d+", lines[0]), result.stdout
    assert any(re.fullmatch(r"libfuse version 3\.\d+\.\d+", line) for line in lines[1:]), result.stdout


def test_help_with_a_mount_point_does_not_mount(workdir):
    mnt = os.path.join(workdir, "mnt")
    result = subprocess.run([MQFS, "-f", "--help", mnt], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and "usage:" in result.stdout
    assert not is_mounted(mnt)


# -- startup errors: one clear line, non-zero exit ---------------------------------------------

STARTUP_ERRORS = [
    # (id, arguments after -f, with {mnt} and {file}; a word the line must contain)
    ("no-mount-point", [], "mount point"),
    ("missing-mount-point", ["{mnt}/missing"], "missing"),
    ("not-a-directory", ["{file}"], "not a directory"),
    ("too-many-arguments", ["a", "b", "{mnt}"], "argument"),
    ("maxmsg-zero", ["-o", "maxmsg=0", "{mnt}"], "maxmsg"),
    ("maxmsg-word", ["-o", "maxmsg=many", "{mnt}"], "maxmsg"),
    ("msgsize-too-large", ["-o", "msgsize=2000000", "{mnt}"], "msgsize"),
    ("priority-too-high", ["-o", "priority=32768", "{mnt}"], "priority"),
    ("read-mode-unknown", ["-o", "read_mode=fast", "{mnt}"], "read_mode"),
    ("recv-timeout-negative", ["-o", "recv_timeout_ms=-1", "{mnt}"], "recv_timeout_ms"),
    ("send-timeout-word", ["-o", "send_timeout_ms=later", "{mnt}"], "send_timeout_ms"),
    ("max-queues-zero", ["-o", "max_queues=0", "{mnt}"], "max_queues"),
    ("max-bytes-bad-suffix", ["-o", "max_bytes=12X", "{mnt}"], "max_bytes"),
    ("max-bytes-zero", ["-o", "max_bytes=0", "{mnt}"], "max_bytes"),
    ("max-open-files-zero", ["-o", "max_open_files=0", "{mnt}"], "max_open_files"),
    ("max-waiters-negative", ["-o", "max_waiters=-1", "{mnt}"], "max_waiters"),
    ("msgsize-zero", ["-o", "msgsize=0", "{mnt}"], "msgsize"),
    ("maxmsg-overflow", ["-o", "maxmsg=99999999999999999999", "{mnt}"], "maxmsg"),
    ("priority-negative", ["-o", "priority=-1", "{mnt}"], "priority"),
    ("framing-unknown", ["-o", "framing=json", "{mnt}"], "framing"),
    ("option-without-value", ["-o", "maxmsg", "{mnt}"], "maxmsg"),
    ("empty-value", ["-o", "msgsize=", "{mnt}"], "msgsize"),
    ("log-level-unknown", ["-o", "log_level=loud", "{mnt}"], "log_level"),
    ("store-empty", ["-o", "store=", "{mnt}"], "store"),
    ("sync-without-store", ["-o", "sync=disk", "{mnt}"], "sync"),
    ("sync-unknown", ["-o", "store={file}.store,sync=fast", "{mnt}"], "sync"),
    ("unknown-option", ["-o", "nosuch=1", "{mnt}"], "nosuch"),
    ("unknown-flag", ["--bogus", "{mnt}"], "bogus"),
]


@pytest.mark.parametrize("args,word", [(a, w) for _, a, w in STARTUP_ERRORS], ids=[i for i, _, _ in STARTUP_ERRORS])
def test_startup_error_is_one_clear_line_and_a_non_zero_exit(workdir, args, word):
    mnt = os.path.join(workdir, "mnt")
    regular = os.path.join(workdir, "file")
    open(regular, "w").close()
    args = [a.format(mnt=mnt, file=regular) for a in args]
    status, out, err = run_mqfs(["-f"] + args)
    lines = err.splitlines()
    assert status != 0
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert word in lines[0], lines[0]
    assert out == ""
    assert not is_mounted(mnt)


def test_missing_dev_fuse_is_one_clear_line(workdir):
    mnt = os.path.join(workdir, "mnt")
    # In a private mount namespace, hide /dev/fuse under an empty /dev.
    p = subprocess.run(["unshare", "-m", "bash", "-c", 'mount -t tmpfs tmpfs /dev && exec "$0" -f "$1"', MQFS, mnt],
                       capture_output=True, text=True, timeout=10)
    lines = p.stderr.splitlines()
    assert p.returncode != 0
    assert len(lines) == 1 and "/dev/fuse" in lines[0], p.stderr
    assert not is_mounted(mnt)


# -- a mount point that is already a mount --------------------------------------------------------

@contextlib.contextmanager
def no_stacked_mount(path):
    """Lazily unmounts a second mount that a failing test stacked on `path`."""
    try:
        yield
    finally:
        while mounts_at(path) > 1:
            subprocess.run(["umount", "-l", path], timeout=10)


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemonized"])
def test_mounting_on_a_live_mqfs_is_refused_and_the_first_one_still_serves(daemons, foreground):
    m = daemons()
    m.sh("echo kept > q")
    with no_stacked_mount(m.path):
        status, out, err = run_mqfs((["-f"] if foreground else []) + [m.path])
        count = mounts_at(m.path)
    lines = err.splitlines()
    assert status != 0
    assert len(lines) == 1 and "already a mount" in lines[0] and "fuse.mqfs" in lines[0], err
    assert out == ""
    assert count == 1
    assert m.proc.poll() is None
    assert m.sh("cat q").stdout == "kept\n"
    assert m.stop() == 0


def test_mounting_on_a_tmpfs_mount_is_refused(workdir):
    mnt = os.path.join(workdir, "mnt")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mnt], check=True, timeout=10)
    try:
        with open(os.path.join(mnt, "file"), "w") as f:
            f.write("tmpfs content")
        with no_stacked_mount(mnt):
            status, out, err = run_mqfs(["-f", mnt])
            count = mounts_at(mnt)
        lines = err.splitlines()
        assert status != 0
        assert len(lines) == 1 and "already a mount" in lines[0] and "tmpfs" in lines[0], err
        assert count == 1
        assert os.listdir(mnt) == ["file"]
    finally:
        subprocess.run(["umount", "-l", mnt], timeout=10)


def test_a_dead_fuse_mount_is_refused_with_how_to_clear_it(daemons):
    m = daemons()
    m.proc.kill()  # SIGKILL: the mount stays behind, every access fails with ENOTCONN
    m.proc.wait(timeout=10)
    wait_stale(m.path)
    with no_stacked_mount(m.path):
        status, out, err = run_mqfs(["-f", m.path])
        count = mounts_at(m.path)
    lines = err.splitlines()
    assert status != 0
    assert len(lines) == 1, err
    assert "already a mount" in lines[0] and f"fusermount3 -u {os.path.realpath(m.path)}" in lines[0], lines[0]
    assert count == 1
    # The advice works: then mqfs mounts there again.
    subprocess.run(["fusermount3", "-u", m.path], check=True, timeout=10)
    again = daemons.on(m.path)
    assert again.sh("echo back > q && cat q").stdout == "back\n"
    assert again.stop() == 0


# -- logging -----------------------------------------------------------------------------------

def test_d_logs_every_request(daemons):
    m = daemons(extra_args=("-d",))
    result = m.sh("echo hi > q && cat q", check=False)
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    assert m.proc.poll() is None, f"mqfs -d died ({m.proc.returncode}):\n{m.read_log()[-2000:]}"
    for opcode in ("LOOKUP", "CREATE", "WRITE", "OPEN", "READ", "RELEASE"):
        # RELEASE follows close(2) asynchronously: wait for the line.
        wait_until(lambda: re.search(rf"opcode: {opcode} ", m.read_log()), what=f"a {opcode} request in the -d log")
    assert m.stop() == 0


def test_info_log_by_default_and_log_level_quietens_it(daemons):
    loud = daemons()
    # The line follows the mount, which the fixture waited for.
    wait_until(lambda: "mounted at" in loud.read_log(), what="'mounted at' in the log")
    quiet = daemons("log_level=warn")
    quiet.sh("echo x > q && cat q")
    assert quiet.stop() == 0
    assert open(quiet.log_path).read() == ""
    assert loud.stop() == 0
    assert "unmounted" in open(loud.log_path).read()


def test_log_level_debug_through_the_option(daemons):
    m = daemons("log_level=debug")
    m.sh("touch q")
    assert m.stop() == 0
    assert "mounted at" in open(m.log_path).read()


@pytest.mark.parametrize("sync", ["os", "disk"])
def test_store_and_sync_are_accepted(daemons, tmp_path, sync):
    store = tmp_path / "store"
    m = daemons(f"store={store}", f"sync={sync}")
    m.sh("echo x > q && cat q")
    assert m.stop() == 0
    assert store.is_dir()


# -- shutdown ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_cleanly_and_exits_0(daemons, sig):
    m = daemons()
    m.sh("mkdir d && echo kept > d/q")
    assert m.stop(sig) == 0
    assert not is_mounted(m.path)
    assert "unmounted" in open(m.log_path).read()
    assert os.listdir(m.path) == []  # the plain directory again


@pytest.mark.parametrize("command", [["umount"], ["fusermount3", "-u"]], ids=["umount", "fusermount3-u"])
def test_unmounting_ends_the_daemon(daemons, command):
    m = daemons()
    m.sh("echo x > q")
    subprocess.run(command + [m.path], check=True, timeout=10)
    try:
        status = m.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mqfs still runs 10s after {' '.join(command)}")
    assert status == 0
    assert not is_mounted(m.path)


def test_blocked_reader_and_writer_get_an_error_when_the_daemon_stops(daemons, procs):
    m = daemons()
    m.sh("touch empty full && setfattr -n user.mq.maxmsg -v 1 full && echo 1 > full")
    reader = procs.start([program("read_sizes"), m / "empty", "100"], text=True)
    writer = procs.start([program("write_sizes"), m / "full", "2"], text=True)
    cat = procs.start(["cat", m / "empty"], text=True)
    wait_blocked(reader, SYS_READ, "the reader")
    wait_blocked(writer, SYS_WRITE, "the writer")
    wait_blocked(cat, SYS_READ, "cat")
    assert m.stop(signal.SIGTERM) == 0
    failed = (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO)
    status, out, _ = finish(reader)
    assert status == 0 and out.startswith("E:") and int(out[2:]) in failed, out
    status, out, _ = finish(writer)
    assert status == 0 and out.startswith("E:") and int(out[2:]) in failed, out
    status, out, err = finish(cat)
    assert status != 0 and out == "" and err, err
    assert not is_mounted(m.path)


def daemon_waits_in(m):
    """The system call the daemon's loop thread waits in (None while it runs)."""
    state = task_state(m.proc.pid)
    return state[2] if state and state[0] == "S" else None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("deadline", [False, True], ids=["in-read", "in-epoll"])
def test_the_loop_waits_in_read_until_a_deadline_is_armed_and_a_signal_ends_either_wait(daemons, procs, sig,
                                                                                       deadline):
    """With no deadline armed the daemon blocks in read(2) on /dev/fuse; a
    timed wait (recv_timeout_ms) moves it to epoll_wait, whose timer ends that
    wait, and its end moves it back. A stop signal ends the daemon in either."""
    m = daemons()
    m.sh("touch q && setfattr -n user.mq.recv_timeout_ms -v 60000 q")
    wait_until(lambda: daemon_waits_in(m) == SYS_READ, what="the idle daemon to wait in read(2)")
    cat = procs.start(["cat", m / "q"], text=True)
    wait_blocked(cat, SYS_READ, "cat")
    wait_until(lambda: daemon_waits_in(m) in EPOLL_SYSCALLS, what="the daemon to wait in epoll_wait")
    if deadline:
        assert m.stop(sig) == 0
        assert finish(cat)[0] != 0
    else:
        m.sh("echo x > q")
        assert finish(cat)[:2] == (0, "x\n")
        wait_until(lambda: daemon_waits_in(m) == SYS_READ, what="the daemon to wait in read(2) again")
        assert m.stop(sig) == 0
    assert not is_mounted(m.path)
    assert "unmounted" in open(m.log_path).read()


# -- the command line forms ----------------------------------------------------------------------

def test_source_before_the_mount_point_is_accepted_and_ignored(workdir, procs):
    mnt = os.path.join(workdir, "mnt")
    daemon = procs.start([MQFS, "-f", "mqfs", mnt, "-o", "maxmsg=7"], text=True)
    wait_until(lambda: is_mounted(mnt) or daemon.poll() is not None, what="the mount")
    assert daemon.poll() is None, daemon.communicate(timeout=10)
    subprocess.run(["bash", "-c", "echo via-source-form > q"], cwd=mnt, check=True, timeout=10)
    assert os.getxattr(os.path.join(mnt, "q"), "user.mq.maxmsg") == b"7"
    assert read_sizes(os.path.join(mnt, "q"), 100) == [b"via-source-form\n"]
    daemon.send_signal(signal.SIGTERM)
    assert finish(daemon)[0] == 0
    assert not is_mounted(mnt)


def _daemon_pid(log_path):
    with open(log_path) as f:
        found = re.search(r"mqfs\[(\d+)\]", f.read())
    return int(found.group(1)) if found else None


def _ended(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _cleanup_daemonized(mnt, pid):
    if is_mounted(mnt):
        subprocess.run(["umount", "-l", mnt], timeout=10)
    if pid and not _ended(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_without_f_it_daemonizes_serves_and_ends_on_umount(workdir):
    mnt, log = os.path.join(workdir, "mnt"), os.path.join(workdir, "mqfs.log")
    pid = None
    try:
        # The command returns once mounted; the daemon lives on without its parent.
        result = subprocess.run([MQFS, "-o", f"log_file={log}", mnt], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mnt)
        wait_until(lambda: _daemon_pid(log), what="the daemon's pid in its log file")
        pid = _daemon_pid(log)
        assert not _ended(pid)
        assert "mounted at" in open(log).read()

        work = subprocess.run(["bash", "-c", "mkdir d && echo daemonized > d/q && cat d/q"], cwd=mnt,
                              capture_output=True, text=True, timeout=10)
        assert (work.returncode, work.stdout) == (0, "daemonized\n"), \
            f"{work.stderr}daemon {'ended' if _ended(pid) else 'alive'}; log:\n{open(log).read()}"
        assert not _ended(pid)

        subprocess.run(["umount", mnt], check=True, timeout=10)
        wait_until(lambda: _ended(pid), what="the daemon to end after umount")
        assert not is_mounted(mnt)
        assert "unmounted" in open(log).read()
    finally:
        _cleanup_daemonized(mnt, pid)


def test_mount_fuse3_helper_form_mounts_with_options(workdir):
    """mount(8) and fstab go through mount.fuse3, which runs `mqfs SOURCE MOUNTPOINT -o OPTIONS`
    found in PATH and daemonized."""
    mnt, log = os.path.join(workdir, "mnt"), os.path.join(workdir, "mqfs.log")
    assert os.path.basename(MQFS) == "mqfs"
    env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(MQFS)) + ":" + os.environ["PATH"])
    pid = None
    try:
        result = subprocess.run(["mount.fuse3", "mqfs", mnt, "-t", "mqfs", "-o", f"max_queues=77,log_file={log}"],
                                capture_output=True, text=True, timeout=10, env=env)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mnt)
        wait_until(lambda: _daemon_pid(log), what="the daemon's pid in its log file")
        pid = _daemon_pid(log)
        with open("/proc/self/mountinfo") as f:
            entry = next(line for line in f if line.split()[4] == os.path.realpath(mnt))
        assert " - fuse.mqfs " in entry
        assert os.statvfs(mnt).f_files == 77
        subprocess.run(["umount", mnt], check=True, timeout=10)
        wait_until(lambda: _ended(pid), what="the daemon to end after umount")
    finally:
        _cleanup_daemonized(mnt, pid)
