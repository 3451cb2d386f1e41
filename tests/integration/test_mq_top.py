"""`mq top` (SPEC section 15, docs of mq): the live full-screen view, run on
a pseudo-terminal (terminal.PtyProgram, 30 rows x 120 columns, TERM=xterm)
over a mount with three queues: `deep-q` (3 of 10 messages), `calm-q` (2 of
10) and `rush-q`, which a background loop keeps busy (a message sent and
taken about every 10 ms, so at most 1 is queued). So each sort puts another
queue first: depth `deep-q`, rate `rush-q`, name `calm-q`.

What it draws is read from a model of the screen (terminal.Screen), waiting
(with a deadline) for the frame that shows what a check expects.
"""
import os
import re
import subprocess
import sys
import termios

import pytest

from helpers import clean_env, finish, put, wait_until
from terminal import PtyProgram
from test_leases import counts, queue, send

MQ = os.environ["MQ_BIN"]

NAMES = ("calm-q", "deep-q", "rush-q")
FIRST = {"depth": "deep-q", "rate": "rush-q", "name": "calm-q"}

# Sends and takes a message on the queue argv[1] about every 10 ms, until killed
# (a new open file for each read: in message mode an open file delivers one message).
BUSY = r"""
import os, sys, time
w = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
while True:
    os.write(w, b"tick")
    r = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
    os.read(r, 100)
    os.close(r)
    time.sleep(0.01)
"""


@pytest.fixture
def queues(mq, procs):
    """The three queues of the module docstring in `mq`, the busy loop running; returns the mount."""
    send(queue(mq, "deep-q"), "1", "2", "3")
    send(queue(mq, "calm-q"), "1", "2")
    busy = queue(mq, "rush-q")
    loop = procs.start([sys.executable, "-c", BUSY, busy], stdout=subprocess.DEVNULL, env=clean_env())
    wait_until(lambda: loop.poll() is not None or counts(busy, "sent", "received") >= (5, 5),
               what="the busy loop to send and take")
    assert loop.poll() is None, loop.stderr.read()
    return mq


@pytest.fixture
def top(procs):
    """Factory: top(ARG...) starts `mq top ARG...` on a new pseudo-terminal; closed after the test."""
    made = []

    def start(*args):
        program = PtyProgram(procs, [MQ, "top", *args], rows=30, cols=120)
        made.append(program)
        return program
    yield start
    for program in made:
        program.close()


def rows(screen):
    """{queue name: its line} for the names of NAMES on the screen, below the title."""
    found = {}
    for line in screen.lines()[1:]:
        for name in NAMES:
            if name in line:
                found[name] = line
    return found


def order(screen):
    """The names of NAMES in the order the screen shows them, top to bottom."""
    shown = rows(screen)
    return sorted(shown, key=lambda name: screen.lines().index(shown[name]))


def shows(*names, sort=None):
    """A condition on the screen: the title `mq top ...` (with `sort: SORT`), and exactly
    the queues `names` (of NAMES), each once."""
    def condition(screen):
        title = screen.lines()[0]
        if not title.startswith("mq top") or (sort and f"sort: {sort}" not in title):
            return False
        return sorted(rows(screen)) == sorted(names) and all(screen.text().count(name) == 1 for name in names)
    return condition


def drawn(program):
    """Waits for the first frame with every queue; returns the screen."""
    return program.wait_screen(shows(*NAMES), what="the first frame with every queue")


def bar(line):
    """(filled, width) of the bar `[####......]` in a row."""
    m = re.search(r"\[(#*)(\.*)\]", line)
    assert m, f"no bar [##..] in {line!r}"
    return len(m.group(1)), len(m.group(1)) + len(m.group(2))


