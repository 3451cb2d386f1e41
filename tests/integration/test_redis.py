"""SPEC section 10: queues shared by several mounts through one Redis. Each
test starts its own redis-server on a free port of 127.0.0.1 and mounts two
or three mqfs daemons on it, as hosts would; shells, Python and the `mq`
command drive them.
"""
import errno
import fcntl
import os
import select
import struct
import subprocess
import sys
import time

import pytest

from helpers import errno_of, kill_daemon, put, wait_blocked, wait_until

MQ = os.environ["MQ_BIN"]

# include/mqfs.h
SET_ACK = (1 << 30) | (4 << 16) | (ord("M") << 8) | 4
DELIVERY_FORMAT = "QqiIq"  # id, type, priority, deliveries, enqueued_ns
GET_DELIVERY = (2 << 30) | (struct.calcsize(DELIVERY_FORMAT) << 16) | (ord("M") << 8) | 7
EXPLICIT = 1
SET_READ_MODE = (1 << 30) | (4 << 16) | (ord("M") << 8) | 2
ACK = (1 << 30) | (8 << 16) | (ord("M") << 8) | 5
NACK = (1 << 30) | (8 << 16) | (ord("M") << 8) | 6
STREAM, PEEK = 1, 2


@pytest.fixture
def shared(mount_mqfs, redis_server):
    """Factory: shared(n, option, ...) mounts n daemons on one fresh Redis."""
    def mount(n=2, *options, server=None):
        server = server or redis_server()
        mounts = [mount_mqfs(f"redis={server.url()}", "redis_lease_ms=1000", "redis_timeout_ms=1000", *options)
                  for _ in range(n)]
        return (*mounts, server)
    return mount


def read_blocking(path, timeout=10):
    """One blocking read of a whole message, by `cat` with a timeout."""
    result = subprocess.run(["timeout", str(timeout), "cat", path], capture_output=True, timeout=timeout + 5)
    assert result.returncode == 0, f"cat {path}: {result.returncode} {result.stderr!r}"
    return result.stdout


def curmsgs(path):
    return int(os.getxattr(path, "user.mq.curmsgs"))


def make_queue(first, *others, setup="", queued=None):
    """Makes queue q on mount `first` (then runs `setup` there) and waits until
    the other mounts see it, and `queued` messages in it when given."""
    first.sh("touch q" + (f" && {setup}" if setup else ""))
    wait_until(lambda: all(os.path.exists(m / "q") and (queued is None or curmsgs(m / "q") == queued) for m in others),
               timeout=5, what="the queue on every mount")


def open_reader(path, ack=None, mode=None):
    """An open file of `path` for reading (O_NONBLOCK: read it with
    read_ready), its acknowledgement mode and read mode set."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if ack is not None:
        fcntl.ioctl(fd, SET_ACK, struct.pack("i", ack))
    if mode is not None:
        fcntl.ioctl(fd, SET_READ_MODE, struct.pack("i", mode))
    return fd


def read_ready(fd, size=100, timeout=10):
    """One read of `fd` once poll says it is readable, within `timeout` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(timeout * 1000), f"nothing to read within {timeout} s"
    return os.read(fd, size)


def blocked_reader(procs, path, **kwargs):
    """A `cat` of `path`, blocked in its read."""
    reader = procs.start(["cat", path], **kwargs)
    wait_blocked(reader, what=f"cat {path} to block")
    return reader


def test_every_mount_sees_the_same_names_and_attributes(shared):
    a, b, _ = shared(2)
    a.sh("mkdir -p jobs/new && touch jobs/q && setfattr -n user.mq.maxmsg -v 50 jobs/q && chmod 600 jobs/q")
    wait_until(lambda: os.path.exists(b / "jobs/new") and os.path.exists(b / "jobs/q"), timeout=5,
               what="the names on the other mount")
    wait_until(lambda: os.getxattr(b / "jobs/q", "user.mq.maxmsg") == b"50", timeout=5, what="maxmsg there")
    wait_until(lambda: os.stat(b / "jobs/q").st_mode & 0o777 == 0o600, timeout=5, what="the mode there")
    assert os.stat(a / "jobs/q").st_ino == os.stat(b / "jobs/q").st_ino, "one inode number on every mount"
    b.sh("mv jobs/q jobs/new/r && rmdir jobs/new 2>/dev/null; true")
    wait_until(lambda: os.path.exists(a / "jobs/new/r") and not os.path.exists(a / "jobs/q"), timeout=5,
               what="the rename on the first mount")
    assert b.sh("rmdir jobs/new", check=False).returncode != 0, "not empty, on every mount"
    # The same name made on two mounts at once: one of them is refused.
    results = [subprocess.Popen(["mkdir", m / "race"], stderr=subprocess.PIPE) for m in (a, b)]
    codes = [p.wait(timeout=10) for p in results]
    assert sorted(codes) == [0, 1], codes
    assert os.path.isdir(a / "race") and os.path.isdir(b / "race")


