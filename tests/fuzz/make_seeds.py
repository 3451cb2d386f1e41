#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (corpus/<target>/).

The engine and framing targets decode their input with libFuzzer's
FuzzedDataProvider: integers from the end of the input, strings from the
start. `Input` below encodes the values a target will consume, in the order
it consumes them, so each seed here is a readable scenario. If a target's
decoding changes, the seeds stay valid inputs but mean something else:
update the scenarios and run this script again.

    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


class Input:
    """The bytes that make FuzzedDataProvider return the given values."""

    def __init__(self):
        self.front = b""  # strings, in order
        self.back = []    # integer bytes, in the order they are consumed

    def int(self, value, lo, hi):  # ConsumeIntegralInRange(lo, hi)
        assert lo <= value <= hi
        span, n = hi - lo, 0
        while n < 8 and span >> (8 * n) > 0:
            n += 1
        v = value - lo
        self.back += [(v >> (8 * (n - 1 - i))) & 0xFF for i in range(n)]
        return self

    def bool(self, value):
        return self.int(1 if value else 0, 0, 255)

    def u32(self, value):  # ConsumeIntegral<uint32_t>
        return self.int(value, 0, 2**32 - 1)

    def bytes(self, data):  # ConsumeBytesAsString(len(data))
        self.front += data
        return self

    def string(self, data):  # ConsumeRandomLengthString: "\\" escapes itself, "\\" + other ends
        self.front += data.replace(b"\\", b"\\\\") + b"\\;"
        return self

    def data(self):
        return self.front + bytes(reversed(self.back))


# --- engine_fuzz: each op is one step() of the harness ----------------------

WRITE, READ, OPEN, CLOSE, CONFIGURE, FILE_OPTIONS, TIME, INTERRUPT, PURGE_OR_POLL, NAME = 0, 4, 8, 9, 10, 11, 12, 13, 14, 15
ACK, ACK_MODE_OR_PEEK = 16, 18
STEPS = 21  # step() picks 0..STEPS
MAXMSG, MSGSIZE, PRIORITY, READ_MODE, RECV_TIMEOUT, SEND_TIMEOUT, FRAMING = range(7)
LEASE_MS, RETRY_DELAY_MS, MAX_DELIVERIES, DEAD_LETTER, TYPE, KIND, OVERFLOW, SUBSCRIBE = range(7, 15)
SUBSCRIPTIONS = [[], ["a"], ["b"], ["a", "b"], ["c"]]
# SPEC section 12: MQFS_IOC_SET_SELECT as pick_selection() decodes it.
ANY, EXACT, EXCEPT, LOWEST, LOWEST_OF_ALL = range(5)
DEAD_LETTERS = ["", "a", "/a", "b", "/b", "c"]


