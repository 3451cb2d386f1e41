"""SPEC section 13, topics (publish/subscribe), rule by rule on real mounts:
the `kind` attribute and `-o kind=topic`, what a publish does with and
without subscribers, descriptor subscribers (`cat T` from the shell, stream
mode, priority order, only what comes after the open, the end of a
message-mode subscription), lasting subscriptions (`user.mq.subscribe`), a
full subscriber under `overflow=block` and `overflow=drop`, poll and epoll,
selection by type and leases on a subscriber, turning a topic back into a
queue, what a store keeps across a restart, the mount's byte budget (one
body for every copy), and publish/subscribe from C with poll
(tests/programs/topic_check.c).

The calls, request numbers and small helpers of sections 11 and 12 are shared
with test_leases.py and test_types.py. This process's descriptors are
non-blocking, so no call here can wait; whatever must block runs in a child
process (cat, bash, qio, readiness) and every wait has a timeout.
"""
import errno
import fcntl
import os
import signal
import struct
import subprocess

import pytest

from helpers import (MESSAGE_OVERHEAD, SYS_READ, SYS_WRITE, LineReader, Readiness, attr, drain, errno_of, finish,
                     iattr, parse_qio_read, parse_qio_write, program, put, run_mqfs, set_attr, take, wait_blocked,
                     wait_until)
from test_leases import (EXPLICIT, SET_PRIORITY, STREAM, PyClient, bytes_used, counts, error_of, lease, queue, reader,
                         restart, send)
from test_types import SELECT_FORMAT, SET_SELECT, SET_TYPE

# The attributes of section 13 and their values on a new queue.
TOPIC_ATTRIBUTES = {"kind": "queue", "overflow": "block", "subscribe": "", "dropped": "0", "subscribers": "0"}


@pytest.fixture
def py(mount_mqfs):
    """A PyClient (non-blocking descriptors of this process); closed after
    the test, before the mount goes."""
    made = PyClient()
    yield made
    made.close_all()


def topic(m, name="t", **settings):
    """Creates queue `name` in mount `m`, makes it a topic and applies the user.mq.* settings; returns its path."""
    return queue(m, name, kind="topic", **settings)


def subscribers(path):
    return iattr(path, "subscribers")


def wait_subscribers(path, count):
    wait_until(lambda: subscribers(path) == count, what=f"{path} to have {count} subscribers")