def test_a_message_written_on_one_mount_is_read_on_another(shared):
    a, b, _ = shared(2)
    a.sh("echo job-1 > q && echo job-2 > q")
    assert read_blocking(b / "q") == b"job-1\n"
    assert read_blocking(a / "q") == b"job-2\n"
    wait_until(lambda: curmsgs(a / "q") == 0 and curmsgs(b / "q") == 0, timeout=5, what="both copies empty")
    assert os.getxattr(a / "q", "user.mq.sent") == b"2"


def test_a_blocked_reader_is_woken_by_a_writer_on_another_mount(shared, procs):
    a, b, _ = shared(2)
    make_queue(a, b)
    reader = blocked_reader(procs, b / "q", stdout=subprocess.PIPE)
    started = time.monotonic()
    a.sh("echo wake > q")
    out, _ = reader.communicate(timeout=5)
    assert out == b"wake\n"
    assert time.monotonic() - started < 2  # the benchmark measures the wake-up itself


def test_poll_on_one_mount_follows_writes_on_another(shared):
    a, b, _ = shared(2)
    make_queue(a, b)
    fd = os.open(b / "q", os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(100) == []
        a.sh("echo ready > q")
        assert poller.poll(5000) == [(fd, select.POLLIN)]
        assert os.read(fd, 100) == b"ready\n"
        assert os.read(fd, 100) == b"", "message mode: one message, then end of file"
    finally:
        os.close(fd)


def test_readers_of_every_mount_get_the_global_priority_order(shared):
    a, b, _ = shared(2)
    make_queue(a, b)
    for priority, text in ((1, "low"), (9, "high"), (5, "middle"), (1, "low-2")):
        subprocess.run([MQ, "send", "-p", str(priority), a / "q", text], check=True, timeout=10)
    wait_until(lambda: curmsgs(b / "q") == 4, timeout=5, what="b's copy")
    got = [read_blocking(m / "q").strip() for m in (b, a, b, a)]
    assert got == [b"high", b"middle", b"low", b"low-2"]


def test_maxmsg_counts_the_messages_of_every_mount(shared, procs):
    a, b, _ = shared(2)
    make_queue(a, b, setup="setfattr -n user.mq.maxmsg -v 2 q && echo 1 > q && echo 2 > q", queued=2)
    assert errno_of(put, b / "q", b"3") == errno.EAGAIN
    writer = procs.start(["sh", "-c", f"echo 3 > {b / 'q'}"])
    wait_blocked(writer, what="the write on b to wait for room")
    assert read_blocking(a / "q") == b"1\n"
    assert writer.wait(timeout=5) == 0, "room made on a lets b's writer in"
    assert [read_blocking(b / "q"), read_blocking(a / "q")] == [b"2\n", b"3\n"]


def test_each_message_reaches_exactly_one_reader_of_three_mounts(shared, procs):
    a, b, c, _ = shared(3)
    make_queue(a, b, c, setup="setfattr -n user.mq.maxmsg -v 1000 q")
    count = 300
    readers = [procs.start([MQ, "recv", "-n", str(count // 3), m / "q"], stdout=subprocess.PIPE) for m in (a, b, c)]
    subprocess.run([MQ, "send", a / "q"] + [f"m{i}" for i in range(count)], check=True, timeout=30)
    got = []
    for reader in readers:
        out, _ = reader.communicate(timeout=30)
        assert reader.returncode == 0
        got += out.decode().split()
    assert sorted(got) == sorted(f"m{i}" for i in range(count))


def test_removing_a_queue_fails_the_open_files_of_other_mounts_with_eidrm(shared, procs):
    a, b, _ = shared(2)
    make_queue(a, b)
    reader = blocked_reader(procs, b / "q", stderr=subprocess.PIPE)
    fd = os.open(b / "q", os.O_WRONLY)
    try:
        a.sh("rm q")
        _, err = reader.communicate(timeout=5)
        assert reader.returncode == 1 and b"Identifier removed" in err
        assert errno_of(os.write, fd, b"late") == errno.EIDRM
    finally:
        os.close(fd)
    wait_until(lambda: not os.path.exists(b / "q"), timeout=5, what="the name gone on b")


def test_a_daemon_killed_mid_hand_off_gives_its_messages_back_after_its_lease(shared):
    a, b, _ = shared(2)
    a.sh("echo held > q")
    fd = open_reader(a / "q", ack=EXPLICIT)
    assert read_ready(fd) == b"held\n"  # leased to this file: not acknowledged
    kill_daemon(a)  # SIGKILL, and its mount detached
    os.close(fd)
    started = time.monotonic()
    assert read_blocking(b / "q") == b"held\n"
    assert time.monotonic() - started < 5, "back after redis_lease_ms (1 s), found at b's next heartbeat"
    a.start()  # for the fixture's end


def test_ack_and_nack_by_id_across_mounts(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="echo one > q && echo two > q", queued=2)
    fd = open_reader(b / "q", ack=EXPLICIT, mode=STREAM)
    try:
        ids = []
        for expected in (b"one\n", b"two\n"):
            assert read_ready(fd) == expected
            ids.append(struct.unpack(DELIVERY_FORMAT,
                                     fcntl.ioctl(fd, GET_DELIVERY, bytes(struct.calcsize(DELIVERY_FORMAT))))[0])
        assert int(os.getxattr(b / "q", "user.mq.inflight")) == 2
        fcntl.ioctl(fd, ACK, struct.pack("Q", ids[0]))
        fcntl.ioctl(fd, NACK, struct.pack("Q", ids[1]))
        assert errno_of(fcntl.ioctl, fd, ACK, struct.pack("Q", ids[0])) == errno.ENOENT
    finally:
        os.close(fd)
    assert read_blocking(a / "q") == b"two\n", "the one given back, on the other mount"
    wait_until(lambda: curmsgs(a / "q") == 0 and curmsgs(b / "q") == 0, timeout=5, what="nothing left anywhere")


def test_deliveries_count_across_mounts(shared):
    a, b, _ = shared(2)
    a.sh("echo again > q")
    fd = open_reader(a / "q", ack=EXPLICIT)
    assert read_ready(fd) == b"again\n"
    os.close(fd)  # given back, unacknowledged
    wait_until(lambda: curmsgs(b / "q") == 1, timeout=5, what="the message back in b's copy")
    fd = os.open(b / "q", os.O_RDONLY)
    try:
        assert read_ready(fd) == b"again\n"
        delivery = struct.unpack(DELIVERY_FORMAT, fcntl.ioctl(fd, GET_DELIVERY, bytes(struct.calcsize(DELIVERY_FORMAT))))
        assert delivery[3] == 2, delivery
    finally:
        os.close(fd)


def test_while_redis_is_down_calls_fail_with_eio_and_blocked_readers_go_on_after(mount_mqfs, redis_server, procs):
    server = redis_server(persistent=True)
    a, b = [mount_mqfs(f"redis={server.url()}", "redis_timeout_ms=500") for _ in range(2)]
    a.sh("echo kept > q")
    wait_until(lambda: os.path.exists(b / "q") and curmsgs(b / "q") == 1, timeout=5, what="b's copy")
    assert read_blocking(b / "q") == b"kept\n"
    reader = blocked_reader(procs, b / "q", stdout=subprocess.PIPE)
    server.stop()
    result = a.sh("echo lost > q", check=False)
    assert "Input/output error" in result.stderr, result.stderr
    assert reader.poll() is None, "a blocked reader keeps waiting"
    server.start()
    wait_until(lambda: a.sh("echo back > q", check=False).returncode == 0, timeout=10, what="writes to work again")
    out, _ = reader.communicate(timeout=10)
    assert out in (b"lost\n", b"back\n"), "the lost write's outcome is unknown; either way one message"


def test_a_mount_refuses_redis_without_a_password_elsewhere(daemons):
    mount = None
    try:
        mount = daemons("redis=redis://192.0.2.1:6379")
    except BaseException as failure:  # pytest's Failed: it exited before mounting
        assert "needs a password" in str(failure)
    assert mount is None, "the mount went ahead"


def test_a_mount_fails_when_redis_cannot_be_reached(daemons, redis_server):
    server = redis_server()
    server.stop()
    with pytest.raises(BaseException, match="could not be read"):
        daemons(f"redis={server.url()}", "redis_timeout_ms=300")


def test_u32_and_line_framing_across_mounts(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="setfattr -n user.mq.framing -v u32 q && setfattr -n user.mq.maxmsg -v 100 q")
    frames = b"".join(struct.pack("<I", len(m)) + m for m in (b"one", b"two", b"three"))
    fd = os.open(a / "q", os.O_WRONLY)
    try:
        assert os.write(fd, frames[:5]) == 5  # a frame split across writes
        assert os.write(fd, frames[5:]) == len(frames) - 5
    finally:
        os.close(fd)
    wait_until(lambda: curmsgs(b / "q") == 3, timeout=5, what="b's copy")
    fd = open_reader(b / "q", mode=STREAM)
    try:
        assert read_ready(fd, 1 << 16) == frames, "one read, every whole frame"
    finally:
        os.close(fd)
    a.sh("setfattr -n user.mq.framing -v line q && seq 1 5 > q")
    assert read_blocking(b / "q") == b"1\n"


def test_a_nonblocking_framed_write_to_a_queue_full_elsewhere_is_short(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="setfattr -n user.mq.framing -v line q && setfattr -n user.mq.maxmsg -v 3 q && echo x > q",
               queued=1)
    fd = os.open(b / "q", os.O_WRONLY | os.O_NONBLOCK)
    try:
        assert os.write(fd, b"a\nb\nc\nd\n") == 4, "two lines fit, as a pipe takes what fits"
        assert errno_of(os.write, fd, b"c\n") == errno.EAGAIN
    finally:
        os.close(fd)
    assert [read_blocking(a / "q") for _ in range(3)] == [b"x\n", b"a\n", b"b\n"]


def test_types_select_across_mounts(shared):
    a, b, _ = shared(2)
    make_queue(a, b)
    for kind, text in ((3, "three"), (1, "one"), (2, "two")):
        subprocess.run([MQ, "send", "-t", str(kind), a / "q", text], check=True, timeout=10)
    wait_until(lambda: curmsgs(b / "q") == 3, timeout=5, what="b's copy")
    got = subprocess.run([MQ, "recv", "-t", "2", b / "q"], capture_output=True, timeout=10, check=True).stdout
    assert got.strip() == b"two"
    got = subprocess.run([MQ, "recv", "-t", "-3", b / "q"], capture_output=True, timeout=10, check=True).stdout
    assert got.strip() == b"one", "the lowest type up to 3"


def test_whole_file_messages_across_mounts(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="setfattr -n user.mq.framing -v file q")
    a.sh("printf 'line 1\\nline 2\\n' > q")
    assert read_blocking(b / "q") == b"line 1\nline 2\n"


def test_peeking_and_counters_follow_every_mount(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="echo first > q && echo second > q", queued=2)
    fd = open_reader(b / "q", mode=PEEK)
    try:
        assert [os.read(fd, 100), os.read(fd, 100), os.read(fd, 100)] == [b"first\n", b"second\n", b""]
    finally:
        os.close(fd)
    assert curmsgs(a / "q") == 2, "peeking takes nothing"
    assert int(os.getxattr(b / "q", "user.mq.oldest_ms")) < 60_000


def test_dead_letters_across_mounts(shared):
    a, b, _ = shared(2)
    a.sh("touch dlq q && setfattr -n user.mq.max_deliveries -v 1 q && setfattr -n user.mq.dead_letter -v dlq q"
         " && echo poison > q")
    wait_until(lambda: os.path.exists(b / "q") and curmsgs(b / "q") == 1, timeout=5, what="b's copy")
    fd = open_reader(b / "q", ack=EXPLICIT)
    assert read_ready(fd) == b"poison\n"
    os.close(fd)  # given back after its one delivery: a dead letter
    assert read_blocking(a / "dlq") == b"poison\n"


def test_a_read_timeout_applies_on_every_mount(shared):
    a, b, _ = shared(2)
    make_queue(a, b, setup="setfattr -n user.mq.recv_timeout_ms -v 200 q")
    wait_until(lambda: os.getxattr(b / "q", "user.mq.recv_timeout_ms") == b"200", timeout=5, what="the setting")
    started = time.monotonic()
    result = subprocess.run(["cat", b / "q"], capture_output=True, timeout=10)
    assert result.returncode == 1 and b"timed out" in result.stderr
    assert time.monotonic() - started < 5


def test_a_topic_publishes_to_subscribers_of_every_mount(shared, procs):
    a, b, c, _ = shared(3)
    a.sh("touch news lasting && setfattr -n user.mq.kind -v topic news && setfattr -n user.mq.subscribe -v news lasting")
    wait_until(lambda: all(os.path.exists(m / "news") and os.getxattr(m / "news", "user.mq.kind") == b"topic"
                           and os.getxattr(m / "lasting", "user.mq.subscribe") == b"/news" for m in (b, c)),
               timeout=5, what="the topic on every mount")
    readers = [blocked_reader(procs, m / "news", stdout=subprocess.PIPE) for m in (b, c)]
    a.sh("echo extra > news")
    for reader in readers:
        out, _ = reader.communicate(timeout=5)
        assert out == b"extra\n", "each descriptor, on any mount, gets its own copy"
    assert read_blocking(c / "lasting") == b"extra\n", "and the queue that subscribes by name"
    wait_until(lambda: curmsgs(a / "lasting") == 0, timeout=5, what="the copy taken everywhere")
    assert curmsgs(a / "news") == 0, "a topic keeps none"


def test_a_topic_with_a_full_subscriber_blocks_its_writers_on_every_mount(shared, procs):
    a, b, _ = shared(2)
    a.sh("touch t sub && setfattr -n user.mq.kind -v topic t && setfattr -n user.mq.subscribe -v t sub"
         " && setfattr -n user.mq.maxmsg -v 1 sub")
    wait_until(lambda: os.path.exists(b / "sub") and os.getxattr(b / "sub", "user.mq.subscribe") == b"/t",
               timeout=5, what="the subscription on b")
    a.sh("echo 1 > t")
    wait_until(lambda: curmsgs(b / "sub") == 1, timeout=5, what="the copy on b")
    writer = procs.start(["sh", "-c", f"echo 2 > {b / 't'}"])
    wait_blocked(writer, what="the publish on b to wait for its full subscriber")
    assert read_blocking(a / "sub") == b"1\n"
    assert writer.wait(timeout=5) == 0, "room made on a lets b's publish go"
    assert read_blocking(a / "sub") == b"2\n"


def test_a_names_change_waiting_for_redis_ends_at_a_signal(mount_mqfs, redis_server):
    server = redis_server()
    a = mount_mqfs(f"redis={server.url()}", "redis_timeout_ms=5000")
    server.pause()
    script = """if True:
        import os, signal, sys, time
        class Alarm(Exception):
            pass
        def ring(*_):
            raise Alarm()
        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        try:
            os.mkdir(sys.argv[1])
            print("made")
        except Alarm:
            print("interrupted", time.monotonic() - started)
    """
    try:
        result = subprocess.run([sys.executable, "-c", script, a / "d"], capture_output=True, text=True, timeout=10)
    finally:
        server.resume()
    words = result.stdout.split()
    assert words and words[0] == "interrupted", result
    assert float(words[1]) < 2, "answered at the interrupt, not after redis_timeout_ms"


def test_a_host_cut_off_from_redis_fails_calls_with_eio_and_goes_on_after(mount_mqfs, redis_server, host, procs):
    other = host()
    server = redis_server(password="s3cret", addresses=(other.gateway,))
    options = ("redis_timeout_ms=500", "redis_lease_ms=5000")
    a = mount_mqfs(f"redis={server.url()}", *options)
    b = mount_mqfs(f"redis={server.url(other.gateway)}", *options, run=other.run)
    make_queue(a, b)
    reader = blocked_reader(procs, b / "q", stdout=subprocess.PIPE)
    other.cut()
    started = time.monotonic()
    result = b.sh("echo lost > q", check=False)
    assert "Input/output error" in result.stderr, result.stderr
    assert time.monotonic() - started < 3, "EIO after redis_timeout_ms"
    a.sh("echo sent > q")  # the other host goes on
    assert reader.poll() is None, "a blocked reader keeps waiting"
    other.join()
    out, _ = reader.communicate(timeout=15)
    assert out in (b"sent\n", b"lost\n"), out
    rest = read_blocking(a / "q") if out == b"lost\n" else None
    assert rest in (None, b"sent\n"), "nothing lost, nothing twice"