class Engine(Input):
    def __init__(self, maxmsg=3, msgsize=40, priority=0, stream=False, framing=0, recv_timeout=0, send_timeout=0,
                 max_nodes=2, max_bytes=None, max_waiters=None):
        super().__init__()
        self.files = 0
        self.int(max_nodes, 1, 3).bool(max_bytes is not None)
        if max_bytes is not None:
            self.int(max_bytes, 0, 4000)
        self.bool(max_waiters is not None)
        if max_waiters is not None:
            self.int(max_waiters, 0, 4)
        self.maxmsg(maxmsg).msgsize(msgsize).int(priority, 0, 3).bool(stream).int(framing, 0, 2)
        self.timeout(recv_timeout).timeout(send_timeout)

    def maxmsg(self, n):  # 1..4 (or 10)
        return self.int(0, 0, 3) if n == 10 else self.int(2, 0, 3).int(n, 1, 4)

    def msgsize(self, n):  # 1..40, or 8192
        return self.int(0, 0, 3) if n == 8192 else self.int(2, 0, 3).int(n, 1, 40)

    def timeout(self, ms):
        return self.bool(True) if ms == 0 else self.bool(False).int(ms, 1, 50)

    def file(self, index):
        if self.files > 1:
            self.int(index, 0, self.files - 1)
        return self

    def open(self, slot=0, access=2, stream=False):  # access: 0 read, 1 write, 2 both
        self.files += 1
        return self.int(OPEN, 0, STEPS).int(slot, 0, 1).int(access, 0, 2).bool(stream)

    def close(self, index):
        self.int(CLOSE, 0, STEPS).file(index)
        self.files -= 1
        return self

    def write(self, index, size, nonblocking=True, refuse=False):  # an unframed write of 1..8 bytes
        self.int(WRITE, 0, STEPS).file(index).bool(nonblocking).int(0 if refuse else 1, 0, 7).int(1, 0, 7)
        return self.int(0, 0, 3).int(size, 1, 8)

    def write_lines(self, index, sizes, msgsize, cut=None, nonblocking=True):  # line framing: lines of these sizes
        self.int(WRITE, 0, STEPS).file(index).bool(nonblocking).int(1, 0, 7).int(1, 0, 7)
        self.int(1, 0, 4).int(len(sizes), 1, 4)
        for size in sizes:
            self.int(3, 0, 3).int(size, 1, min(msgsize + 1, 200))
        return self.bool(cut is not None).int(cut, 1, sum(sizes)) if cut else self.bool(False)

    def write_frames(self, index, sizes, msgsize, bad=None, nonblocking=True):  # u32 framing
        self.int(WRITE, 0, STEPS).file(index).bool(nonblocking).int(1, 0, 7).int(1, 0, 7)
        self.int(1, 0, 4).int(len(sizes), 1, 4)
        for i, size in enumerate(sizes):
            self.int(3, 0, 3).int(size, 1, min(msgsize + 1, 200)).int(0 if i == bad else 5, 0, STEPS)
        return self.bool(False)

    def write_raw(self, index, data, header=None):  # raw bytes to a framed queue, maybe after a u32 header
        self.int(WRITE, 0, STEPS).file(index).bool(True).int(1, 0, 7).int(1, 0, 7)
        self.int(0, 0, 4).int(len(data), 1, 24).bytes(data).bool(header is not None)
        return self.int(header, 0, 8) if header is not None else self

    def read(self, index, size=300, nonblocking=True, refuse=False):
        assert 1 <= size <= 300
        self.int(READ, 0, STEPS).file(index).int(1, 0, 4).int(size, 1, 300)
        return self.bool(nonblocking).int(0 if refuse else 1, 0, 7).int(1, 0, 7)  # 0: the reply fails

    def value(self, v, first, second, lo, hi):  # pick_value
        return self.int(0, 0, 3) if v == first else self.int(1, 0, 3) if v == second else self.int(2, 0, 3).int(v, lo, hi)

    def configure(self, what, *values, slot=0):
        self.int(CONFIGURE, 0, STEPS).int(slot, 0, 1).int(what, 0, 14)
        if what == TYPE:
            return self.type(values[0])
        if what == KIND:  # queue <-> topic
            return self
        if what == OVERFLOW:  # "drop" or "block"
            return self.bool(values[0] == "drop")
        if what == SUBSCRIBE:
            return self.int(SUBSCRIPTIONS.index(values[0]), 0, 4)
        if what == LEASE_MS:
            return self.value(values[0], 30000, 2**40, 1, 60)
        if what == RETRY_DELAY_MS:
            return self.value(values[0], 0, 2**40, 1, 60)
        if what == MAX_DELIVERIES:
            return self.int(values[0], 0, 3)
        if what == DEAD_LETTER:
            return self.int(DEAD_LETTERS.index(values[0]), 0, 5)
        if what == MAXMSG:
            return self.maxmsg(values[0])
        if what == MSGSIZE:
            return self.msgsize(values[0])
        if what == PRIORITY:
            return self.bool(False).int(values[0], 0, 3)
        if what in (READ_MODE,):
            return self.bool(values[0])
        if what in (RECV_TIMEOUT, SEND_TIMEOUT):
            return self.timeout(values[0])
        return self.int(values[0], 0, 2)

    def file_priority(self, index, priority):
        return self.int(FILE_OPTIONS, 0, STEPS).file(index).int(0, 0, 4).bool(False).bool(False).int(priority, 0, 3)

    def type(self, t):  # pick_type: 1, 2, 3
        return self.int(t - 1, 0, 4)

    def file_type(self, index, t):  # MQFS_IOC_SET_TYPE; None: back to the queue's
        self.int(FILE_OPTIONS, 0, STEPS).file(index).int(3, 0, 4).bool(t is None)
        return self if t is None else self.type(t)

    def select(self, index, kind, t=None):  # MQFS_IOC_SET_SELECT: ANY, EXACT t, EXCEPT t, LOWEST (<= t), LOWEST_OF_ALL
        self.int(FILE_OPTIONS, 0, STEPS).file(index).int(4, 0, 4).int(kind, 0, 4)
        return self.type(t) if kind in (EXACT, EXCEPT, LOWEST) else self

    def time(self, ms):
        return self.int(TIME, 0, STEPS).int(ms, 0, 60)

    def interrupt(self, index, parked):
        self.int(INTERRUPT, 0, STEPS)
        return self.int(index, 0, parked - 1) if parked > 1 else self

    def purge(self, slot=0):
        return self.int(PURGE_OR_POLL, 0, STEPS).bool(True).int(slot, 0, 1)

    def poll(self, index):
        return self.int(PURGE_OR_POLL, 0, STEPS).bool(False).file(index)

    def name(self, slot):  # make, or unlink
        return self.int(NAME, 0, STEPS).int(slot, 0, 1)

    def explicit(self, index, on=True):  # MQFS_IOC_SET_ACK
        return self.int(ACK_MODE_OR_PEEK, 0, STEPS).file(index).int(0, 0, 2).bool(on)

    def peek(self, index, on=True):  # MQFS_IOC_SET_READ_MODE peek, or back to the queue's mode
        return self.int(ACK_MODE_OR_PEEK, 0, STEPS).file(index).int(1 if on else 2, 0, 2)

    def ack(self, index, nack=False, held=None):
        """ACK (or NACK) of 0 (all), or of the file's `held` = (k, n): its k-th lease of n."""
        self.int(ACK, 0, STEPS).file(index).bool(nack)
        if held is None:
            return self.int(0, 0, 3)
        k, n = held
        self.int(1, 0, 3)
        return self.int(k, 0, n - 1) if n > 1 else self


