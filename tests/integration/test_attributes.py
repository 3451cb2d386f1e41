"""SPEC section 5, attributes: the user.mq.* xattrs (list, set, get, remove,
bad values, read-only counters), lowering limits, the mount options that set
every default, the global caps on queues and bytes, and df."""
import errno
import os
import subprocess
import time

import pytest

from helpers import (ALL_ATTRIBUTES, MAX_MSGSIZE, MESSAGE_OVERHEAD, SYS_WRITE, WRITABLE_DEFAULTS,
                     assert_still_blocked, attr, errno_of, finish, iattr, pattern, program, put, read_sizes,
                     statfs, take, wait_blocked, wait_until, write_sizes)

NEW_VALUES = {"priority": "7", "maxmsg": "3", "msgsize": "100", "read_mode": "stream",
              "recv_timeout_ms": "1500", "send_timeout_ms": "2500"}


def getfattr_d(mount, name):
    """`getfattr -d NAME` as a dict of user.mq.* names (without the prefix) to values."""
    out = mount.sh(f"getfattr -d {name}").stdout
    values = {}
    for line in out.splitlines():
        if line.startswith("user.mq."):
            key, _, value = line.partition("=")
            values[key[len("user.mq."):]] = value.strip('"')
    return values


# -- listing and reading ------------------------------------------------------------

def test_getfattr_d_lists_every_attribute_with_its_value(mq):
    mq.sh("touch q")
    values = getfattr_d(mq, "q")
    assert set(ALL_ATTRIBUTES) <= set(values), f"missing: {set(ALL_ATTRIBUTES) - set(values)}"
    expected = dict(WRITABLE_DEFAULTS, curmsgs="0", curbytes="0", sent="0", received="0", lspid="0", lrpid="0")
    assert {k: values[k] for k in ALL_ATTRIBUTES} == expected
    names = [n.decode() if isinstance(n, bytes) else n for n in os.listxattr(mq / "q")]
    assert set("user.mq." + a for a in ALL_ATTRIBUTES) <= set(names)
    mq.sh("echo hello > q")
    values = getfattr_d(mq, "q")
    assert (values["curmsgs"], values["curbytes"], values["sent"]) == ("1", "6", "1")


def test_getfattr_n_prints_one_value(mq):
    mq.sh("touch q")
    assert mq.sh("getfattr -n user.mq.maxmsg --only-values q").stdout == "10"
    assert mq.sh("getfattr -n user.mq.read_mode --only-values q").stdout == "message"


# -- writable attributes ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NEW_VALUES))
def test_each_writable_attribute_can_be_set_read_and_removed(mq, name):
    q = mq / "q"
    mq.sh("touch q")
    assert attr(q, name) == WRITABLE_DEFAULTS[name]
    mq.sh(f"setfattr -n user.mq.{name} -v {NEW_VALUES[name]} q")
    assert attr(q, name) == NEW_VALUES[name]
    assert mq.sh(f"getfattr -n user.mq.{name} --only-values q").stdout == NEW_VALUES[name]
    # Only that attribute changed.
    others = {k: attr(q, k) for k in WRITABLE_DEFAULTS if k != name}
    assert others == {k: v for k, v in WRITABLE_DEFAULTS.items() if k != name}
    # Removing it restores the default.
    mq.sh(f"setfattr -x user.mq.{name} q")
    assert attr(q, name) == WRITABLE_DEFAULTS[name]
    # Removing it again is fine: it is there, at its default.
    mq.sh(f"setfattr -x user.mq.{name} q")
    assert attr(q, name) == WRITABLE_DEFAULTS[name]


@pytest.mark.parametrize("name,value", [("priority", "32767"), ("priority", "0"), ("maxmsg", "1"),
                                        ("msgsize", "1"), ("msgsize", str(MAX_MSGSIZE)),
                                        ("read_mode", "message"), ("recv_timeout_ms", "0")])
def test_limit_values_are_accepted(mq, name, value):
    mq.sh("touch q")
    os.setxattr(mq / "q", "user.mq." + name, value.encode())
    assert attr(mq / "q", name) == value


