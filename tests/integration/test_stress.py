"""SPEC section 4, "nothing lost": under any mix of producers, consumers and
killed consumers, every message is received exactly once or is still in
the queue, and messages of one priority from one writer are received in the
order written.

4 producers (tests/programs/stress_producer.c) write 25,000 uniquely
numbered messages each (100,000), at priorities 0, 1, 5 and 9, through one
descriptor per priority. 4 consumers (stress_consumer.c) read in stream
mode and record each message with one write(2) right after its read.
Consumers are stopped at random moments and restarted:
- caught: by SIGTERM or SIGINT, which they catch; a read the signal
  interrupts fails with EINTR and takes nothing, so every message must be
  recorded exactly once or still be queued (drained at the end);
- sigkill: by SIGKILL; at most the one message whose read had returned can
  be unrecorded per kill, and the daemon counted it as received:
  missing <= kills and missing == user.mq.received - recorded;
- mixed: either, at random.
The random pauses between stops pace the chaos; they wait on no condition.
"""
import os
import random
import re
import signal
import subprocess
import time
from collections import defaultdict

import pytest

from helpers import LineReader, counters, program

PRODUCERS = 4
CONSUMERS = 4
PER_PRODUCER = 25_000
TOTAL = PRODUCERS * PER_PRODUCER
LINE = re.compile(rb"^P(\d+) R(\d+) S(\d+) x*$")


class Consumer:
    def __init__(self, procs, path, outdir, slot, incarnation):
        self.file = os.path.join(outdir, f"c{slot}-{incarnation:04d}")
        self.proc = procs.start([program("stress_consumer"), path, self.file, "catch"])
        self.out = LineReader(self.proc)
        assert self.out.line(what="a consumer to start") == "ready"

    def stop_caught(self, sig):
        """Signals until the consumer stops (a signal that came just before
        its read began leaves it reading: then the next one ends it)."""
        deadline = time.monotonic() + 20
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "a consumer did not stop on SIGTERM/SIGINT"
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                pass
        assert self.proc.returncode == 0, self.proc.stderr.read()
        said = self.out.line(what="the consumer's count")
        assert said.startswith("stopped "), said
        self.close()
        return int(said.split()[1])

    def close(self):
        self.proc.stdout.close()
        self.proc.stderr.close()

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        assert self.proc.returncode == -signal.SIGKILL
        self.close()


def parse(path):
    """[(producer, priority, seq)] recorded in `path`; a torn last line (a
    kill during the record's write) counts as unrecorded."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # not ended by a newline: torn
    out = []
    for line in lines:
        m = LINE.match(line)
        assert m, f"garbled record in {path}: {line[:80]!r}"
        out.append(tuple(int(g) for g in m.groups()))
    return out


def check_order(sequence, what):
    """Within `sequence`, each producer's messages of one priority come in increasing seq."""
    last = {}
    for p, r, s in sequence:
        assert s > last.get((p, r), -1), f"{what}: P{p} R{r} S{s} after S{last[(p, r)]}"
        last[(p, r)] = s


