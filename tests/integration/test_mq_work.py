"""`mq work` (SPEC section 15, docs of mq): a worker that runs a command for
each message of a queue, on real mounts with real commands.

The commands are small shell scripts written into the test's directory
(Commands below). Each run of one appends `start ID DELIVERY PID` to the file
`events` once it has saved its standard input and its MQ_* environment, and
`end ID DELIVERY` when it ends normally; a "held" run waits until the test
creates `go.ID` (or `go` for all), so the test decides when it ends and can
see which runs overlap, without timing.

Exit statuses and error lines are the ones of the mq contract: 0 done,
1 error, 2 usage; one line `mq: QUEUE: REASON` per failed command.
"""
import contextlib
import os
import shlex
import signal
import subprocess
import time
import types

import pytest

from helpers import LineReader, finish, take, wait_exit, wait_until
from test_leases import counts, queue, send
from test_topics import publish_typed

MQ = os.environ["MQ_BIN"]

# What every command script starts with, after `D=` (the test's directory): `await CONDITION`
# runs the shell function CONDITION every 50 ms until it holds, and exits 99 after 60 s.
PRELUDE = r'''
await() {
    n=0
    until "$@"; do
        n=$((n + 1)); [ $n -le 1200 ] || exit 99
        sleep 0.05
    done
}
released() { [ -e "$D/go.$MQ_ID" ] || [ -e "$D/go" ]; }
delivered_again() { grep -q "^start $MQ_ID 2 " "$D/events"; }
long_leases() { setfattr -n user.mq.lease_ms -v 30000 "$MQ_QUEUE" || exit 98; }  # the next leases: 30 s
acked_once() { [ "$(getfattr --absolute-names --only-values -n user.mq.received "$MQ_QUEUE")" = 1 ]; }
'''
# Shell snippets of the commands.
RECORD = r'''
R="$D/run.$MQ_ID.$MQ_DELIVERY"
cat > "$R.in"
printf '%s\n' "MQ_QUEUE=$MQ_QUEUE" "MQ_PRIORITY=$MQ_PRIORITY" "MQ_TYPE=$MQ_TYPE" "MQ_DELIVERY=$MQ_DELIVERY" \
    "MQ_ID=$MQ_ID" > "$R.env"
echo "start $MQ_ID $MQ_DELIVERY $$" >> "$D/events"
'''
HOLD = "await released"  # until the test lets this message's command go on
END = r'echo "end $MQ_ID $MQ_DELIVERY" >> "$D/events"'

TIMEOUT = 30  # seconds for any mq work to end once it should