def publish_typed(path, message, message_type, priority=0):
    """One write of `message` (bytes) at `priority` with the writing descriptor's type `message_type`."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, SET_TYPE, struct.pack("q", message_type))
        fcntl.ioctl(fd, SET_PRIORITY, struct.pack("i", priority))
        assert os.write(fd, message) == len(message)
    finally:
        os.close(fd)


def select_type(fd, message_type, except_=0):
    fcntl.ioctl(fd, SET_SELECT, struct.pack(SELECT_FORMAT, message_type, except_, 0))


def subscriber(c, path, mode=STREAM):
    """A non-blocking descriptor of `c` subscribed to topic `path`, in read mode `mode`."""
    h = c.open(path)
    c.set_read_mode(h, mode)
    return h


def read_all(c, h):
    """Every message buffered for descriptor `h` (stream mode), until EAGAIN."""
    out = []
    while True:
        try:
            out.append(c.read(h))
        except BlockingIOError:
            return out


def blocked_publisher(procs, path, text):
    """A qio process that publishes `text` to `path` and is seen blocked in the write."""
    writer = procs.qio(path, "open:w", f"write:{text}")
    wait_blocked(writer, SYS_WRITE, what="the publisher to wait for room")
    return writer


def published(writer):
    """Waits for a qio publisher to end; asserts its write succeeded."""
    _, out, _ = finish(writer, what="the publisher to get through")
    assert parse_qio_write(out.splitlines()[-1])[0] == "OK", out


# -- the kind attribute ----------------------------------------------------------------------------

def test_the_new_attributes_are_listed_with_their_defaults(mq):
    q = queue(mq)
    names = os.listxattr(q)
    assert all("user.mq." + name in names for name in TOPIC_ATTRIBUTES)
    assert {name: attr(q, name) for name in TOPIC_ATTRIBUTES} == TOPIC_ATTRIBUTES


def test_kind_topic_makes_a_queue_a_topic_and_queue_turns_it_back(mq):
    q = queue(mq)
    set_attr(q, "kind", "topic")
    assert attr(q, "kind") == "topic"
    set_attr(q, "kind", "queue")
    assert attr(q, "kind") == "queue"


@pytest.mark.parametrize("held", ["queued", "in flight"])
def test_kind_topic_on_a_queue_holding_messages_is_ebusy_and_changes_nothing(mq, py, held):
    q = queue(mq)
    send(q, "m")
    if held == "in flight":
        lease(py, reader(py, q, ack=EXPLICIT))
        assert counts(q, "curmsgs", "inflight") == (0, 1)
    assert errno_of(set_attr, q, "kind", "topic") == errno.EBUSY
    assert attr(q, "kind") == "queue"
    py.close_all()
    assert drain(q) == ["m"]


@pytest.mark.parametrize("word", ["Topic", "", "topics", "fanout", "queue,topic"])
def test_a_kind_that_is_neither_queue_nor_topic_is_einval_and_changes_nothing(mq, word):
    t = topic(mq)
    assert errno_of(set_attr, t, "kind", word) == errno.EINVAL
    assert attr(t, "kind") == "topic"


def test_kind_topic_on_a_queue_with_a_subscription_is_einval(mq):
    topic(mq)
    q = queue(mq, "q", subscribe="/t")
    assert errno_of(set_attr, q, "kind", "topic") == errno.EINVAL
    assert (attr(q, "kind"), attr(q, "subscribe")) == ("queue", "/t")


@pytest.mark.parametrize("name", ["dropped", "subscribers"])
def test_the_new_counters_are_read_only(mq, name):
    t = topic(mq)
    assert errno_of(os.setxattr, t, "user.mq." + name, b"5") == errno.EPERM
    assert attr(t, name) == "0"


def test_overflow_takes_block_and_drop_other_words_are_einval(mq):
    t = topic(mq)
    set_attr(t, "overflow", "drop")
    assert attr(t, "overflow") == "drop"
    assert errno_of(set_attr, t, "overflow", "discard") == errno.EINVAL
    assert attr(t, "overflow") == "drop"
    set_attr(t, "overflow", "block")
    assert attr(t, "overflow") == "block"


def test_mount_option_kind_topic_makes_every_new_queue_a_topic(mount_mqfs):
    m = mount_mqfs("kind=topic")
    q = queue(m, "a/b")
    assert attr(q, "kind") == "topic"
    assert put(q, b"x") == 1
    assert counts(q, "curmsgs", "dropped") == (0, 1)


def test_a_bad_kind_mount_option_refuses_to_start(tmp_path):
    status, _, err = run_mqfs(["-f", str(tmp_path), "-o", "kind=fanout"])
    assert status != 0
    assert "kind" in err


# -- publishing ------------------------------------------------------------------------------------

def test_a_publish_with_no_subscriber_succeeds_and_is_dropped(mq):
    t = topic(mq)
    assert put(t, b"nobody hears") == 12
    assert counts(t, "curmsgs", "curbytes", "sent", "dropped", "subscribers") == (0, 0, 1, 1, 0)
    assert os.stat(t).st_size == 0
    assert errno_of(take, t) == errno.EAGAIN


def test_two_cat_subscribers_each_print_the_published_message(mq, procs):
    t = topic(mq)
    cats = [procs.start(["cat", t], text=True) for _ in range(2)]
    wait_subscribers(t, 2)
    for p in cats:
        wait_blocked(p, SYS_READ, what="cat to wait for a publish")
    mq.sh("echo 'hello subscribers' > t")
    for p in cats:
        assert finish(p, what="cat to print the message") == (0, "hello subscribers\n", "")
    assert counts(t, "curmsgs", "sent", "dropped", "subscribers") == (0, 1, 0, 0)


def test_cat_in_stream_mode_prints_each_message_as_it_comes(mq, procs):
    t = topic(mq, read_mode="stream")
    cat = procs.start(["timeout", "3", "cat", t])
    out = LineReader(cat)
    wait_subscribers(t, 1)
    for word in ("one", "two", "three"):
        mq.sh(f"echo {word} > t")
        assert out.line(what=f"cat to print {word}") == word
    assert finish(cat, what="timeout to end cat")[0] == 124


def test_timeout_cat_in_stream_mode_gets_the_messages_published_since_its_open_in_priority_order(mq, procs):
    t = topic(mq, read_mode="stream")
    shell = procs.start(["bash", "-c", f"exec 3<'{t}'; echo open; read go; timeout 1 cat <&3"],
                        stdin=subprocess.PIPE, text=True)
    assert LineReader(shell).line(what="bash to open the topic") == "open"
    assert subscribers(t) == 1
    for priority, text in ((1, "low\n"), (9, "high\n"), (5, "mid\n")):
        send(t, text, priority=priority)
    shell.stdin.write("go\n")
    shell.stdin.flush()
    status, out, _ = finish(shell, what="timeout to end cat")
    assert (status, out) == (124, "high\nmid\nlow\n")


def test_a_subscriber_gets_only_the_messages_published_after_its_open(mq, py):
    t = topic(mq)
    early = subscriber(py, t)
    send(t, "one")
    late = subscriber(py, t)
    send(t, "two")
    assert read_all(py, early) == [b"one", b"two"]
    assert read_all(py, late) == [b"two"]
    assert error_of(py.read, late) == errno.EAGAIN


def test_subscribers_counts_the_descriptors_open_for_reading_until_their_close(mq, py):
    t = topic(mq, read_mode="stream")
    r, rw, w = py.open(t, "r"), py.open(t, "rw"), py.open(t, "w")
    assert subscribers(t) == 2
    py.write(w, b"m")
    assert (py.read(r), py.read(rw)) == (b"m", b"m")
    py.close(r)
    assert subscribers(t) == 1
    py.close(rw)
    assert subscribers(t) == 0
    py.write(w, b"n")
    assert counts(t, "dropped") == (1,)


def test_a_killed_subscriber_is_no_longer_a_subscriber(mq, procs):
    t = topic(mq, maxmsg=1)
    cat = procs.start(["cat", t])
    wait_subscribers(t, 1)
    cat.kill()
    wait_subscribers(t, 0)
    send(t, "first", "second")  # blocking overflow, maxmsg 1: a subscriber would hold this back
    assert counts(t, "dropped") == (2,)


def test_a_blocking_read_of_a_subscriber_ends_after_the_topics_recv_timeout_ms(mq, procs):
    t = topic(mq, recv_timeout_ms=300)
    _, out, _ = finish(procs.qio(t, "open:r", "read"), what="the subscriber's read to time out")
    status, name, ms = parse_qio_read(out.splitlines()[-1])
    assert (status, name) == ("ERR", "ETIMEDOUT") and ms >= 250
    assert counts(t, "subscribers") == (0,)


def test_a_message_mode_subscriber_at_end_of_file_is_no_longer_a_subscriber(mq, py):
    t = topic(mq, maxmsg=1)
    h = subscriber(py, t, mode=0)
    send(t, "first")
    assert py.read(h) == b"first"
    assert py.read(h) == b""
    assert subscribers(t) == 0
    send(t, "second", "third")  # blocking overflow, maxmsg 1: a subscriber would hold this back
    assert counts(t, "dropped") == (2,)
    assert py.read(h) == b""


def test_a_line_framed_stream_subscriber_reads_many_messages_in_one_read(mq, py):
    t = topic(mq, framing="line")
    h = subscriber(py, t)
    send(t, "a\nb\nc\n")
    assert py.read(h) == b"a\nb\nc\n"
    assert counts(t, "sent") == (3,)


# -- lasting subscriptions -------------------------------------------------------------------------

def test_a_subscribed_queue_keeps_a_copy_with_its_priority_and_type(mq, py):
    t = topic(mq)
    q = queue(mq, "q", subscribe="/t")
    assert subscribers(t) == 1
    h = subscriber(py, t)
    assert subscribers(t) == 2
    publish_typed(t, b"news", 4, priority=7)
    assert counts(q, "curmsgs", "curbytes") == (1, 4)
    assert counts(t, "curmsgs", "sent", "dropped") == (0, 1, 0)
    for copy in (lease(py, reader(py, q, ack=0)), lease(py, h)):
        data, d = copy
        assert (data, d.type, d.priority) == (b"news", 4, 7)


def test_subscribe_to_two_topics_is_printed_back_with_leading_slashes(mq):
    t1, t2 = topic(mq, "t1"), topic(mq, "news/t2")
    q = queue(mq, "q", subscribe="t1,/news/t2")
    assert attr(q, "subscribe") == "/t1,/news/t2"
    assert (subscribers(t1), subscribers(t2)) == (1, 1)
    send(t1, "from t1")
    send(t2, "from t2")
    assert drain(q) == ["from t1", "from t2"]


def test_a_path_named_twice_is_kept_once(mq):
    t = topic(mq)
    q = queue(mq, "q", subscribe="/t,t")
    assert attr(q, "subscribe") == "/t"
    assert subscribers(t) == 1
    send(t, "once")
    assert drain(q) == ["once"]


def test_setting_subscribe_replaces_the_list_and_empty_ends_every_subscription(mq):
    t1, t2 = topic(mq, "t1"), topic(mq, "t2")
    q = queue(mq, "q", subscribe="/t1")
    set_attr(q, "subscribe", "/t2")
    assert attr(q, "subscribe") == "/t2"
    assert (subscribers(t1), subscribers(t2)) == (0, 1)
    send(t1, "old")
    send(t2, "new")
    set_attr(q, "subscribe", "")
    assert (attr(q, "subscribe"), subscribers(t2)) == ("", 0)
    send(t2, "after")
    assert drain(q) == ["new"]
    assert counts(t1, "dropped") + counts(t2, "dropped") == (1, 1)


@pytest.mark.parametrize("value", ["/a//b", "/a/../b", "./t", "/t/", "/", "/t,/", "/a\nb", "/" + "x" * 4096],
                         ids=lambda v: repr(v) if len(v) < 10 else f"{len(v)} bytes")
def test_a_malformed_subscribe_list_is_einval_and_changes_nothing(mq, value):
    topic(mq)
    q = queue(mq, "q", subscribe="/t")
    assert errno_of(set_attr, q, "subscribe", value) == errno.EINVAL
    assert attr(q, "subscribe") == "/t"


def test_subscribe_on_a_topic_is_einval(mq):
    topic(mq, "t1")
    t2 = topic(mq, "t2")
    assert errno_of(set_attr, t2, "subscribe", "/t1") == errno.EINVAL
    assert attr(t2, "subscribe") == ""


def test_each_subscribed_queue_gives_its_copy_an_id_of_its_own(mq, py):
    t = topic(mq)
    q1, q2 = queue(mq, "q1", subscribe="/t"), queue(mq, "q2", subscribe="/t")
    send(t, "shared")
    send(q1, "later")
    ids = [lease(py, reader(py, q, ack=0))[1].id for q in (q1, q2)]
    assert ids[0] != ids[1]
    h = reader(py, q1, ack=0)
    assert lease(py, h)[0] == b"later"
    assert py.delivery(h).id > max(ids)


def test_a_subscription_to_a_path_that_names_nothing_yet_takes_the_topic_made_there_later(mq):
    q = queue(mq, "q", subscribe="/later/t")
    assert attr(q, "subscribe") == "/later/t"
    t = topic(mq, "later/t")
    assert subscribers(t) == 1
    send(t, "found")
    assert drain(q) == ["found"]


def test_subscribe_paths_are_resolved_at_each_publish(mq):
    t = topic(mq)
    q = queue(mq, "q", subscribe="/t")
    os.rename(t, mq / "moved")
    assert subscribers(mq / "moved") == 0
    send(mq / "moved", "to the moved topic")
    t = topic(mq)
    assert subscribers(t) == 1
    send(t, "to the new t")
    assert drain(q) == ["to the new t"]
    assert counts(mq / "moved", "dropped") == (1,)


# -- a full subscriber -----------------------------------------------------------------------------

def test_overflow_block_a_full_descriptor_subscriber_holds_back_the_publisher(mq, py, procs):
    t = topic(mq, maxmsg=1)
    full, other = subscriber(py, t), subscriber(py, t)
    send(t, "a")
    assert py.read(other) == b"a"
    assert errno_of(put, t, b"b") == errno.EAGAIN
    assert error_of(py.read, other) == errno.EAGAIN  # nothing was published
    writer = blocked_publisher(procs, t, "b")
    assert error_of(py.read, other) == errno.EAGAIN
    assert py.read(full) == b"a"
    published(writer)
    assert (read_all(py, full), read_all(py, other)) == ([b"b"], [b"b"])
    assert counts(t, "sent", "dropped") == (2, 0)


def test_overflow_block_a_full_subscribed_queue_holds_back_the_publisher(mq, procs):
    t = topic(mq)
    q = queue(mq, "q", maxmsg=1, subscribe="/t")
    send(t, "a")
    assert errno_of(put, t, b"b") == errno.EAGAIN
    writer = blocked_publisher(procs, t, "b")
    assert counts(q, "curmsgs") == (1,)
    assert take(q) == b"a"
    published(writer)
    assert drain(q) == ["b"]
    assert counts(q, "dropped") == (0,)


def test_overflow_block_send_timeout_ms_is_etimedout_and_publishes_nothing(mq, py, procs):
    t = topic(mq, maxmsg=1, send_timeout_ms=300)
    full, other = subscriber(py, t), subscriber(py, t)
    send(t, "a")
    assert py.read(other) == b"a"
    _, out, _ = finish(procs.qio(t, "open:w", "write:b"), what="the publisher to time out")
    status, name, ms = parse_qio_write(out.splitlines()[-1])
    assert (status, name) == ("ERR", "ETIMEDOUT") and ms >= 250
    assert error_of(py.read, other) == errno.EAGAIN
    assert read_all(py, full) == [b"a"]


def test_overflow_block_a_signal_gives_the_blocked_publisher_eintr_and_publishes_nothing(mq, py, procs):
    t = topic(mq, maxmsg=1)
    full, other = subscriber(py, t), subscriber(py, t)
    send(t, "a")
    assert py.read(other) == b"a"
    writer = procs.qio(t, f"catch:{int(signal.SIGUSR1)}", "open:w", "write:b")
    wait_blocked(writer, SYS_WRITE, what="the publisher to wait for room")
    os.kill(writer.pid, signal.SIGUSR1)
    _, out, _ = finish(writer, what="the interrupted publisher")
    assert parse_qio_write(out.splitlines()[2])[:2] == ("ERR", "EINTR"), out
    assert error_of(py.read, other) == errno.EAGAIN
    assert read_all(py, full) == [b"a"]
    assert counts(t, "sent") == (1,)


def test_overflow_drop_a_full_descriptor_subscriber_misses_the_message_and_the_topics_dropped_counts_it(mq, py):
    t = topic(mq, maxmsg=1, overflow="drop")
    full, other = subscriber(py, t), subscriber(py, t)
    send(t, "a")
    assert py.read(other) == b"a"
    assert put(t, b"b") == 1
    assert read_all(py, other) == [b"b"]
    assert read_all(py, full) == [b"a"]
    assert counts(t, "sent", "dropped") == (2, 1)


def test_overflow_drop_a_full_subscribed_queue_misses_the_message_and_its_own_dropped_counts_it(mq):
    t = topic(mq, overflow="drop")
    full, other = queue(mq, "full", maxmsg=1, subscribe="/t"), queue(mq, "other", subscribe="/t")
    send(t, "a", "b")
    assert (drain(full), drain(other)) == (["a"], ["a", "b"])
    assert counts(full, "dropped") == (1,)
    assert counts(other, "dropped") + counts(t, "dropped") == (0, 0)


def test_concurrent_publishers_reach_every_subscriber_once_each_in_its_order(mq, procs):
    publishers, each, count = 3, 20, 3
    t = topic(mq, maxmsg=4)
    subs = [procs.qio(t, "open:r", "mode:1", "ready", *["read"] * (publishers * each)) for _ in range(count)]
    for p in subs:
        out = LineReader(p)
        assert [out.line(what="a subscriber to open") for _ in range(3)] == ["open OK", "mode OK", "ready"]
    wait_subscribers(t, count)
    writers = [procs.qio(t, "open:w", *[f"write:p{w}-{i}" for i in range(each)]) for w in range(publishers)]
    for w in writers:
        status, out, _ = finish(w, timeout=60, what="a publisher to send everything")
        assert status == 0 and out.count("write OK") == each, out
    for p in subs:
        _, out, _ = finish(p, timeout=60, what="a subscriber to read everything")
        got = [parse_qio_read(line)[1] for line in out.splitlines() if line.startswith("read")]
        assert sorted(got) == sorted(f"p{w}-{i}" for w in range(publishers) for i in range(each))
        for w in range(publishers):
            assert [m for m in got if m.startswith(f"p{w}-")] == [f"p{w}-{i}" for i in range(each)]
    assert counts(t, "sent", "dropped", "curmsgs") == (publishers * each, 0, 0)


# -- poll, selection, leases -----------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["poll", "epoll"])
def test_a_topic_descriptor_is_readable_when_its_buffer_holds_a_message_and_a_publisher_writable(mq, procs, mech):
    t = topic(mq, read_mode="stream")
    sub = Readiness(procs, mech, f"r:{t}")
    pub = Readiness(procs, mech, f"w:{t}")
    wait_subscribers(t, 1)
    assert (sub.wait(0), pub.wait(0)) == ({}, {0: {"OUT"}})
    send(t, "a")
    assert sub.wait(0) == {0: {"IN"}}
    assert sub.read(0) == "read 0 OK a"
    assert sub.wait(0) == {}
    sub.start_wait()
    send(t, "b")
    assert sub.woken() == {0: {"IN"}}
    sub.quit()
    pub.quit()


def test_a_selective_descriptor_subscriber_reads_only_the_type_it_selects(mq, py):
    t = topic(mq)
    h = subscriber(py, t)
    select_type(h, 2)
    publish_typed(t, b"type 1", 1)
    assert not py.readable(h)
    assert error_of(py.read, h) == errno.EAGAIN
    publish_typed(t, b"type 2", 2)
    assert py.readable(h)
    assert py.read(h) == b"type 2"
    assert error_of(py.read, h) == errno.EAGAIN
    select_type(h, 0)
    assert py.read(h) == b"type 1"


@pytest.mark.parametrize("how", ["nack", "expiry"])
def test_a_message_returned_by_a_descriptor_subscriber_comes_back_to_it(mq, py, how):
    t = topic(mq, lease_ms=300 if how == "expiry" else 30000)
    h = reader(py, t, ack=EXPLICIT)
    other = subscriber(py, t)
    send(t, "a")
    _, first = lease(py, h)
    assert error_of(py.read, h) == errno.EAGAIN
    if how == "nack":
        py.nack(h, first.id)
    else:
        wait_until(lambda: py.readable(h), what="the lease to run out")
    data, again = lease(py, h)
    assert (data, again.id, again.deliveries) == (b"a", first.id, 2)
    py.ack(h, again.id)
    assert read_all(py, h) == []
    assert read_all(py, other) == [b"a"]
    assert counts(t, "curmsgs") == (0,)


@pytest.mark.parametrize("held", ["buffered", "leased"])
def test_a_closing_descriptor_subscriber_frees_what_it_holds(mq, py, held):
    t = topic(mq)
    h = reader(py, t, ack=EXPLICIT)
    send(t, "x" * 5000)
    if held == "leased":
        assert len(lease(py, h)[0]) == 5000
    assert bytes_used(mq) > 5000
    py.close(h)
    wait_until(lambda: bytes_used(mq) == 0, what="the subscriber's message to be freed")
    assert counts(t, "curmsgs", "subscribers") == (0, 0)


def test_a_subscribed_queue_leases_its_copies_and_counts_them_against_its_maxmsg(mq, py):
    t = topic(mq, overflow="drop")
    q = queue(mq, "q", maxmsg=1, subscribe="/t")
    send(t, "a")
    h = reader(py, q, ack=EXPLICIT)
    _, a = lease(py, h)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    send(t, "b")  # Q is full with its lease
    assert counts(q, "dropped") == (1,)
    py.nack(h, a.id)
    assert counts(q, "curmsgs", "inflight") == (1, 0)
    py.close(h)
    assert drain(q) == ["a"]


# -- back to a queue -------------------------------------------------------------------------------

def test_kind_queue_turns_a_topic_back_into_a_queue_its_subscribers_keep_what_they_hold(mq, py):
    t = topic(mq)
    h = subscriber(py, t)
    q = queue(mq, "q", subscribe="/t")
    send(t, "to subscribers")
    set_attr(t, "kind", "queue")
    assert subscribers(t) == 0
    send(t, "queued")
    assert counts(t, "curmsgs") == (1,)
    assert py.read(h) == b"to subscribers"
    assert drain(q) == ["to subscribers"]
    assert take(t) == b"queued"


def test_descriptors_opened_before_the_queue_became_a_topic_are_not_subscribers(mq, py):
    q = queue(mq)
    h = py.open(q)
    set_attr(q, "kind", "topic")
    assert subscribers(q) == 0
    send(q, "m")
    assert counts(q, "dropped") == (1,)
    assert error_of(py.read, h) == errno.EAGAIN


# -- durable: -o store=DIR -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_kind_overflow_subscriptions_counters_and_copies_survive_a_restart(mount_mqfs, py, tmp_path, how):
    m = mount_mqfs(f"store={tmp_path / 'store'}")
    t = topic(m, overflow="drop")
    q = queue(m, "q", subscribe="t")
    lonely = topic(m, "lonely")
    publish_typed(t, b"kept", 3, priority=6)
    send(lonely, "lost")
    restart(m, how)
    assert (attr(t, "kind"), attr(t, "overflow"), attr(q, "subscribe")) == ("topic", "drop", "/t")
    assert (attr(lonely, "dropped"), subscribers(t)) == ("1", 1)
    data, d = lease(py, reader(py, q, ack=0))
    assert (data, d.type, d.priority) == (b"kept", 3, 6)
    send(t, "after")
    assert drain(q) == ["after"]


# -- the mount's byte budget -----------------------------------------------------------------------

def test_a_message_published_to_many_subscribers_counts_its_body_once_against_max_bytes(mount_mqfs):
    size, count = 4000, 10
    budget = 16 << 10
    assert size + count * MESSAGE_OVERHEAD < budget / 2 and count * (size + MESSAGE_OVERHEAD) > budget
    m = mount_mqfs(f"max_bytes={budget}")
    t = topic(m)
    subs = [queue(m, f"q{i}", subscribe="/t") for i in range(count)]
    used = [bytes_used(m)]
    for body in (b"a" * size, b"b" * size):
        assert put(t, body) == size
        used.append(bytes_used(m))
    # `df`: each publish costs its body once and some bookkeeping for each copy.
    costs = [after - before for before, after in zip(used, used[1:])]
    assert all(size < cost < size + 2 * count * MESSAGE_OVERHEAD for cost in costs), costs
    assert all(counts(q, "curmsgs", "curbytes") == (2, 2 * size) for q in subs)
    for q in subs:
        assert drain(q) == ["a" * size, "b" * size]
        set_attr(q, "subscribe", "")
    wait_until(lambda: bytes_used(m) == 0, what="the shared bodies to be freed with their last copy")
    # The same bytes sent as private copies do not fit.
    results = [errno_of(put, q, b"c" * size) for q in subs]
    assert errno.ENOSPC in results, results


# -- from C ----------------------------------------------------------------------------------------

def test_publish_and_subscribe_from_c_with_poll(mq):
    result = subprocess.run([program("topic_check"), mq.path], capture_output=True, text=True, timeout=60)
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") >= 55