def test_xattr_create_flag_fails_with_eexist_and_replace_works(mq):
    q = mq / "q"
    mq.sh("touch q")
    assert errno_of(os.setxattr, q, "user.mq.maxmsg", b"5", os.XATTR_CREATE) == errno.EEXIST
    assert attr(q, "maxmsg") == "10"
    os.setxattr(q, "user.mq.maxmsg", b"5", os.XATTR_REPLACE)
    assert attr(q, "maxmsg") == "5"


BAD_VALUES = [
    ("priority", b"-1"), ("priority", b"32768"), ("priority", b"abc"), ("priority", b""), ("priority", b"1.5"),
    ("priority", b"+3"), ("priority", b" 3"), ("priority", b"3 "), ("priority", b"0x10"), ("priority", b"99999999999999999999"),
    ("maxmsg", b"0"), ("maxmsg", b"-5"), ("maxmsg", b"ten"),
    ("msgsize", b"0"), ("msgsize", str(MAX_MSGSIZE + 1).encode()), ("msgsize", b"1048576"), ("msgsize", b"8k"),
    ("read_mode", b"streams"), ("read_mode", b"STREAM"), ("read_mode", b""), ("read_mode", b"1"),
    ("recv_timeout_ms", b"-1"), ("recv_timeout_ms", b"soon"), ("send_timeout_ms", b"-1"), ("send_timeout_ms", b"1e3"),
]


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_bad_value_fails_with_einval_and_changes_nothing(mq, name, value):
    q = mq / "q"
    mq.sh("touch q")
    os.setxattr(q, "user.mq." + name, NEW_VALUES[name].encode())
    before = {k: attr(q, k) for k in WRITABLE_DEFAULTS}
    ctime = os.stat(q).st_ctime_ns
    assert errno_of(os.setxattr, q, "user.mq." + name, value) == errno.EINVAL
    assert {k: attr(q, k) for k in WRITABLE_DEFAULTS} == before
    assert os.stat(q).st_ctime_ns == ctime


def test_setfattr_reports_a_bad_value(mq):
    mq.sh("touch q")
    result = mq.sh("setfattr -n user.mq.maxmsg -v 0 q", check=False)
    assert result.returncode != 0 and "Invalid argument" in result.stderr
    assert attr(mq / "q", "maxmsg") == "10"


# -- read-only and unknown names -----------------------------------------------------------

@pytest.mark.parametrize("name", ["curmsgs", "curbytes", "sent", "received", "lspid", "lrpid"])
def test_read_only_attribute_cannot_be_set_or_removed(mq, name):
    q = mq / "q"
    mq.sh("echo m > q")
    before = attr(q, name)
    assert errno_of(os.setxattr, q, "user.mq." + name, b"5") == errno.EPERM
    assert errno_of(os.removexattr, q, "user.mq." + name) == errno.EPERM
    result = mq.sh(f"setfattr -n user.mq.{name} -v 0 q", check=False)
    assert result.returncode != 0 and "Operation not permitted" in result.stderr
    assert attr(q, name) == before


@pytest.mark.parametrize("name", ["user.mq.nosuch", "user.mq.", "user.mq.MAXMSG", "user.other", "user.mqmaxmsg"])
def test_unknown_name_set_is_enotsup_get_and_remove_are_enodata(mq, name):
    q = mq / "q"
    mq.sh("touch q")
    assert errno_of(os.setxattr, q, name, b"1") == errno.ENOTSUP
    assert errno_of(os.getxattr, q, name) == errno.ENODATA
    assert errno_of(os.removexattr, q, name) == errno.ENODATA
    assert name.encode() not in [n.encode() for n in os.listxattr(q)]
    assert {k: attr(q, k) for k in WRITABLE_DEFAULTS} == WRITABLE_DEFAULTS


def test_directories_have_no_queue_attributes(mq):
    mq.sh("mkdir d")
    assert errno_of(os.getxattr, mq / "d", "user.mq.maxmsg") == errno.ENODATA
    assert errno_of(os.setxattr, mq / "d", "user.mq.maxmsg", b"5") == errno.ENOTSUP
    assert errno_of(os.getxattr, mq.path, "user.mq.curmsgs") == errno.ENODATA
    assert [n for n in os.listxattr(mq / "d") if n.startswith("user.mq.")] == []
    assert mq.sh("getfattr -d d").stdout == ""


# -- changing limits of a queue in use ----------------------------------------------------------