class Commands:
    """The commands given to mq work, and what their runs left in `directory`."""

    def __init__(self, directory):
        self.dir = directory

    def script(self, *snippets, name="job"):
        """An executable /bin/sh script of PRELUDE and `snippets`; returns its path."""
        path = self.dir / name
        path.write_text(f"#!/bin/sh\nD={shlex.quote(str(self.dir))}\n" + "\n".join((PRELUDE,) + snippets) + "\n")
        path.chmod(0o755)
        return str(path)

    def events(self):
        """The lines of `events` as tuples: ("start", id, delivery, pid), ("end", id, delivery), ("term", id)."""
        path = self.dir / "events"
        if not path.exists():
            return []
        return [tuple(w if i == 0 else int(w) for i, w in enumerate(line.split()))
                for line in path.read_text().splitlines()]

    def starts(self):
        """(id, delivery) of each run that started, in order."""
        return [e[1:3] for e in self.events() if e[0] == "start"]

    def ends(self):
        return [e[1:3] for e in self.events() if e[0] == "end"]

    def wait_starts(self, count, what=None):
        """Waits until `count` runs have started; returns their (id, delivery)."""
        wait_until(lambda: len(self.starts()) >= count, timeout=TIMEOUT,
                   what=what or f"{count} runs of the command to start")
        return self.starts()

    def stdin(self, message_id, delivery=1):
        """The bytes the run of (message_id, delivery) read on its standard input."""
        return (self.dir / f"run.{message_id}.{delivery}.in").read_bytes()

    def env(self, message_id, delivery=1):
        """The MQ_* variables the run of (message_id, delivery) had, as a dict."""
        text = (self.dir / f"run.{message_id}.{delivery}.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines())

    def release(self, message_id=None):
        """Lets the held run of `message_id` (None: every held run, now and later) go on."""
        (self.dir / ("go" if message_id is None else f"go.{message_id}")).touch()


@pytest.fixture
def commands(tmp_path):
    """A Commands in a fresh directory; at the end every held run is let go."""
    made = Commands(tmp_path)
    yield made
    made.release()


def work(procs, *args, **kwargs):
    """Starts `mq work ARGS` (stdin /dev/null, stdout and stderr text pipes)."""
    return procs.start([MQ, "work", *args], stdin=subprocess.DEVNULL, text=True, **kwargs)


def ended(proc, what="mq work"):
    """(status, stderr lines) of an mq work once it has ended (fails after TIMEOUT)."""
    status, _, err = finish(proc, timeout=TIMEOUT, what=what)
    return status, err.splitlines()


def returned(queue_path, message_id, delivery, command, how):
    """The line mq work prints for a command that failed: `how` is
    `exited with status S` or `killed by signal NAME`."""
    return (f"mq: {queue_path}: message {message_id} (delivery {delivery}): {command} {how}; "
            "returned to the queue")


def lease_expired(queue_path, message_id, command):
    return (f"mq: {queue_path}: message {message_id}: lease expired while {command} ran (user.mq.lease_ms); "
            "it was returned to the queue")


def has_open(pid, path):
    """Whether process `pid` has a descriptor of the file `path`."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
    return False


def pending_signals(pid):
    """The signals pending for process `pid` (shared and its main thread's), as a bit mask."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)


def signal_and_wait_taken(proc, sig):
    """Sends `sig` to `proc` and waits until it is no longer pending (the
    process took it), so that a second one is a second delivery."""
    proc.send_signal(sig)
    wait_until(lambda: proc.poll() is not None or not pending_signals(proc.pid) & (1 << (sig - 1)),
               what=f"mq work to take signal {sig!r}")


def still_running(proc, seconds=0.5, what="mq work"):
    """Proves a negative: after `seconds`, `proc` still runs. (A sleep: nothing must happen.)"""
    time.sleep(seconds)
    assert proc.poll() is None, f"{what} ended ({proc.returncode}) while a command still ran: {proc.stderr.read()}"


# -- one run per message ---------------------------------------------------------------------------

def test_each_message_runs_the_command_once_with_the_message_on_stdin_and_its_facts_in_the_environment(
        mq, procs, commands):
    q = queue(mq, "jobs")
    first = b"first line\nsecond line \x01\xfe\x00 no newline at the end"
    second = b"x" * 5000 + b"\n"
    publish_typed(q, first, 7, priority=5)
    publish_typed(q, second, 3, priority=2)
    job = commands.script(RECORD)
    status, err = ended(work(procs, "-n", "2", "jobs", "--", job, cwd=mq.path))  # the queue as given: "jobs"
    assert (status, err) == (0, [])
    runs = commands.starts()
    assert len(runs) == 2 and {delivery for _, delivery in runs} == {1}, runs
    by_body = {commands.stdin(message_id): commands.env(message_id) for message_id, _ in runs}
    assert set(by_body) == {first, second}
    ids = [int(by_body[body].pop("MQ_ID")) for body in (first, second)]
    assert by_body[first] == {"MQ_QUEUE": "jobs", "MQ_PRIORITY": "5", "MQ_TYPE": "7", "MQ_DELIVERY": "1"}
    assert by_body[second] == {"MQ_QUEUE": "jobs", "MQ_PRIORITY": "2", "MQ_TYPE": "3", "MQ_DELIVERY": "1"}
    assert 0 < ids[0] < ids[1], ids  # ids increase in send order
    assert sorted(ids) == sorted(message_id for message_id, _ in runs)
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 2)


def test_a_u32_framed_queue_gives_the_command_the_payload_without_its_length(mq, procs, commands):
    q = queue(mq, "frames", framing="u32")
    payload = b"payload\x00\x01 of a frame"
    with open(q, "wb", buffering=0) as f:
        f.write(len(payload).to_bytes(4, "little") + payload)
    status, err = ended(work(procs, "-n", "1", q, "--", commands.script(RECORD)))
    assert (status, err) == (0, [])
    (message_id, _), = commands.starts()
    assert commands.stdin(message_id) == payload


@pytest.mark.parametrize("separator", [["--"], []], ids=["with --", "without --"])
def test_a_command_that_exits_0_acknowledges_its_message(mq, procs, commands, separator):
    q = queue(mq, "jobs")
    send(q, "a", "b", "c")
    status, err = ended(work(procs, "-n", "3", q, *separator, commands.script(RECORD, END)))
    assert (status, err) == (0, [])
    runs = commands.starts()
    assert sorted(commands.stdin(message_id) for message_id, _ in runs) == [b"a", b"b", b"c"]
    assert sorted(commands.ends()) == sorted(runs)
    assert counts(q, "curmsgs", "inflight", "sent", "received") == (0, 0, 3, 3)


# -- failures: the message is returned -------------------------------------------------------------

def test_a_failing_command_returns_the_message_which_comes_again_with_delivery_2(mq, procs, commands):
    q = queue(mq, "jobs")
    send(q, "m")
    job = commands.script(RECORD, '[ "$MQ_DELIVERY" -ge 2 ] || exit 3')
    status, err = ended(work(procs, "-n", "2", q, "--", job))
    runs = commands.starts()
    assert [delivery for _, delivery in runs] == [1, 2], runs
    message_id = runs[0][0]
    assert runs[1][0] == message_id
    assert commands.env(message_id, 2)["MQ_DELIVERY"] == "2"
    assert commands.stdin(message_id, 2) == b"m"
    assert status == 0
    assert err == [returned(q, message_id, 1, job, "exited with status 3")]
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


def test_past_max_deliveries_a_message_whose_command_always_fails_moves_to_the_dead_letter_queue_unchanged(
        mq, procs, commands):
    dead = queue(mq, "dead")
    q = queue(mq, "jobs", max_deliveries=2, dead_letter="dead")
    body = bytes(range(256)) * 4
    send(q, body, priority=4)
    job = commands.script(RECORD, "exit 1")
    status, err = ended(work(procs, "-n", "2", q, "--", job))
    assert status == 0
    runs = commands.starts()
    message_id = runs[0][0]
    assert runs == [(message_id, 1), (message_id, 2)]
    assert [commands.stdin(*run) for run in runs] == [body, body]
    assert err == [returned(q, message_id, 1, job, "exited with status 1"),
                   returned(q, message_id, 2, job, "exited with status 1")]
    wait_until(lambda: counts(dead, "curmsgs") == (1,), what="the dead letter")
    assert counts(q, "curmsgs", "inflight", "received", "dead_lettered") == (0, 0, 0, 1)
    assert take(dead) == body


@pytest.mark.parametrize("name", ["SEGV", "KILL"])
def test_a_command_killed_by_a_signal_returns_the_message(mq, procs, commands, name):
    q = queue(mq, "jobs")
    send(q, "m")
    job = commands.script("ulimit -c 0", RECORD, f'[ "$MQ_DELIVERY" -ge 2 ] || kill -{name} $$', END)
    status, err = ended(work(procs, "-n", "2", q, "--", job))
    runs = commands.starts()
    message_id = runs[0][0]
    assert runs == [(message_id, 1), (message_id, 2)]
    assert commands.ends() == [(message_id, 2)]
    assert status == 0
    assert err == [returned(q, message_id, 1, job, f"killed by signal SIG{name}")]
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


# -- how many at once ------------------------------------------------------------------------------

def test_j_3_runs_three_commands_at_once(mq, procs, commands):
    q = queue(mq, "jobs")
    send(q, "a", "b", "c", "d")
    worker = work(procs, "-j", "3", "-n", "4", q, "--", commands.script(RECORD, HOLD, END))
    commands.wait_starts(3, what="three commands to run at once")
    assert commands.ends() == []  # none could end: all three run together
    assert counts(q, "curmsgs", "inflight") == (1, 3)
    commands.release()
    status, err = ended(worker)
    assert (status, err) == (0, [])
    assert len(commands.ends()) == 4
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 4)


