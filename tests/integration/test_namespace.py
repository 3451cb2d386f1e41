"""SPEC section 1, the namespace: directories group queues, queues are made by
open/touch/mknod, other file types are refused, rm/mv keep POSIX semantics,
and ls -l shows the queue's size and times."""
import errno
import os
import stat
import subprocess
import time

from helpers import (MESSAGE_OVERHEAD, PYTHON, SYS_READ, attr, errno_of, finish, iattr, program, put,
                     read_sizes, statfs, take, wait_blocked, wait_until)

OTHER_UID, OTHER_GID = 4321, 8765


def as_other_user(mount, command, umask):
    """Runs `command` with bash in the mount point as uid OTHER_UID, gid OTHER_GID."""
    result = subprocess.run(["bash", "-c", command], cwd=mount.path, capture_output=True, text=True, timeout=10,
                            user=OTHER_UID, group=OTHER_GID, extra_groups=[], umask=umask)
    assert result.returncode == 0, f"{command} as uid {OTHER_UID}: {result.stderr}"
    return result


# -- directories ------------------------------------------------------------

def test_mkdir_p_makes_nested_directories_that_hold_queues(mq):
    mq.sh("mkdir -p images/input images/output && echo job > images/input/q")
    assert os.path.isdir(mq / "images/input") and os.path.isdir(mq / "images/output")
    assert sorted(os.listdir(mq / "images")) == ["input", "output"]
    assert stat.S_ISREG(os.stat(mq / "images/input/q").st_mode)
    assert mq.sh("ls images/input").stdout == "q\n"
    assert mq.sh("cat images/input/q").stdout == "job\n"
    # mkdir -p of what exists is fine; mkdir of it is EEXIST.
    mq.sh("mkdir -p images/input")
    assert errno_of(os.mkdir, mq / "images/input") == errno.EEXIST


def test_rmdir_of_a_non_empty_directory_fails_with_enotempty(mq):
    mq.sh("mkdir -p a/b && touch a/b/q")
    assert errno_of(os.rmdir, mq / "a/b") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, mq / "a") == errno.ENOTEMPTY
    result = mq.sh("rmdir a/b", check=False)
    assert result.returncode != 0 and "Directory not empty" in result.stderr
    assert os.path.exists(mq / "a/b/q")  # nothing was removed
    mq.sh("rm a/b/q && rmdir a/b && rmdir a")
    assert os.listdir(mq.path) == []


# -- making queues -----------------------------------------------------------

def test_touch_mknod_and_open_creat_make_queues_with_callers_owner_and_mode(mount_mqfs):
    m = mount_mqfs("allow_other")
    os.chmod(m.path, 0o1777)
    # touch asks for 0666; umask 022 leaves 0644.
    as_other_user(m, "touch touched", umask=0o022)
    # mknod(2) of a regular file asks for 0666 here; umask 027 leaves 0640.
    as_other_user(m, f"exec {PYTHON} -c 'import os, stat; os.mknod(\"mknodded\", stat.S_IFREG | 0o666)'",
                  umask=0o027)
    # open(O_CREAT, 0660) with umask 002 stays 0660; with umask 077, 0600.
    create = "import os, sys; os.close(os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o660))"
    as_other_user(m, f"exec {PYTHON} -c '{create}' created", umask=0o002)
    as_other_user(m, f"exec {PYTHON} -c '{create}' private", umask=0o077)
    as_other_user(m, "mkdir dir", umask=0o022)
    expected = {"touched": 0o644, "mknodded": 0o640, "created": 0o660, "private": 0o600}
    for name, mode in expected.items():
        st = os.stat(m / name)
        assert stat.S_ISREG(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == mode, f"{name}: {oct(st.st_mode)}"
        assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_GID), name
        assert attr(m / name, "curmsgs") == "0"  # a queue, empty
    st = os.stat(m / "dir")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_GID)
    # The caller's own queue works for the caller.
    as_other_user(m, "echo mine > touched && cat touched", umask=0o022)


def test_queues_made_by_root_belong_to_root(mq):
    mq.sh("umask 022; touch q")
    st = os.stat(mq / "q")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.getuid(), os.getgid(), 0o644)