def test_top_draws_the_title_the_header_and_a_row_per_queue_with_its_depth(queues, top):
    program = top(queues.path)
    screen = drawn(program)
    lines = screen.lines()
    assert re.fullmatch(rf"mq top +{re.escape(queues.path)} +3 queues +[56] messages +sort: depth +"
                        r"\d\d:\d\d:\d\d", lines[0].strip()), lines[0]
    header = lines[1] if "QUEUE" in lines[1] else lines[2]
    assert re.search(r"QUEUE.*READERS.*WRITERS.*INFLIGHT.*OLDEST", header), header
    shown = rows(screen)
    assert re.search(r"\s3/10\s", shown["deep-q"]), shown["deep-q"]
    assert re.search(r"\s2/10\s", shown["calm-q"]), shown["calm-q"]
    assert re.search(r"\s[01]/10\s", shown["rush-q"]), shown["rush-q"]
    deep, calm = bar(shown["deep-q"]), bar(shown["calm-q"])
    assert deep[1] == calm[1] and deep[0] > calm[0] > 0, (deep, calm)
    assert order(screen) == ["deep-q", "calm-q", "rush-q"]  # by depth, the default
    assert lines[-1].strip(), "no line with the keys at the bottom"


def test_the_keys_n_r_d_sort_by_name_rate_and_depth(queues, top):
    program = top(queues.path)
    drawn(program)
    for key, sort in ((b"n", "name"), (b"r", "rate"), (b"d", "depth")):
        program.key(key)
        program.wait_screen(lambda s: shows(*NAMES, sort=sort)(s) and order(s)[0] == FIRST[sort],
                            what=f"the rows sorted by {sort} after the key {key!r}")
        if sort != "rate":  # ties of rate (two idle queues) may come in any order
            expected = sorted(NAMES) if sort == "name" else ["deep-q", "calm-q", "rush-q"]
            assert order(program.screen) == expected


@pytest.mark.parametrize("sort", ["depth", "rate", "name"])
def test_s_chooses_the_first_sort(queues, top, sort):
    program = top("-s", sort, queues.path)
    program.wait_screen(lambda s: shows(*NAMES, sort=sort)(s) and order(s)[0] == FIRST[sort],
                        what=f"the rows sorted by {sort}")


def test_slash_filters_the_queues_by_their_path_and_an_empty_filter_shows_all_again(queues, top):
    program = top(queues.path)
    drawn(program)
    program.key(b"/")
    program.key(b"deep")
    program.key(b"\r")
    program.wait_screen(shows("deep-q"), what="only deep-q after the filter /deep")
    assert re.search(r"\s3/10\s", rows(program.screen)["deep-q"])
    program.key(b"/")
    program.key(b"\r")
    program.wait_screen(shows(*NAMES), what="every queue again after an empty filter")


def test_space_refreshes_at_once(queues, top):
    program = top("-d", "3600", queues.path)
    program.wait_screen(lambda s: shows(*NAMES)(s) and re.search(r"\s2/10\s", rows(s)["calm-q"]),
                        what="the first frame")
    put(queues / "calm-q", b"3")
    program.key(b" ")
    program.wait_screen(lambda s: shows(*NAMES)(s) and re.search(r"\s3/10\s", rows(s)["calm-q"]),
                        what="calm-q with 3 messages after the space key")


@pytest.mark.parametrize("key", [b"q", b"\x1b", b"\x03"], ids=["q", "Esc", "Ctrl-C"])
def test_quitting_exits_0_and_restores_the_terminal(queues, top, key):
    program = top(queues.path)
    drawn(program)
    assert program.screen.in_alternate(), "mq top does not draw on the alternate screen"
    assert not program.tty_modes()[3] & termios.ICANON, "mq top left the terminal in canonical mode"
    before = len(program.output)
    program.key(key)
    assert program.finish(timeout=10, what=f"mq top to quit at {key!r}") == 0
    assert b"\x1b[?1049l" in program.output[before:], program.output[before:]  # rmcup: the normal screen
    assert not program.screen.in_alternate()
    assert program.tty_modes() == program.modes, "the terminal's modes were not restored"


def test_top_with_standard_output_not_a_terminal_is_refused(mq):
    result = subprocess.Popen([MQ, "top", mq.path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    status, out, err = finish(result, timeout=10, what="mq top")
    assert (status, out) == (1, "")
    assert err == "mq: top: standard output is not a terminal (mq stat prints once)\n"