@pytest.mark.parametrize("jobs", [["-j", "1"], []], ids=["-j 1", "default"])
def test_j_1_runs_one_command_at_a_time(mq, procs, commands, jobs):
    q = queue(mq, "jobs")
    send(q, "a", "b", "c")
    worker = work(procs, *jobs, "-n", "3", q, "--", commands.script(RECORD, HOLD, END))
    for count in (1, 2, 3):
        runs = commands.wait_starts(count)
        still_running(worker, 0.3)
        assert len(commands.starts()) == count, "a second command started while one ran"
        commands.release(runs[-1][0])
    status, err = ended(worker)
    assert (status, err) == (0, [])
    kinds = [event[0] for event in commands.events()]
    assert kinds == ["start", "end"] * 3


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_n_count_takes_count_messages_and_exits_0(mq, procs, commands, jobs):
    q = queue(mq, "jobs")
    send(q, "a", "b", "c", "d", "e")
    status, err = ended(work(procs, "-j", jobs, "-n", "2", q, "--", commands.script(RECORD, END)))
    assert (status, err) == (0, [])
    assert len(commands.starts()) == 2 and len(commands.ends()) == 2
    assert counts(q, "curmsgs", "inflight", "received") == (3, 0, 2)


# -- signals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_taking_messages_lets_the_running_command_finish_and_exits_0(mq, procs, commands, sig):
    q = queue(mq, "jobs")
    send(q, "a", "b", "c")
    worker = work(procs, q, "--", commands.script(RECORD, HOLD, END))
    (message_id, _), = commands.wait_starts(1)
    signal_and_wait_taken(worker, sig)
    still_running(worker)  # it waits for the running command
    commands.release(message_id)
    status, err = ended(worker)
    assert (status, err) == (0, [])
    assert commands.starts() == [(message_id, 1)]  # no other message taken
    assert commands.ends() == [(message_id, 1)]  # the command finished, not killed
    assert counts(q, "curmsgs", "inflight", "received") == (2, 0, 1)  # acked; the others still queued