def test_lowering_maxmsg_below_curmsgs_keeps_messages_and_blocks_writers_until_below(mq, procs):
    q = mq / "q"
    mq.sh("touch q")
    assert write_sizes(q, "1", "2", "3", "4", "5") == [1] * 5
    mq.sh("setfattr -n user.mq.maxmsg -v 2 q")
    assert (attr(q, "maxmsg"), iattr(q, "curmsgs")) == ("2", 5)
    assert errno_of(put, q, b"x") == errno.EAGAIN
    writer = procs.start([program("write_sizes"), q, "6"], text=True)
    wait_blocked(writer, SYS_WRITE, "the writer of the over-full queue")
    assert [take(q) for _ in range(3)] == [b"1", b"2", b"3"]
    # Two left: still not below maxmsg.
    assert_still_blocked(writer, SYS_WRITE)
    assert iattr(q, "curmsgs") == 2
    assert take(q) == b"4"
    assert finish(writer)[:2] == (0, "1\n")
    assert [take(q), take(q)] == [b"5", b"6"]


def test_raising_maxmsg_lets_waiting_writers_in(mq, procs):
    """Raised before a writer blocks, maxmsg takes effect at once; raised
    while a writer waits, too: the waiting writer goes in."""
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo 1 > q")
    mq.sh("setfattr -n user.mq.maxmsg -v 2 q && echo 2 > q")
    assert iattr(q, "curmsgs") == 2
    writer = procs.start([program("write_sizes"), q, "3"], text=True)
    wait_blocked(writer, SYS_WRITE, "the writer of the full queue")
    raise_it = procs.start(["setfattr", "-n", "user.mq.maxmsg", "-v", "4", q], text=True)
    raise_it.communicate(timeout=5)
    assert raise_it.returncode == 0
    assert finish(writer)[:2] == (0, "1\n")
    assert (attr(q, "maxmsg"), iattr(q, "curmsgs")) == ("4", 3)
    assert take(q) == b"1\n"


def test_attributes_can_be_read_while_a_writer_is_blocked(mq, procs):
    q = mq / "q"
    mq.sh("touch q && setfattr -n user.mq.maxmsg -v 1 q && echo 1 > q")
    writer = procs.start([program("write_sizes"), q, "2"], text=True)
    wait_blocked(writer, SYS_WRITE, "the writer of the full queue")
    assert (attr(q, "curmsgs"), attr(q, "maxmsg")) == ("1", "1")
    assert mq.sh("getfattr -d q").stdout.count("user.mq.") == 28
    assert_still_blocked(writer, SYS_WRITE, seconds=0.1)


def test_lowering_msgsize_affects_only_later_writes(mq):
    q = mq / "q"
    mq.sh("touch q")
    put(q, b"x" * 100)
    mq.sh("setfattr -n user.mq.msgsize -v 10 q")
    assert (iattr(q, "curmsgs"), iattr(q, "curbytes")) == (1, 100)
    assert errno_of(put, q, b"y" * 11) == errno.EMSGSIZE
    assert put(q, b"y" * 10) == 10
    assert read_sizes(q, 1000) == [b"x" * 100]  # the queued message is whole
    assert take(q) == b"y" * 10


# -- counters ---------------------------------------------------------------------------------

def test_counters_and_last_pids(mq):
    q = mq / "q"
    mq.sh("touch q")
    writer = subprocess.Popen([program("write_sizes"), q, "one", "three", "#5"], stdout=subprocess.PIPE)
    assert finish(writer)[:2] == (0, b"3\n5\n5\n")
    assert iattr(q, "lspid") == writer.pid
    assert (iattr(q, "curmsgs"), iattr(q, "curbytes"), iattr(q, "sent"), iattr(q, "received")) == (3, 13, 3, 0)
    assert iattr(q, "lrpid") == 0

    reader = subprocess.Popen(["cat", q], stdout=subprocess.PIPE)
    assert finish(reader)[:2] == (0, b"one")
    assert iattr(q, "lrpid") == reader.pid
    assert (iattr(q, "curmsgs"), iattr(q, "curbytes"), iattr(q, "sent"), iattr(q, "received")) == (2, 10, 3, 1)

    shell = subprocess.Popen(["bash", "-c", "echo x > q"], cwd=mq.path)
    assert shell.wait(timeout=10) == 0
    assert iattr(q, "lspid") == shell.pid
    assert iattr(q, "lrpid") == reader.pid

    # Failed writes and reads count nothing.
    assert errno_of(put, q, b"z" * 8193) == errno.EMSGSIZE
    assert (iattr(q, "sent"), iattr(q, "curmsgs")) == (4, 3)
    # A purge empties the queue; the history stays.
    mq.sh("truncate -s 0 q")
    assert (iattr(q, "curmsgs"), iattr(q, "curbytes"), iattr(q, "sent"), iattr(q, "received")) == (0, 0, 4, 1)
    assert errno_of(take, q) == errno.EAGAIN
    assert iattr(q, "received") == 1