def test_creating_an_existing_queue_keeps_it_and_its_messages(mq):
    mq.sh("echo kept > q; touch q")
    assert errno_of(os.open, mq / "q", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    assert errno_of(os.mknod, mq / "q", stat.S_IFREG | 0o644) == errno.EEXIST
    assert mq.sh("cat q").stdout == "kept\n"


def test_hard_links_symlinks_fifos_and_device_nodes_are_refused_with_eperm(mq):
    mq.sh("echo x > q")
    assert errno_of(os.link, mq / "q", mq / "hard") == errno.EPERM
    assert errno_of(os.symlink, "q", mq / "soft") == errno.EPERM
    assert errno_of(os.mkfifo, mq / "fifo") == errno.EPERM
    assert errno_of(os.mknod, mq / "char", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == errno.EPERM
    assert errno_of(os.mknod, mq / "block", stat.S_IFBLK | 0o600, os.makedev(7, 0)) == errno.EPERM
    assert errno_of(os.mknod, mq / "fifo2", stat.S_IFIFO | 0o600) == errno.EPERM
    # The shell commands users type say the same.
    for command in ("ln q hard", "ln -s q soft", "mkfifo fifo", "mknod char c 1 3"):
        result = mq.sh(command, check=False)
        assert result.returncode != 0 and "Operation not permitted" in result.stderr, command
    assert sorted(os.listdir(mq.path)) == ["q"]  # nothing was made
    assert attr(mq / "q", "curmsgs") == "1"


# -- rm while open -------------------------------------------------------------

def test_rm_removes_the_name_at_once_but_open_readers_and_writers_keep_the_queue(mq):
    q = mq / "q"
    before = statfs(mq.path)  # nothing in use
    mq.sh("touch q && setfattr -n user.mq.read_mode -v stream q")
    reader = os.open(q, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(q, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, b"A" * 8192)
        os.write(writer, b"B" * 8192)
        os.unlink(q)
        assert not os.path.exists(q) and os.listdir(mq.path) == []
        assert mq.sh("ls").stdout == ""
        # A new queue of the same name is another queue.
        mq.sh("touch q")
        assert attr(q, "curmsgs") == "0"
        os.unlink(q)
        # The old one still works for both of them.
        assert os.write(writer, b"C" * 8192) == 8192
        assert os.fstat(reader).st_size == 3 * 8192
        assert [os.read(reader, 65536) for _ in range(3)] == [b"A" * 8192, b"B" * 8192, b"C" * 8192]
        assert errno_of(os.read, reader, 65536) == errno.EAGAIN
        os.write(writer, b"D" * 8192)
        os.write(writer, b"E" * 8192)
        os.close(writer)
        writer = None
        assert os.read(reader, 65536) == b"D" * 8192
        # Its message (8 KiB and its bookkeeping) and its node still count
        # while the reader has it open...
        assert before["bfree"] - statfs(mq.path)["bfree"] == 8192 + MESSAGE_OVERHEAD
        wait_until(lambda: before["ffree"] - statfs(mq.path)["ffree"] == 1,
                   what="only the removed, still open queue to count as a node")
        assert before["bfree"] - statfs(mq.path)["bfree"] == 8192 + MESSAGE_OVERHEAD
    finally:
        if writer is not None:
            os.close(writer)
        os.close(reader)
    # ...and are freed with it at the last close.
    wait_until(lambda: statfs(mq.path)["bfree"] == before["bfree"], what="the removed queue's bytes to be freed")
    wait_until(lambda: statfs(mq.path)["ffree"] == before["ffree"], what="the removed queue's node to be freed")


def test_rm_of_a_queue_with_a_blocked_reader_leaves_the_reader_served_by_open_writers(mq, procs):
    mq.sh("touch q")
    writer = os.open(mq / "q", os.O_WRONLY)
    try:
        reader = procs.start([program("read_sizes"), mq / "q", "100"], text=True)
        wait_blocked(reader, SYS_READ, "the reader of the empty queue")
        os.unlink(mq / "q")
        os.write(writer, b"after rm")
        assert finish(reader)[:2] == (0, "8:" + b"after rm".hex() + "\n")
    finally:
        os.close(writer)


# -- mv ------------------------------------------------------------------------

def test_mv_renames_a_queue_with_its_messages(mq):
    mq.sh("echo one > a; echo two > a; mkdir d")
    ino = os.stat(mq / "a").st_ino
    mq.sh("mv a b")
    assert not os.path.exists(mq / "a")
    assert os.stat(mq / "b").st_ino == ino
    assert (attr(mq / "b", "curmsgs"), attr(mq / "b", "sent")) == ("2", "2")
    mq.sh("mv b d/c")
    assert sorted(os.listdir(mq.path)) == ["d"] and os.listdir(mq / "d") == ["c"]
    assert mq.sh("cat d/c; cat d/c").stdout == "one\ntwo\n"


def test_mv_keeps_settings_and_open_files_of_the_queue(mq):
    mq.sh("touch a && setfattr -n user.mq.maxmsg -v 3 a")
    fd = os.open(mq / "a", os.O_WRONLY | os.O_NONBLOCK)
    try:
        mq.sh("mv a b")
        os.write(fd, b"through the old open file")
    finally:
        os.close(fd)
    assert attr(mq / "b", "maxmsg") == "3"
    assert mq.sh("cat b").stdout == "through the old open file"


def test_mv_over_an_existing_queue_replaces_it(mq):
    mq.sh("echo new > a; echo old1 > b; echo old2 > b; echo old3 > b")
    used_before = statfs(mq.path)["ffree"]
    ino = os.stat(mq / "a").st_ino
    mq.sh("mv a b")
    assert os.listdir(mq.path) == ["b"]
    assert os.stat(mq / "b").st_ino == ino
    assert (attr(mq / "b", "curmsgs"), attr(mq / "b", "curbytes")) == ("1", "4")
    assert mq.sh("cat b").stdout == "new\n"
    # The replaced queue and its messages are gone.
    wait_until(lambda: statfs(mq.path)["ffree"] == used_before + 1, what="the replaced queue to be freed")
    assert errno_of(take, mq / "b") == errno.EAGAIN


def test_mv_between_directories_and_of_directories(mq):
    mq.sh("mkdir -p x/y z && echo m > x/y/q && mv x/y z/ && mv z/y/q z/q2")
    assert os.listdir(mq / "x") == [] and sorted(os.listdir(mq / "z")) == ["q2", "y"]
    assert mq.sh("cat z/q2").stdout == "m\n"
    # A directory cannot move into itself; a queue cannot replace a directory.
    assert errno_of(os.rename, mq / "z", mq / "z/y/inside") == errno.EINVAL
    assert errno_of(os.rename, mq / "z/q2", mq / "z/y") == errno.EISDIR
    assert sorted(os.listdir(mq / "z")) == ["q2", "y"]


# -- ls -------------------------------------------------------------------------

def test_ls_lists_queues_and_directories(mq):
    mq.sh("mkdir dir && touch q1 q2 dir/inner")
    assert mq.sh("ls").stdout.split() == ["dir", "q1", "q2"]
    long = mq.sh("ls -l").stdout.splitlines()
    kinds = {line.split()[-1]: line[0] for line in long if not line.startswith("total")}
    assert kinds == {"dir": "d", "q1": "-", "q2": "-"}


def test_ls_l_size_is_the_bytes_queued_now(mq):
    mq.sh("touch q")
    size = lambda: int(mq.sh("ls -l q").stdout.split()[4])
    assert size() == 0
    mq.sh("echo hello > q; echo hi > q")
    assert size() == 9 and os.stat(mq / "q").st_size == 9
    assert mq.sh("cat q").stdout == "hello\n"
    assert size() == 3
    # Parts held by an open file are delivered: they no longer count.
    put(mq / "q", b"0123456789")
    assert read_sizes(mq / "q", 2) == [b"hi"]
    assert size() == 10
    mq.sh("truncate -s 0 q")
    assert size() == 0


def test_ls_l_times_mtime_is_last_enqueue_atime_last_dequeue_ctime_last_attribute_change(mq):
    q = mq / "q"
    mq.sh("touch q")
    past = 946684800 * 10**9  # 2000-01-01
    os.utime(q, ns=(past, past))
    st = os.stat(q)
    assert (st.st_atime_ns, st.st_mtime_ns) == (past, past)
    changed = st.st_ctime_ns

    before = time.time_ns()
    put(q, b"message")
    st = os.stat(q)
    assert st.st_mtime_ns >= before, "mtime is the time of the last enqueue"
    assert st.st_atime_ns == past, "an enqueue is no dequeue"
    assert st.st_ctime_ns == changed, "an enqueue is no attribute change"
    enqueued = st.st_mtime_ns

    before = time.time_ns()
    assert take(q) == b"message"
    st = os.stat(q)
    assert st.st_atime_ns >= before, "atime is the time of the last dequeue"
    assert st.st_mtime_ns == enqueued
    assert st.st_ctime_ns == changed

    # A failed write or read changes no time.
    assert errno_of(put, q, b"x" * 8193) == errno.EMSGSIZE
    assert errno_of(take, q) == errno.EAGAIN
    assert os.stat(q).st_mtime_ns == enqueued and os.stat(q).st_ctime_ns == changed

    before = time.time_ns()
    os.setxattr(q, "user.mq.maxmsg", b"5")
    st2 = os.stat(q)
    assert st2.st_ctime_ns >= before, "ctime is the time of the last attribute change"
    assert (st2.st_atime_ns, st2.st_mtime_ns) == (st.st_atime_ns, st.st_mtime_ns)

    before = time.time_ns()
    os.chmod(q, 0o600)
    assert os.stat(q).st_ctime_ns >= before
    # ls -l shows the mtime.
    shown = mq.sh("ls -l --time-style=+%s q").stdout.split()[5]
    assert int(shown) == enqueued // 10**9


def test_ls_l_mtime_moves_with_each_enqueue(mq):
    q = mq / "q"
    mq.sh("touch q")
    put(q, b"1")
    first = os.stat(q).st_mtime_ns
    put(q, b"2")
    assert os.stat(q).st_mtime_ns > first
    assert iattr(q, "curmsgs") == 2