def test_a_second_sigterm_ends_mq_work_at_once_terminating_the_command_and_the_message_returns(mq, procs, commands):
    q = queue(mq, "jobs")
    send(q, "m")
    trap = r'''trap 'echo "term $MQ_ID" >> "$D/events"; exit 143' TERM'''
    worker = work(procs, q, "--", commands.script(RECORD, trap, HOLD, END))
    (message_id, _), = commands.wait_starts(1)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    signal_and_wait_taken(worker, signal.SIGTERM)
    signal_and_wait_taken(worker, signal.SIGTERM)
    wait_exit(worker, 10, "mq work to end at the second SIGTERM")
    wait_until(lambda: ("term", message_id) in commands.events(), what="the command to get SIGTERM")
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the message to return to the queue")
    assert commands.ends() == []
    assert counts(q, "received") == (0,)


def test_a_killed_mq_work_returns_the_message_it_held(mq, procs, commands):
    q = queue(mq, "jobs")
    send(q, "m")
    job = commands.script(RECORD, HOLD, END)
    worker = work(procs, q, "--", job)
    (message_id, _), = commands.wait_starts(1)
    assert counts(q, "curmsgs", "inflight") == (0, 1)
    worker.kill()
    wait_exit(worker, 10, "mq work to die")
    # The command may still run (an orphan): it must not hold the queue's lease.
    wait_until(lambda: counts(q, "curmsgs", "inflight") == (1, 0), what="the message to return to the queue")
    commands.release()
    status, err = ended(work(procs, "-n", "1", q, "--", job))
    assert (status, err) == (0, [])
    assert (message_id, 2) in commands.ends()
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)