def engine_seeds():
    seeds = {}
    # Priorities: 3 messages at 0, 3, 1 come out 3, 1, 0.
    e = Engine(maxmsg=4).open().write(0, 5).file_priority(0, 3).write(0, 6).file_priority(0, 1).write(0, 7)
    seeds["priorities"] = e.read(0).configure(READ_MODE, True).read(0).read(0).read(0)
    # A short buffer reads a message in parts; a message-mode file then ends.
    seeds["short_reads"] = Engine().open().write(0, 8).read(0, 3).read(0, 3).read(0, 3).read(0, 3)
    # A full queue: a blocking writer waits, a read lets it in; one is refused.
    e = Engine(maxmsg=1).open(access=1).open(access=0, stream=True).write(0, 4).write(0, 5, nonblocking=False)
    seeds["blocked_writer"] = e.read(1).read(1).write(0, 6, refuse=True).read(1)
    # An empty queue: a blocking reader waits; a write goes straight to it.
    e = Engine(recv_timeout=20).open(access=0).open(access=1).read(0, nonblocking=False).poll(0)
    seeds["blocked_reader"] = e.write(1, 3).read(0, nonblocking=False).time(30)
    # Timeouts and interrupts of parked readers and writers.
    e = Engine(maxmsg=1, send_timeout=10, recv_timeout=30).open().open().write(0, 2).write(0, 3, nonblocking=False)
    e = e.write(1, 4, nonblocking=False).interrupt(1, 2).time(15)
    seeds["timeouts"] = e.purge().read(0, nonblocking=False).read(1, nonblocking=False).time(40)
    # Line framing: lines in one write, a batch read in stream mode, an
    # unfinished line sent at close into a full queue (a detached send).
    e = Engine(maxmsg=2, msgsize=40, framing=1).open(access=1).open(access=0, stream=True)
    e = e.write_lines(0, [5, 7, 3], 40, cut=13).read(1).write_lines(0, [4, 4, 4], 40, cut=10).close(0)
    seeds["line_framing"] = e.read(0).read(0).read(0)
    # u32 framing: frames, an empty frame, a buffer too small for the next frame.
    e = Engine(maxmsg=4, msgsize=30, framing=2, stream=True).open()
    seeds["u32_framing"] = e.write_frames(0, [6, 9, 4], 30).write_frames(0, [3, 3], 30, bad=1).read(0, 5).read(0, 20)
    # Attribute changes mid-way: maxmsg below the count, msgsize, framing.
    e = Engine(maxmsg=3, msgsize=8).open().write(0, 8).write(0, 8).configure(MAXMSG, 1).write(0, 3, nonblocking=False)
    seeds["configure"] = e.configure(MSGSIZE, 4).read(0).configure(FRAMING, 1).read(0).configure(MAXMSG, 4)
    # Removal while open, a second queue, the byte budget.
    e = Engine(max_nodes=2, max_bytes=600).open().write(0, 8).name(0).write(0, 8).name(1).open(slot=1)
    seeds["unlink_budget"] = e.write(1, 8).write(1, 8).write(1, 8).close(0).name(0)
    # Framing changes while bytes are held. Regression (README, Findings): an
    # unfinished line that starts like the u32 header of a shorter frame, then
    # framing u32 and a write: the line becomes a message first.
    e = Engine(msgsize=40, framing=1).open().write_raw(0, b"xyz", header=1)
    seeds["line_then_u32"] = e.configure(FRAMING, 2).write_frames(0, [3], 40)
    # A held line needs room: the blocking u32 write behind it waits; each read
    # lets in the held line, then the frame.
    e = Engine(maxmsg=1, msgsize=40, framing=1, stream=True).open().write_lines(0, [5], 40).write_raw(0, b"held")
    e = e.configure(FRAMING, 2).write_frames(0, [3], 40, nonblocking=False)
    seeds["held_line_full"] = e.read(0).read(0).read(0)
    # An unfinished u32 frame is dropped when the queue turns to lines.
    e = Engine(msgsize=40, framing=2).open().write_raw(0, b"ab", header=5).configure(FRAMING, 1)
    seeds["held_frame_then_line"] = e.write_lines(0, [3], 40).read(0).close(0)
    # A held line is sent at close though the queue is u32 now.
    e = Engine(msgsize=40, framing=1).open(access=1).open(access=0).write_raw(0, b"tail")
    seeds["held_line_close"] = e.configure(FRAMING, 2).close(0).read(0)
    # A parked line-framed write goes on splitting lines after framing became none.
    e = Engine(maxmsg=1, msgsize=40, framing=1).open(stream=True).write_lines(0, [4], 40)
    e = e.write_lines(0, [4, 4], 40, nonblocking=False).configure(FRAMING, 0)
    seeds["parked_then_none"] = e.read(0).read(0).read(0)
    # SPEC section 11. Explicit acknowledgement: three reads lease three
    # messages; the second is acked, the others returned (ahead of a younger
    # one), read again and closed over; another file reads them.
    e = Engine(maxmsg=4).open(stream=True).explicit(0).write(0, 5).write(0, 6).write(0, 7).read(0).read(0).read(0)
    e = e.ack(0, held=(1, 3)).write(0, 8).ack(0, nack=True).read(0).close(0).open(stream=True)
    seeds["explicit_ack"] = e.read(0).read(0).read(0)
    # A lease runs out: the message is back, a late ACK is ETIMEDOUT.
    e = Engine().configure(LEASE_MS, 5).open().explicit(0).write(0, 5).read(0).time(10)
    seeds["lease_runs_out"] = e.ack(0, held=(0, 1)).configure(READ_MODE, True).read(0).ack(0)
    # The retry delay keeps a returned message invisible, then it is back.
    e = Engine().configure(RETRY_DELAY_MS, 20).open(stream=True).explicit(0).write(0, 5).read(0).ack(0, nack=True)
    seeds["retry_delay"] = e.read(0).time(10).read(0).time(15).read(0).ack(0)
    # After its last delivery a message moves to the dead-letter queue b.
    e = Engine(max_nodes=2).name(1).configure(MAX_DELIVERIES, 1).configure(DEAD_LETTER, "/b").open(stream=True)
    seeds["dead_letter"] = e.explicit(0).write(0, 5).read(0).ack(0, nack=True).open(slot=1).read(1).read(0)
    # Peeking: the queue in order, one message a read, then end of file.
    e = Engine(maxmsg=4).open().write(0, 5).file_priority(0, 3).write(0, 6).peek(0)
    seeds["peek"] = e.read(0, 2).read(0).read(0).read(0).file_priority(0, 0).write(0, 7).read(0).peek(0, False).read(0)
    # Leased messages hold their place under maxmsg: a writer waits for the ACK.
    e = Engine(maxmsg=1).open().explicit(0).write(0, 5).read(0).write(0, 6, nonblocking=False)
    seeds["leased_full"] = e.ack(0).configure(READ_MODE, True).read(0)
    # A NACK drops the unread rest of the leased message it returns.
    e = Engine().open(stream=True).explicit(0).write(0, 8).read(0, 3).ack(0, nack=True)
    seeds["nack_rest"] = e.read(0).ack(0)
    # SPEC section 12. Messages of types 1, 2, 3 (the file's type, then the
    # queue's); readers select type 2, any but 2, the lowest up to 3.
    e = Engine(maxmsg=4).open(access=1).open(access=0, stream=True).write(0, 5).file_type(0, 2).write(0, 6)
    e = e.file_type(0, 3).write(0, 7).file_type(0, None).configure(TYPE, 2).write(0, 8)
    e = e.select(1, EXACT, 2).read(1).select(1, EXCEPT, 2).read(1).select(1, LOWEST, 3).read(1).read(1).read(1)
    seeds["types"] = e
    # Parked selective readers: one waiting for type 3 holds back no reader
    # behind it; each is served by its own selection, in arrival order.
    e = Engine().open(access=0).open(access=0).open(access=0).open(access=1).select(0, EXACT, 3).select(1, EXCEPT, 3)
    e = e.read(0, nonblocking=False).read(1, nonblocking=False).read(2, nonblocking=False).poll(0)
    e = e.file_type(3, 1).write(3, 4).write(3, 5).file_type(3, 3).write(3, 6).select(2, EXACT, 2)
    seeds["types_parked"] = e.file_type(3, 2).write(3, 7)
    # A batch read of lines and peeking carry only the selected type, in order.
    e = Engine(maxmsg=4, msgsize=40, framing=1, stream=True).open().open().file_type(0, 2).write_lines(0, [5, 6], 40)
    e = e.file_type(0, 1).write_lines(0, [4], 40).file_priority(0, 3).file_type(0, 2).write_lines(0, [7], 40)
    e = e.select(1, EXACT, 2).peek(1).read(1).read(1).read(1).read(1).peek(1, False).read(1)
    seeds["types_batch"] = e.select(0, LOWEST_OF_ALL).read(0).read(0)
    # SPEC section 13. Queue a becomes a topic; a stream reader subscribes and
    # gets every publish; a message-mode reader gets one, then is no longer a
    # subscriber; a reader opened before it became a topic gets nothing.
    e = Engine(maxmsg=4).open(access=0).configure(KIND).open(access=0, stream=True).open(access=0).open(access=1)
    e = e.write(3, 4).read(1).read(2).read(2).write(3, 5).file_type(3, 2).write(3, 6).read(1).read(1).read(0)
    seeds["topic"] = e.close(2).write(2, 7).read(1)
    # A lasting subscriber: queue b subscribes to a, then a becomes a topic;
    # each publish is a copy in b; a queue holding messages cannot become one.
    e = Engine(max_nodes=2).name(1).configure(SUBSCRIBE, ["a"], slot=1).configure(KIND).open().write(0, 4)
    e = e.write(0, 5).open(slot=1).read(1).configure(SUBSCRIBE, [], slot=1).write(0, 6).read(1).write(1, 3)
    seeds["topic_lasting"] = e.configure(KIND, slot=1)
    # A full subscriber holds back the publisher (block) or misses the
    # message (drop); a blocked publisher goes on when it reads.
    e = Engine(maxmsg=1).configure(KIND).open(access=0, stream=True).open(access=1).write(1, 4).write(1, 5)
    e = e.configure(OVERFLOW, "drop").write(1, 6).configure(OVERFLOW, "block").write(1, 7, nonblocking=False)
    seeds["topic_overflow"] = e.read(0).read(0).configure(KIND).read(0)
    return {name: e.data() for name, e in seeds.items()}


