"""The bad-input catalogue: for every operation SPEC.md describes, the invalid
arguments people and programs really send.

Each case runs against the same mount state (directories, queues with
messages and settings, a removed queue still open) and asserts three things:
the errno, that nothing changed (every node's type, mode, owner, size and
times, every attribute, and at the end every queued message, read back), and
that the daemon still serves. docs/bad-input.md lists the cases with their
errnos and reasons.

Cases are plain functions of the mount; shell cases run the tools people
type and check the message they print. Nothing here can block: descriptors
are non-blocking and shell commands have timeouts.
"""
import ctypes
import errno
import fcntl
import mmap
import os
import signal
import socket
import stat
import struct
import subprocess

import pytest

from helpers import MAX_MSGSIZE, PYTHON, errno_of, take

LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("M") << 8) | nr


MQFS_IOC_SET_PRIORITY = _ioc(1, 1, 4)
MQFS_IOC_SET_READ_MODE = _ioc(1, 2, 4)
MQFS_IOC_GET_ATTR = _ioc(2, 3, 128)
MQFS_IOC_SET_TYPE = _ioc(1, 8, 8)
MQFS_IOC_SET_SELECT = _ioc(1, 9, 16)

# The messages the state holds, in the order reads hand them out.
Q_MESSAGES = [b"two\n", b"one\n"]
INNER_MESSAGES = [b"inner\n"]


@pytest.fixture
def world(mq):
    """A mount with state worth keeping:

    q          two messages at priorities 5 and 0, maxmsg 5
    d/         a directory holding d/inner (one message) and d/e/
    empty/     an empty directory
    big        msgsize at the largest, 1044480
    lines      line framing, msgsize 16
    frames     u32 framing, holding one frame of 8 bytes
    removed    unlinked while the fixture keeps it open (mq.removed_fd)
    """
    mq.sh("mkdir -p d/e empty && touch q big lines frames removed"
          " && setfattr -n user.mq.maxmsg -v 5 q"
          " && echo one > q && setfattr -n user.mq.priority -v 5 q && echo two > q"
          " && setfattr -x user.mq.priority q && echo inner > d/inner"
          f" && setfattr -n user.mq.msgsize -v {MAX_MSGSIZE} big"
          " && setfattr -n user.mq.framing -v line lines && setfattr -n user.mq.msgsize -v 16 lines"
          " && setfattr -n user.mq.framing -v u32 frames")
    assert os.write(_fd(mq, "frames", os.O_WRONLY), struct.pack("<I", 8) + b"12345678") == 12
    mq.removed_fd = os.open(mq / "removed", os.O_RDWR | os.O_NONBLOCK)
    os.write(mq.removed_fd, b"kept\n")
    os.unlink(mq / "removed")
    yield mq
    while _opened:
        os.close(_opened.pop())
    os.close(mq.removed_fd)


_opened = []


def _fd(m, name, flags):
    """A non-blocking descriptor, closed after the case."""
    fd = os.open(m / name, flags | os.O_NONBLOCK)
    _opened.append(fd)
    return fd


def snapshot(m):
    """Everything observable without taking a message: each node's type, mode,
    owner, size and times and each queue's attributes, plus the removed queue
    through its descriptor. The age of the oldest message grows by itself."""
    def attributes(of):
        return {n: os.getxattr(of, n) for n in os.listxattr(of) if n != "user.mq.oldest_ms"}

    state = {}
    for root, dirs, files in os.walk(m.path):
        for name in [""] + dirs + files if root == m.path else dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            entry = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_nlink,
                     st.st_mtime_ns, st.st_ctime_ns, st.st_atime_ns)
            attrs = attributes(path)
            state[os.path.relpath(path, m.path)] = (entry, attrs)
    fd = m.removed_fd
    st = os.fstat(fd)
    state["<removed>"] = ((st.st_size, st.st_mtime_ns, st.st_ctime_ns),
                          attributes(fd))
    return state


def drain_now(path, size=1 << 20):
    """Takes every message queued now, one open file each, without waiting."""
    got = []
    while True:
        try:
            got.append(take(path, size))
        except BlockingIOError:
            return got