# -- leases ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["one worker -j 2", "two workers"])
def test_a_lease_that_runs_out_while_the_command_runs_redelivers_the_message_and_is_reported(
        mq, procs, commands, workers):
    q = queue(mq, "jobs", lease_ms=300)
    send(q, "m")
    # The first run outlives its lease: it ends only once the message, delivered again, was
    # acknowledged. It makes the next lease long, so that the second run (which ends at once)
    # is in time.
    job = commands.script(RECORD, r'''
if [ "$MQ_DELIVERY" = 1 ]; then
    long_leases
    await acked_once
fi''', END)
    if workers == "two workers":
        first = work(procs, "-n", "1", q, "--", job)
        commands.wait_starts(1)
        second = work(procs, "-n", "1", q, "--", job)
        status, err = ended(second, "the second mq work")
        assert (status, err) == (0, [])
    else:
        first = work(procs, "-j", "2", "-n", "2", q, "--", job)
    status, err = ended(first)
    runs = commands.starts()
    message_id = runs[0][0]
    assert runs == [(message_id, 1), (message_id, 2)]
    assert commands.ends() == [(message_id, 2), (message_id, 1)]  # both commands exited 0
    assert status == 0
    assert err == [lease_expired(q, message_id, job)]
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)  # acked once, by the second run



def test_a_command_that_ends_after_its_lease_ran_out_does_not_acknowledge_the_redelivery(mq, procs, commands):
    q = queue(mq, "jobs", lease_ms=300)
    send(q, "m")
    # The first run outlives its lease and exits 0 while the second still runs; the second
    # then fails, so the message comes a third time, and the third run acknowledges it.
    job = commands.script(RECORD, r'''
case $MQ_DELIVERY in
1)  long_leases
    await delivered_again ;;
2)  await released
    exit 1 ;;
esac''', END)
    worker = work(procs, "-j", "2", "-n", "3", q, "--", job)
    runs = commands.wait_starts(2)
    message_id = runs[0][0]
    assert runs == [(message_id, 1), (message_id, 2)]
    errors = LineReader(types.SimpleNamespace(stdout=worker.stderr, pid=worker.pid))
    assert errors.line(timeout=TIMEOUT, what="the lease-expired line") == lease_expired(q, message_id, job)
    assert counts(q, "curmsgs", "inflight", "received") == (0, 1, 0)  # the second run still holds it
    commands.release(message_id)
    status, err = ended(worker)
    assert status == 0
    assert err == [returned(q, message_id, 2, job, "exited with status 1")]
    assert commands.starts() == [(message_id, 1), (message_id, 2), (message_id, 3)]
    assert commands.ends() == [(message_id, 1), (message_id, 3)]
    assert counts(q, "curmsgs", "inflight", "received") == (0, 0, 1)

# -- refusals --------------------------------------------------------------------------------------

def test_mq_work_refuses_a_topic(mq, procs, commands):
    t = queue(mq, "news", kind="topic")
    status, err = ended(work(procs, t, "--", commands.script(RECORD)))
    assert status == 1
    assert err == [f"mq: {t}: a topic: run workers on a queue that subscribes to it (user.mq.subscribe)"]
    assert commands.events() == []


@pytest.mark.parametrize("args", [["QUEUE"], ["QUEUE", "--"], ["-j", "2", "QUEUE", "--"],
                                  ["-j", "0", "QUEUE", "--", "true"]],
                         ids=["no command", "no command after --", "-j 2, no command", "-j 0"])
def test_a_missing_command_or_no_jobs_is_a_usage_error_and_takes_nothing(mq, procs, args):
    q = queue(mq, "jobs")
    send(q, "m")
    status, err = ended(work(procs, *[q if a == "QUEUE" else a for a in args]))
    assert status == 2
    assert len(err) == 2 and err[0].startswith("mq: "), err
    assert err[1] == "Run with --help for more information."
    assert counts(q, "curmsgs", "inflight", "received") == (1, 0, 0)


@pytest.mark.parametrize("while_", ["idle", "running"])
def test_removing_the_queue_ends_mq_work_with_1_once_its_commands_have_finished(mq, procs, commands, while_):
    q = queue(mq, "jobs")
    worker = work(procs, q, "--", commands.script(RECORD, HOLD, END))
    if while_ == "running":
        send(q, "m")
        (message_id, _), = commands.wait_starts(1)
    else:
        wait_until(lambda: has_open(worker.pid, q), what="mq work to open the queue")
    os.unlink(q)
    if while_ == "running":
        still_running(worker)
        commands.release(message_id)
    status, err = ended(worker)
    assert status == 1
    assert err and err[-1] == f"mq: {q}: the queue was removed", err
    if while_ == "running":
        assert commands.ends() == [(message_id, 1)]