def test_counters_belong_to_the_queue_not_the_name(mq):
    mq.sh("echo a > q; cat q; rm q; touch q")
    assert (attr(mq / "q", "sent"), attr(mq / "q", "received"), attr(mq / "q", "lspid")) == ("0", "0", "0")


# -- mount options ------------------------------------------------------------------------------

def test_every_mount_option_sets_the_default_of_new_queues(mount_mqfs):
    m = mount_mqfs("priority=3", "maxmsg=4", "msgsize=512", "read_mode=stream", "recv_timeout_ms=700",
                   "send_timeout_ms=800")
    q = m / "q"
    m.sh("touch q")
    expected = {"priority": "3", "maxmsg": "4", "msgsize": "512", "read_mode": "stream",
                "recv_timeout_ms": "700", "send_timeout_ms": "800"}
    assert {k: attr(q, k) for k in expected} == expected
    assert getfattr_d(m, "q")["maxmsg"] == "4"
    assert os.stat(q).st_blksize == 512
    # Removing an attribute restores the mount's default, not the built-in one.
    m.sh("setfattr -n user.mq.maxmsg -v 9 q && setfattr -x user.mq.maxmsg q")
    assert attr(q, "maxmsg") == "4"
    # And they act: msgsize and maxmsg...
    assert errno_of(put, q, b"x" * 513) == errno.EMSGSIZE
    assert write_sizes(q, "a", "b", "#512") == [1, 1, 512]
    # ...priority 3 (above a message written at 2)...
    os.setxattr(q, "user.mq.priority", b"2")
    assert write_sizes(q, "low") == [3]
    assert errno_of(put, q, b"full") == errno.EAGAIN
    # ...stream mode: one open file takes message after message...
    assert read_sizes(q, 600, 600, 600, 600, nonblock=True) == [b"a", b"b", pattern(512), b"low"]
    # ...and the timeouts.
    start = time.monotonic()
    assert read_sizes(q, 100) == [errno.ETIMEDOUT]
    assert 0.6 <= time.monotonic() - start < 5
    assert write_sizes(q, "1", "2", "3", "4") == [1] * 4
    start = time.monotonic()
    assert write_sizes(q, "5") == [-errno.ETIMEDOUT]
    assert 0.7 <= time.monotonic() - start < 5
    assert iattr(q, "curmsgs") == 4


def test_mount_options_in_one_o_argument(mount_mqfs):
    m = mount_mqfs("maxmsg=100,msgsize=4096")
    m.sh("mkdir -p d && touch d/q")
    assert (attr(m / "d/q", "maxmsg"), attr(m / "d/q", "msgsize")) == ("100", "4096")
    assert attr(m / "d/q", "priority") == "0"


def test_mount_option_defaults_do_not_change_existing_settings_by_removal_of_others(mount_mqfs):
    m = mount_mqfs("read_mode=stream")
    m.sh("touch q && setfattr -n user.mq.maxmsg -v 2 q && setfattr -x user.mq.read_mode q")
    assert (attr(m / "q", "read_mode"), attr(m / "q", "maxmsg")) == ("stream", "2")


# -- global caps --------------------------------------------------------------------------------