def sh(m, command):
    """Runs `command`, which must fail; returns its stderr."""
    try:
        result = subprocess.run(["bash", "-c", command], cwd=m.path, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out: {command}")
    assert result.returncode != 0, f"{command} succeeded"
    return result.stderr


def c_errno(result):
    """The errno of a libc call made through ctypes that returned -1."""
    assert result == -1, f"expected the call to fail, it returned {result}"
    return ctypes.get_errno()


def renameat2(m, old, new, flags):
    return c_errno(LIBC.renameat2(AT_FDCWD, (m / old).encode(), AT_FDCWD, (m / new).encode(), flags))


def ioctl_raw(fd, request, arg):
    return c_errno(LIBC.ioctl(fd, ctypes.c_ulong(request), arg))


def mmap_private_in_child(m, name):
    """Maps `name` privately in a child and touches the mapping: the child's status."""
    code = ("import mmap, os, sys\n"
            f"fd = os.open({m / name!r}, os.O_RDONLY)\n"
            "mapping = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ)\n"
            "sys.stdout.write(repr(mapping[:4]))\n")
    return subprocess.run([PYTHON, "-c", code], capture_output=True, timeout=10).returncode


# -- the catalogue ----------------------------------------------------------------------------
# Each case: (id, expected errno, action). An action returns the errno it got
# (from errno_of, c_errno) or, for shell commands, the stderr of the failed
# command, which must carry the errno's message.

LONG = "n" * 256
E = errno

CASES = [
    # Names (SPEC 1)
    ("create-name-too-long", E.ENAMETOOLONG, lambda m: errno_of(os.open, m / LONG, os.O_CREAT | os.O_WRONLY)),
    ("touch-name-too-long", E.ENAMETOOLONG, lambda m: sh(m, f"touch {LONG}")),
    ("mkdir-name-too-long", E.ENAMETOOLONG, lambda m: errno_of(os.mkdir, m / LONG)),
    ("mknod-name-too-long", E.ENAMETOOLONG, lambda m: errno_of(os.mknod, m / LONG)),
    ("rename-to-name-too-long", E.ENAMETOOLONG, lambda m: errno_of(os.rename, m / "q", m / LONG)),
    ("lookup-name-too-long", E.ENAMETOOLONG, lambda m: errno_of(os.stat, m / LONG)),
    # Node types a queue mount does not hold (SPEC 1)
    ("hard-link", E.EPERM, lambda m: errno_of(os.link, m / "q", m / "d/link")),
    ("ln", E.EPERM, lambda m: sh(m, "ln q d/link")),
    ("symlink", E.EPERM, lambda m: errno_of(os.symlink, "q", m / "link")),
    ("ln-s", E.EPERM, lambda m: sh(m, "ln -s q link")),
    ("mkfifo", E.EPERM, lambda m: errno_of(os.mkfifo, m / "fifo")),
    ("mkfifo-command", E.EPERM, lambda m: sh(m, "mkfifo fifo")),
    ("mknod-char-device", E.EPERM,
     lambda m: errno_of(os.mknod, m / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))),
    ("mknod-block-device", E.EPERM,
     lambda m: errno_of(os.mknod, m / "loop", stat.S_IFBLK | 0o666, os.makedev(7, 0))),
    ("mknod-command", E.EPERM, lambda m: sh(m, "mknod null c 1 3")),
    ("unix-socket", E.EPERM, lambda m: errno_of(socket.socket(socket.AF_UNIX).bind, m / "sock")),
    # Creating and opening (SPEC 1)
    ("create-exclusive-existing", E.EEXIST, lambda m: errno_of(os.open, m / "q", os.O_CREAT | os.O_EXCL | os.O_WRONLY)),
    ("open-missing", E.ENOENT, lambda m: errno_of(os.open, m / "nosuch", os.O_RDONLY)),
    ("cat-missing", E.ENOENT, lambda m: sh(m, "cat nosuch")),
    ("open-in-missing-directory", E.ENOENT, lambda m: errno_of(os.open, m / "nodir/q", os.O_CREAT | os.O_WRONLY)),
    ("open-directory-for-writing", E.EISDIR, lambda m: errno_of(os.open, m / "d", os.O_WRONLY)),
    ("echo-into-directory", E.EISDIR, lambda m: sh(m, "echo x > d")),
    ("read-a-directory", E.EISDIR, lambda m: errno_of(os.read, _fd(m, "d", os.O_RDONLY), 10)),
    ("open-queue-as-directory", E.ENOTDIR, lambda m: errno_of(os.open, m / "q", os.O_RDONLY | os.O_DIRECTORY)),
    ("create-under-a-queue", E.ENOTDIR, lambda m: errno_of(os.open, m / "q/x", os.O_CREAT | os.O_WRONLY)),
    ("mkdir-existing-directory", E.EEXIST, lambda m: errno_of(os.mkdir, m / "d")),
    ("mkdir-over-a-queue", E.EEXIST, lambda m: errno_of(os.mkdir, m / "q")),
    ("mkdir-under-a-queue", E.ENOTDIR, lambda m: errno_of(os.mkdir, m / "q/x")),
    ("mknod-existing", E.EEXIST, lambda m: errno_of(os.mknod, m / "q")),
    # Removing (SPEC 1)
    ("rmdir-non-empty", E.ENOTEMPTY, lambda m: errno_of(os.rmdir, m / "d")),
    ("rmdir-non-empty-command", E.ENOTEMPTY, lambda m: sh(m, "rmdir d")),
    ("rmdir-a-queue", E.ENOTDIR, lambda m: errno_of(os.rmdir, m / "q")),
    ("unlink-a-directory", E.EISDIR, lambda m: errno_of(os.unlink, m / "d")),
    ("rm-a-directory", E.EISDIR, lambda m: sh(m, "rm d")),
    ("unlink-missing", E.ENOENT, lambda m: errno_of(os.unlink, m / "nosuch")),
    ("rmdir-the-mount-point", E.EBUSY, lambda m: errno_of(os.rmdir, m.path)),
    # Renaming (SPEC 1)
    ("rename-directory-into-its-child", E.EINVAL, lambda m: errno_of(os.rename, m / "d", m / "d/e/d")),
    ("mv-directory-into-itself", E.EINVAL, lambda m: errno_of(os.rename, m / "d", m / "d/d")),
    ("rename-queue-over-directory", E.EISDIR, lambda m: errno_of(os.rename, m / "q", m / "empty")),
    ("rename-directory-over-queue", E.ENOTDIR, lambda m: errno_of(os.rename, m / "empty", m / "q")),
    ("rename-over-non-empty-directory", E.ENOTEMPTY, lambda m: errno_of(os.rename, m / "empty", m / "d")),
    ("rename-missing", E.ENOENT, lambda m: errno_of(os.rename, m / "nosuch", m / "other")),
    ("rename-into-a-queue", E.ENOTDIR, lambda m: errno_of(os.rename, m / "d/inner", m / "q/inner")),
    ("rename-noreplace-existing", E.EEXIST, lambda m: renameat2(m, "q", "d/inner", RENAME_NOREPLACE)),
    ("rename-exchange-missing", E.ENOENT, lambda m: renameat2(m, "q", "nosuch", RENAME_EXCHANGE)),
    ("rename-whiteout", E.EINVAL, lambda m: renameat2(m, "q", "other", RENAME_WHITEOUT)),
    ("rename-to-another-filesystem", E.EXDEV, lambda m: errno_of(os.rename, m / "q", "/tmp/mqfs-bad-input-q")),
    # Writing (SPEC 2)
    ("write-over-msgsize", E.EMSGSIZE, lambda m: errno_of(os.write, _fd(m, "q", os.O_WRONLY), b"x" * 8193)),
    ("write-over-largest-msgsize", E.EMSGSIZE,
     lambda m: errno_of(os.write, _fd(m, "big", os.O_WRONLY), b"x" * (MAX_MSGSIZE + 1))),
    ("write-over-largest-fuse-write", E.EMSGSIZE,
     lambda m: errno_of(os.write, _fd(m, "big", os.O_WRONLY), b"x" * (4 << 20))),
    ("write-on-read-only-descriptor", E.EBADF, lambda m: errno_of(os.write, _fd(m, "q", os.O_RDONLY), b"x")),
    ("pwrite", E.ESPIPE, lambda m: errno_of(os.pwrite, _fd(m, "q", os.O_WRONLY), b"x", 0)),
    ("lseek", E.ESPIPE, lambda m: errno_of(os.lseek, _fd(m, "q", os.O_RDONLY), 0, os.SEEK_SET)),
    ("truncate-to-non-zero", E.EINVAL, lambda m: errno_of(os.truncate, m / "q", 5)),
    ("truncate-command-non-zero", E.EINVAL, lambda m: sh(m, "truncate -s 1k q")),
    ("ftruncate-to-non-zero", E.EINVAL, lambda m: errno_of(os.ftruncate, _fd(m, "q", os.O_WRONLY), 1)),
    ("truncate-negative", E.EINVAL, lambda m: errno_of(os.truncate, m / "q", -1)),
    ("truncate-a-directory", E.EISDIR, lambda m: errno_of(os.truncate, m / "d", 0)),
    ("fallocate", E.EOPNOTSUPP, lambda m: sh(m, "fallocate -l 4096 q")),
    ("line-longer-than-msgsize", E.EMSGSIZE, lambda m: errno_of(os.write, _fd(m, "lines", os.O_WRONLY), b"x" * 17 + b"\n")),
    ("u32-frame-longer-than-msgsize", E.EMSGSIZE,
     lambda m: errno_of(os.write, _fd(m, "frames", os.O_WRONLY), struct.pack("<I", 8193) + b"x" * 8193)),
    ("u32-frame-length-near-4-gib", E.EMSGSIZE,
     lambda m: errno_of(os.write, _fd(m, "frames", os.O_WRONLY), struct.pack("<I", 0xFFFFFFFF) + b"x")),
    # Reading (SPEC 3, 7)
    ("read-on-write-only-descriptor", E.EBADF, lambda m: errno_of(os.read, _fd(m, "q", os.O_WRONLY), 10)),
    ("pread", E.ESPIPE, lambda m: errno_of(os.pread, _fd(m, "q", os.O_RDONLY), 10, 0)),
    ("u32-read-too-small-for-the-frame", E.EMSGSIZE, lambda m: errno_of(os.read, _fd(m, "frames", os.O_RDONLY), 11)),
    ("mmap-shared", E.ENODEV,
     lambda m: errno_of(mmap.mmap, _fd(m, "q", os.O_RDWR), 0, mmap.MAP_SHARED)),
    # Attributes (SPEC 5)
    ("setxattr-not-a-number", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"many")),
    ("setxattr-empty", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"")),
    ("setxattr-spaces", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b" 5")),
    ("setxattr-plus-sign", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"+5")),
    ("setxattr-hex", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"0x10")),
    ("setxattr-nul-inside", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"5\0")),
    ("setxattr-overflow", E.EINVAL,
     lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"99999999999999999999999")),
    ("setxattr-64-kib-value", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"7" * 65536)),
    ("maxmsg-zero", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"0")),
    ("msgsize-past-the-largest", E.EINVAL,
     lambda m: errno_of(os.setxattr, m / "q", "user.mq.msgsize", str(MAX_MSGSIZE + 1).encode())),
    ("priority-past-32767", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.priority", b"32768")),
    ("priority-negative", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.priority", b"-1")),
    ("read-mode-unknown-word", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.read_mode", b"Stream")),
    ("framing-unknown-word", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.framing", b"lines")),
    ("timeout-negative", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.recv_timeout_ms", b"-5")),
    ("timeout-past-the-largest", E.EINVAL,
     lambda m: errno_of(os.setxattr, m / "q", "user.mq.send_timeout_ms", str((1 << 40) + 1).encode())),
    ("setfattr-bad-value", E.EINVAL, lambda m: sh(m, "setfattr -n user.mq.maxmsg -v -3 q")),
    # Types and topics (SPEC 12, 13)
    ("type-zero", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.type", b"0")),
    ("type-negative", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.type", b"-1")),
    ("type-past-2-63", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.type", b"9223372036854775808")),
    ("kind-unknown-word", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.kind", b"Topic")),
    ("overflow-unknown-word", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.overflow", b"discard")),
    ("kind-topic-on-a-queue-with-messages", E.EBUSY, lambda m: errno_of(os.setxattr, m / "q", "user.mq.kind", b"topic")),
    ("subscribe-empty-entry", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.subscribe", b"/a,,/b")),
    ("subscribe-dot-dot", E.EINVAL, lambda m: errno_of(os.setxattr, m / "q", "user.mq.subscribe", b"/a/../b")),
    ("set-subscribers-counter", E.EPERM, lambda m: errno_of(os.setxattr, m / "q", "user.mq.subscribers", b"1")),
    ("set-read-only-attribute", E.EPERM, lambda m: errno_of(os.setxattr, m / "q", "user.mq.curmsgs", b"0")),
    ("remove-read-only-attribute", E.EPERM, lambda m: errno_of(os.removexattr, m / "q", "user.mq.sent")),
    ("set-unknown-attribute", E.ENOTSUP, lambda m: errno_of(os.setxattr, m / "q", "user.mq.bogus", b"1")),
    ("set-other-namespace", E.ENOTSUP, lambda m: errno_of(os.setxattr, m / "q", "trusted.note", b"1")),
    ("get-unknown-attribute", E.ENODATA, lambda m: errno_of(os.getxattr, m / "q", "user.mq.bogus")),
    ("remove-unknown-attribute", E.ENODATA, lambda m: errno_of(os.removexattr, m / "q", "user.mq.bogus")),
    ("set-queue-attribute-on-directory", E.ENOTSUP, lambda m: errno_of(os.setxattr, m / "d", "user.mq.maxmsg", b"5")),
    ("create-flag-on-existing-attribute", E.EEXIST,
     lambda m: errno_of(os.setxattr, m / "q", "user.mq.maxmsg", b"7", os.XATTR_CREATE)),
    ("getxattr-buffer-too-small", E.ERANGE,
     lambda m: c_errno(LIBC.getxattr((m / "q").encode(), b"user.mq.msgsize", ctypes.create_string_buffer(2), 2))),
    ("listxattr-buffer-too-small", E.ERANGE,
     lambda m: c_errno(LIBC.listxattr((m / "q").encode(), ctypes.create_string_buffer(8), 8))),
    # ioctls (SPEC 6)
    ("ioctl-unknown", E.ENOTTY, lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), 0xBEEF, 0)),
    ("ioctl-garbage-number-and-pointer", E.EFAULT,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), 0xDEADBEEF, 0)),
    ("ioctl-zero", E.ENOTTY, lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), 0, 0)),
    ("ioctl-terminal-request", E.ENOTTY, lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), 0x5401, bytes(64))),
    ("ioctl-mqfs-magic-unknown-number", E.ENOTTY,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), _ioc(1, 9, 4), struct.pack("i", 1))),
    ("ioctl-mqfs-wrong-size", E.ENOTTY,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), _ioc(1, 1, 8), struct.pack("q", 1))),
    ("ioctl-priority-out-of-range", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_WRONLY), MQFS_IOC_SET_PRIORITY, struct.pack("i", 32768))),
    ("ioctl-priority-below-default", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_WRONLY), MQFS_IOC_SET_PRIORITY, struct.pack("i", -2))),
    ("ioctl-read-mode-unknown", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), MQFS_IOC_SET_READ_MODE, struct.pack("i", 7))),
    ("ioctl-set-type-zero", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_WRONLY), MQFS_IOC_SET_TYPE, struct.pack("q", 0))),
    ("ioctl-set-type-below-default", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_WRONLY), MQFS_IOC_SET_TYPE, struct.pack("q", -2))),
    ("ioctl-select-except-2", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), MQFS_IOC_SET_SELECT, struct.pack("qii", 3, 2, 0))),
    ("ioctl-select-except-any-type", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), MQFS_IOC_SET_SELECT, struct.pack("qii", 0, 1, 0))),
    ("ioctl-select-reserved-set", E.EINVAL,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "q", os.O_RDONLY), MQFS_IOC_SET_SELECT, struct.pack("qii", 1, 0, 1))),
    ("ioctl-get-attr-bad-pointer", E.EFAULT,
     lambda m: ioctl_raw(_fd(m, "q", os.O_RDONLY), MQFS_IOC_GET_ATTR, ctypes.c_void_p(16))),
    ("ioctl-set-priority-bad-pointer", E.EFAULT,
     lambda m: ioctl_raw(_fd(m, "q", os.O_WRONLY), MQFS_IOC_SET_PRIORITY, ctypes.c_void_p(16))),
    ("ioctl-on-a-directory", E.ENOTTY,
     lambda m: errno_of(fcntl.ioctl, _fd(m, "d", os.O_RDONLY), MQFS_IOC_SET_PRIORITY, struct.pack("i", 1))),
    # A removed queue (SPEC 1): gone by name, still there for its open file
    ("stat-removed", E.ENOENT, lambda m: errno_of(os.stat, m / "removed")),
    ("open-removed", E.ENOENT, lambda m: errno_of(os.open, m / "removed", os.O_RDONLY)),
    ("setxattr-removed", E.ENOENT, lambda m: errno_of(os.setxattr, m / "removed", "user.mq.maxmsg", b"3")),
    ("truncate-removed", E.ENOENT, lambda m: errno_of(os.truncate, m / "removed", 0)),
    ("rename-removed", E.ENOENT, lambda m: errno_of(os.rename, m / "removed", m / "back")),
    ("unlink-removed-again", E.ENOENT, lambda m: errno_of(os.unlink, m / "removed")),
    ("bad-value-through-removed-descriptor", E.EINVAL,
     lambda m: errno_of(os.setxattr, m.removed_fd, "user.mq.maxmsg", b"0")),
    ("oversized-write-through-removed-descriptor", E.EMSGSIZE,
     lambda m: errno_of(os.write, m.removed_fd, b"x" * 8193)),
    ("ftruncate-removed-to-non-zero", E.EINVAL, lambda m: errno_of(os.ftruncate, m.removed_fd, 3)),
]