# --- framing_fuzz -------------------------------------------------------------

def framing_seed(mode, framing, msgsize, stream, cuts, header=0):
    """mode 0: a writer, 1: one call (stream: pending and input), 2: a round trip
    (stream: the payloads); msgsize 0..3 as pick_msgsize."""
    i = Input().int((mode << 1) | (1 if framing == "u32" else 0), 0, 255)
    if mode == 1:
        i.int(msgsize[0], 0, 3)
        if msgsize[0] > 0:
            i.int(msgsize[1], 1, 4096 if msgsize[0] == 1 else 16)
        return i.string(stream[0]).string(stream[1]).u32(header).data()
    if mode == 2:
        i.int(len(stream), 1, 16)
        for payload in stream:
            i.string(payload)
    else:
        i.int(msgsize[0], 0, 3)
        if msgsize[0] > 0:
            i.int(msgsize[1], 1, 4096 if msgsize[0] == 1 else 16)
        i.string(stream)
    if mode == 2:
        remaining = sum(len(p.replace(b"\n", b"")) + 1 if framing == "line" else 4 + max(len(p), 1) for p in stream)
    else:
        remaining = len(stream)
    assert sum(cuts) == remaining
    for n in cuts:
        i.int(n, 1, remaining)
        remaining -= n
    return i.u32(header).data()


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def framing_seeds():
    return {
        "lines": framing_seed(0, "line", (2, 10), b"one\ntwo\n\nthree\nfour", [5, 9, 5], 0x01020304),
        "line_too_long": framing_seed(0, "line", (2, 4), b"ab\nabcdef\n", [2, 8]),
        "frames": framing_seed(0, "u32", (2, 10), frame(b"hello") + frame(b"w") + frame(b"xyz")[:5], [2, 9, 8]),
        "frame_empty": framing_seed(0, "u32", (2, 10), frame(b"ab") + frame(b""), [10]),
        "frame_too_long": framing_seed(0, "u32", (2, 3), frame(b"abcd"), [8]),
        "line_round_trip": framing_seed(2, "line", None, [b"alpha", b"", b"gamma delta"], [3, 4, 12]),
        "u32_round_trip": framing_seed(2, "u32", None, [b"a", b"bc" * 20, b"\n\0"], [1, 50, 4]),
        # A pending the engine never holds: more than the frame its header announces.
        "pending_overlong": framing_seed(1, "u32", (2, 10), (b"\x01\0\0\0xyz", b"w"), None),
    }