def test_max_queues_caps_queues_and_directories_with_enospc(mount_mqfs):
    m = mount_mqfs("max_queues=3")
    m.sh("mkdir d && touch d/x y")
    for command in ("touch z", "mkdir e", "echo hi > z", "touch d/z"):
        result = m.sh(command, check=False)
        assert result.returncode != 0 and "No space left on device" in result.stderr, command
    assert errno_of(os.open, m / "z", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENOSPC
    assert errno_of(os.mknod, m / "z") == errno.ENOSPC
    assert errno_of(os.mkdir, m / "e") == errno.ENOSPC
    assert sorted(os.listdir(m.path)) == ["d", "y"] and os.listdir(m / "d") == ["x"]
    # Existing queues still work.
    m.sh("echo still > y")
    assert m.sh("cat y").stdout == "still\n"
    # Room comes back when one goes.
    m.sh("rm y")
    wait_until(lambda: statfs(m.path)["ffree"] == 1, what="the removed queue to be freed")
    m.sh("touch z")
    assert errno_of(os.mkdir, m / "e") == errno.ENOSPC


def test_max_bytes_caps_bytes_in_all_queues_with_enospc(mount_mqfs):
    m = mount_mqfs("max_bytes=8k")
    a, b = m / "a", m / "b"
    m.sh("touch a b")
    assert put(a, b"a" * 6000) == 6000
    assert errno_of(put, b, b"b" * 3000) == errno.ENOSPC
    assert (iattr(b, "curmsgs"), iattr(b, "sent")) == (0, 0)
    room = 8192 - 6000 - 2 * MESSAGE_OVERHEAD  # each message counts its bookkeeping as well
    assert errno_of(put, b, b"b" * (room + 1)) == errno.ENOSPC
    assert put(b, b"b" * room) == room  # exactly full
    assert errno_of(put, a, b"1") == errno.ENOSPC
    result = m.sh("echo more > b", check=False)
    assert result.returncode != 0 and "No space left on device" in result.stderr
    assert (iattr(a, "curmsgs"), iattr(b, "curmsgs")) == (1, 1)
    assert take(a) == b"a" * 6000
    assert put(b, b"b" * 3000) == 3000


def test_max_bytes_counts_a_message_held_in_parts_by_an_open_file(mount_mqfs):
    m = mount_mqfs("max_bytes=8k")
    q = m / "q"
    m.sh("touch q")
    put(q, b"x" * (8192 - MESSAGE_OVERHEAD))
    fd = os.open(q, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(fd, 10) == b"x" * 10
        assert errno_of(put, q, b"y") == errno.ENOSPC
    finally:
        os.close(fd)
    wait_until(lambda: errno_of(put, q, b"y") is None, what="the dropped rest to free its bytes")


@pytest.mark.parametrize("option,size", [("max_bytes=1M", 1 << 20), ("max_bytes=2G", 2 << 30),
                                         ("max_bytes=40960", 40960), ("max_bytes=64K", 64 << 10)])
def test_df_shows_the_byte_cap_and_its_use(mount_mqfs, option, size):
    m = mount_mqfs(option)
    # Filesystem 1B-blocks Used Available Use% Mounted on
    fields = lambda: [int(x) for x in m.sh(f"df -B1 {m.path}").stdout.splitlines()[1].split()[1:4]]
    assert fields() == [size, 0, size]
    m.sh("touch q")
    write_sizes(m / "q", "#4096", "#4096", "#4096")
    used = 3 * (4096 + MESSAGE_OVERHEAD)
    assert fields() == [size, used, size - used]
    take(m / "q")
    used = 2 * (4096 + MESSAGE_OVERHEAD)
    assert fields() == [size, used, size - used]


def test_df_i_shows_the_queue_cap_and_its_use(mount_mqfs):
    m = mount_mqfs("max_queues=50")
    # Filesystem Inodes IUsed IFree IUse% Mounted on
    fields = lambda: [int(x) for x in m.sh(f"df -i {m.path}").stdout.splitlines()[1].split()[1:4]]
    assert fields() == [50, 0, 50]
    m.sh("mkdir d && touch d/q r")
    assert fields() == [50, 3, 47]
    m.sh("rm r")
    wait_until(lambda: fields() == [50, 2, 48], what="df -i to show the removed queue freed")


def test_df_shows_default_caps(mq):
    st = statfs(mq.path)
    assert st["blocks"] * st["bsize"] == 1 << 30
    assert st["files"] == 65536
    out = mq.sh(f"df {mq.path}").stdout
    assert "mqfs" in out