def run(mq, procs, tmp_path, how, seed):
    rng = random.Random(seed)
    queue = mq / "q"
    mq.sh("touch q")
    outdir = str(tmp_path)
    incarnations = [0] * CONSUMERS
    consumers = [Consumer(procs, queue, outdir, k, 0) for k in range(CONSUMERS)]
    producers = [procs.start([program("stress_producer"), queue, str(p), str(PER_PRODUCER), str(seed * 10 + p)])
                 for p in range(PRODUCERS)]
    kills = caught = 0
    t0 = time.monotonic()
    # Chaos until 98% of the messages were sent; then the consumers stop for
    # good and the rest is drained, so that some messages are "still queued".
    while counters(queue)["sent"] < TOTAL * 98 // 100:
        assert time.monotonic() - t0 < 150, "the producers did not get far enough in 150 s"
        assert all(p.poll() in (None, 0) for p in producers), "a producer failed"
        time.sleep(rng.uniform(0.01, 0.12))  # pacing of the chaos, not a wait for a condition
        k = rng.randrange(CONSUMERS)
        kill = how == "sigkill" or (how == "mixed" and rng.random() < 0.5)
        if kill:
            consumers[k].kill()
            kills += 1
        else:
            consumers[k].stop_caught(rng.choice([signal.SIGTERM, signal.SIGINT]))
            caught += 1
        incarnations[k] += 1
        consumers[k] = Consumer(procs, queue, outdir, k, incarnations[k])
    # Stop the consumers (with caught signals); what they leave is drained below.
    for c in consumers:
        c.stop_caught(signal.SIGTERM)
    received_by_daemon = counters(queue)["received"]
    # Drain, pass after pass, while the producers finish (they may wait for room).
    drained_file = os.path.join(outdir, "drained")
    final_file = os.path.join(outdir, "drained-final")
    while True:
        done = all(p.poll() is not None for p in producers)
        drainer = subprocess.run([program("stress_consumer"), queue, final_file if done else drained_file, "drain"],
                                 capture_output=True, text=True, timeout=60)
        assert drainer.returncode == 0, drainer.stderr
        if done:
            break
        assert time.monotonic() - t0 < 180, "the producers did not finish in 180 s"
    produce_time = time.monotonic() - t0
    for p in producers:
        assert p.wait(timeout=10) == 0, p.stderr.read()
    c = counters(queue)
    assert c["sent"] == TOTAL and c["curmsgs"] == 0, c
    final = parse(final_file) if os.path.exists(final_file) else []
    drained = (parse(drained_file) if os.path.exists(drained_file) else []) + final

    per_slot = defaultdict(list)
    for name in sorted(os.listdir(outdir)):
        if name.startswith("c"):
            per_slot[name.split("-")[0]] += parse(os.path.join(outdir, name))
    recorded = [m for seq in per_slot.values() for m in seq]
    everything = recorded + drained
    report = (f"{how}: {TOTAL} messages, {kills} SIGKILLs, {caught} caught stops, {len(recorded)} recorded, "
              f"{len(drained)} drained, daemon received {received_by_daemon} when the consumers stopped, "
              f"producers took {produce_time:.1f}s")
    print("\n" + report)

    # No message twice.
    assert len(set(everything)) == len(everything), "a message was received twice: " + report
    # Each producer's messages of one priority in order: per consumer slot
    # (its incarnations ran one after the other), and all of the drain after
    # everything the consumers got.
    for slot, seq in per_slot.items():
        check_order(seq, f"consumer {slot}")
    check_order(drained, "drain")
    latest = defaultdict(lambda: -1)
    for p, r, s in recorded:
        latest[(p, r)] = max(latest[(p, r)], s)
    for p, r, s in drained:
        assert s > latest[(p, r)], f"drained P{p} R{r} S{s} is older than a message a consumer got"
    # The last drain pass runs alone: highest priority first.
    priorities = [r for _, r, _ in final]
    assert priorities == sorted(priorities, reverse=True)

    expected = {(p, r, s) for p, r, s in everything}
    assert all(0 <= p < PRODUCERS and 0 <= s < PER_PRODUCER for p, _, s in expected)
    missing = TOTAL - len(expected)
    assert missing == received_by_daemon - len(recorded), report
    if kills == 0:
        assert missing == 0, report
    else:
        assert missing <= kills, report
    return kills, caught, missing


@pytest.mark.parametrize("how,options", [
    ("caught", ("maxmsg=1000",)),
    ("sigkill", ()),
    ("mixed", ("maxmsg=1000",)),
], ids=["caught-maxmsg1000", "sigkill-maxmsg10", "mixed-maxmsg1000"])
def test_no_message_lost_or_duplicated_while_consumers_are_stopped(mount_mqfs, procs, tmp_path, how, options):
    mq = mount_mqfs(*options)
    kills, caught, missing = run(mq, procs, tmp_path, how, seed={"caught": 1, "sigkill": 2, "mixed": 3}[how])
    assert kills + caught >= 20, "too few stops to mean anything"
    print(f"{how}: missing {missing} <= kills {kills}")