# --- parse_fuzz: a command line, NUL-separated ---------------------------------

def parse_seeds():
    return {
        "maxmsg": b"maxmsg=10",
        "msgsize_largest": b"msgsize=1044480",
        "msgsize_too_large": b"msgsize=1044481",
        "max_bytes": b"max_bytes=1G",
        "framing": b"framing=u32",
        "read_mode_newline": b"stream\n",
        "priority_plus": b"priority=+5",
        "timeout_huge": b"recv_timeout_ms=1099511627777",
        "negative": b"maxmsg=-1",
        "command_line": b"-f\0-o\0maxmsg=100,msgsize=64,framing=line,max_queues=10,log_level=debug\0/mnt/mq",
        "mount_helper": b"mqfs\0/mnt/mq\0-o\0rw,allow_other,read_mode=stream,max_bytes=64k",
        "bad_log_level": b"-o\0log_level=loud",
        "escaped_comma": b"-o\0log_file=/tmp/a\\,b,priority=7",
        "store_sync": b"-o\0store=/var/lib/mq,sync=disk\0/mnt/mq",
        "sync_without_store": b"-o\0sync=disk",
    }


def main():
    for target, seeds in (("engine", engine_seeds()), ("framing", framing_seeds()), ("parse", parse_seeds())):
        directory = os.path.join(HERE, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