@pytest.mark.parametrize("expected,action", [(e, a) for _, e, a in CASES], ids=[i for i, _, _ in CASES])
def test_bad_input_gets_its_errno_and_changes_nothing(world, expected, action):
    before = snapshot(world)
    got = action(world)
    if isinstance(got, str):  # a shell command's stderr
        assert os.strerror(expected) in got, got
    else:
        assert got == expected, f"expected {errno.errorcode[expected]}, got {got and errno.errorcode[got]}"
    assert snapshot(world) == before
    assert_still_serving(world)


def assert_still_serving(m):
    """The daemon answers, and every message is where it was, in order."""
    m.sh("echo alive > probe")
    assert m.sh("cat probe && rm probe").stdout == "alive\n"
    assert drain_now(m / "q") == Q_MESSAGES
    assert drain_now(m / "d/inner") == INNER_MESSAGES
    assert drain_now(m / "frames") == [struct.pack("<I", 8) + b"12345678"]
    assert os.read(m.removed_fd, 100) == b"kept\n"


# -- inputs that are valid however odd they look --------------------------------------------

def test_zero_length_write_and_read_change_nothing(world):
    before = snapshot(world)
    assert os.write(_fd(world, "q", os.O_WRONLY), b"") == 0
    assert os.read(_fd(world, "q", os.O_RDONLY), 0) == b""
    assert snapshot(world) == before
    assert_still_serving(world)


def test_private_mmap_takes_nothing_and_the_access_gets_sigbus(world):
    """A mapping is no way to receive: the kernel would fill it with reads
    that take messages no one reads. mqfs refuses those reads."""
    before = snapshot(world)
    assert mmap_private_in_child(world, "q") == -signal.SIGBUS
    assert snapshot(world) == before
    assert_still_serving(world)


ODD_NAMES = ["with space", "new\nline", "-starts-with-dash", "ünïcødé-名前", "tab\tand\x01control",
             "bytes-\udcff\udcfe", "." * 3, "n" * 255]


@pytest.mark.parametrize("name", ODD_NAMES, ids=["space", "newline", "dash", "unicode", "control", "not-utf8",
                                                 "dots", "longest"])
def test_odd_but_valid_names_are_queues_like_any_other(world, name):
    path = os.fsencode(world.path) + b"/" + os.fsencode(name)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NONBLOCK, 0o644)
    try:
        assert os.write(fd, b"odd") == 3
        assert os.fsencode(name) in os.listdir(os.fsencode(world.path))
        assert os.read(fd, 10) == b"odd"
    finally:
        os.close(fd)
    os.rename(path, path[:-1] + b"2")
    os.unlink(path[:-1] + b"2")
    assert_still_serving(world)
