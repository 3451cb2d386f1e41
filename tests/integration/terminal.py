"""A program under a pseudo-terminal, and a small model of the xterm screen it
draws on, for the tests of full-screen programs (mq top).

- Screen: feed() it the bytes a program writes for TERM=xterm and it keeps the
  text of the screen (no colours): the cursor motions, erasures, insertions,
  deletions, scroll regions, the alternate screen and the repeat that ncurses
  uses for xterm. lines() and text() tell what a person would see.
- PtyProgram: starts a program with a new pseudo-terminal of a given size as
  its controlling terminal (stdin, stdout and stderr), TERM=xterm; reads what
  it draws with select() against a deadline, feeds it to a Screen and keeps
  every byte; sends keys.

Every read has a deadline; nothing here can block the test run.
"""
import codecs
import contextlib
import fcntl
import os
import re
import select
import struct
import termios
import time

import pytest

from helpers import clean_env

# The DEC line-drawing characters (ESC ( 0) that a screen shows as ASCII here.
_LINE_DRAWING = dict(zip("jklmnqtuvwxa~`", "+++++-+++++|#o+"))
_CSI = re.compile(r"\[([?>!=]?)([0-9;:]*)([ -/]*)([@-~])")


class Screen:
    """The text of an xterm screen of `rows` x `cols`, kept from the bytes written to it."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.main = self._blank_grid()
        self.alternate = self._blank_grid()
        self.grid = self.main
        self.y = self.x = 0
        self.saved = (0, 0)
        self.top, self.bottom = 0, rows - 1
        self.pending_wrap = False
        self.autowrap = True
        self.insert = False
        self.line_drawing = False
        self.last = " "
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""  # an escape sequence cut off at the end of a feed

    def _blank_grid(self):
        return [[" "] * self.cols for _ in range(self.rows)]

    def _blank(self):
        return [" "] * self.cols

    # -- what is seen ----------------------------------------------------------------------------

    def lines(self):
        """The rows of the screen, trailing blanks removed."""
        return ["".join(row).rstrip() for row in self.grid]

    def text(self):
        return "\n".join(self.lines())

    def in_alternate(self):
        return self.grid is self.alternate

    # -- feeding -----------------------------------------------------------------------------------

    def feed(self, data):
        text = self.pending + self.decoder.decode(data)
        self.pending = ""
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\x1b":
                used = self._escape(text, i + 1)
                if used is None:  # incomplete: wait for the rest
                    self.pending = text[i:]
                    return
                i = used
                continue
            if c < " " or c == "\x7f":
                self._control(c)
            else:
                self._print(c)
            i += 1

    def _control(self, c):
        if c == "\r":
            self._move(self.y, 0)
        elif c in "\n\x0b\x0c":
            self.pending_wrap = False
            self._index()
        elif c == "\b":
            self._move(self.y, self.x - 1)
        elif c == "\t":
            self._move(self.y, min(self.cols - 1, (self.x // 8 + 1) * 8))
        # BEL, SO, SI and the rest change nothing that is seen here.

    def _print(self, c):
        if self.line_drawing:
            c = _LINE_DRAWING.get(c, c)
        if self.pending_wrap and self.autowrap:
            self.pending_wrap = False
            self.x = 0
            self._index()
        row = self.grid[self.y]
        if self.insert:
            row.insert(self.x, c)
            del row[self.cols:]
        else:
            row[self.x] = c
        self.last = c
        if self.x == self.cols - 1:
            self.pending_wrap = True
        else:
            self.x += 1

    def _move(self, y, x):
        self.y = max(0, min(self.rows - 1, y))
        self.x = max(0, min(self.cols - 1, x))
        self.pending_wrap = False

    def _index(self):
        if self.y == self.bottom:
            self._scroll_up(1)
        elif self.y < self.rows - 1:
            self.y += 1

    def _reverse_index(self):
        if self.y == self.top:
            self._scroll_down(1)
        elif self.y > 0:
            self.y -= 1

    def _scroll_up(self, n, top=None):
        top = self.top if top is None else top
        for _ in range(min(n, self.bottom - top + 1)):
            del self.grid[top]
            self.grid.insert(self.bottom, self._blank())

    def _scroll_down(self, n, top=None):
        top = self.top if top is None else top
        for _ in range(min(n, self.bottom - top + 1)):
            del self.grid[self.bottom]
            self.grid.insert(top, self._blank())

    def _escape(self, text, i):
        """Handles the sequence after an ESC at text[i:]; returns the index after it, or None if cut off."""
        if i >= len(text):
            return None
        c = text[i]
        if c == "[":
            m = _CSI.match(text, i)
            if not m:
                # Incomplete if only parameter characters follow; else a sequence this model does not know.
                return None if re.fullmatch(r"\[[?>!=]?[0-9;:]*[ -/]*", text[i:]) else i + 1
            self._csi(m.group(1), m.group(2), m.group(3), m.group(4))
            return m.end()
        if c == "]":  # OSC: up to BEL or ST
            end = re.compile(r"\x07|\x1b\\").search(text, i)
            return None if end is None else end.end()
        if c in "()*+":
            if i + 1 >= len(text):
                return None
            if c == "(":
                self.line_drawing = text[i + 1] == "0"
            return i + 2
        if c in "#%":
            return None if i + 1 >= len(text) else i + 2
        if c == "7":
            self.saved = (self.y, self.x)
        elif c == "8":
            self._move(*self.saved)
        elif c == "M":
            self._reverse_index()
        elif c == "D":
            self._index()
        elif c == "E":
            self._move(self.y, 0)
            self._index()
        elif c == "c":
            self.__init__(self.rows, self.cols)
        # ESC = and ESC > (keypad), ESC H (tab stop) change nothing seen.
        return i + 1

    def _csi(self, private, params, intermediate, final):
        values = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")] if params else []

        def arg(index=0, default=1):
            value = values[index] if index < len(values) else 0
            return value if value else default

        if intermediate:
            return  # soft reset and the like
        if private:
            if final in "hl" and private == "?":
                self._private_modes(values, final == "h")
            return
        y, x = self.y, self.x
        if final == "A":
            self._move(max(self.top, y - arg()) if y >= self.top else y - arg(), x)
        elif final in "Be":
            self._move(min(self.bottom, y + arg()) if y <= self.bottom else y + arg(), x)
        elif final in "Ca":
            self._move(y, x + arg())
        elif final == "D":
            self._move(y, x - arg())
        elif final == "E":
            self._move(y + arg(), 0)
        elif final == "F":
            self._move(y - arg(), 0)
        elif final in "G`":
            self._move(y, arg() - 1)
        elif final in "Hf":
            self._move(arg(0) - 1, arg(1) - 1)
        elif final == "d":
            self._move(arg() - 1, x)
        elif final == "J":
            self._erase_display(arg(default=0))
        elif final == "K":
            self._erase_line(arg(default=0))
        elif final == "X":
            row = self.grid[y]
            for k in range(x, min(self.cols, x + arg())):
                row[k] = " "
            self.pending_wrap = False
        elif final == "P":
            row = self.grid[y]
            n = min(arg(), self.cols - x)
            del row[x:x + n]
            row.extend([" "] * n)
            self.pending_wrap = False
        elif final == "@":
            row = self.grid[y]
            for _ in range(min(arg(), self.cols - x)):
                row.insert(x, " ")
            del row[self.cols:]
            self.pending_wrap = False
        elif final in "LM":
            if self.top <= y <= self.bottom:
                (self._scroll_down if final == "L" else self._scroll_up)(arg(), top=y)
                self._move(y, 0)
        elif final == "S":
            self._scroll_up(arg())
        elif final == "T":
            self._scroll_down(arg())
        elif final == "r":
            top, bottom = arg(0) - 1, arg(1, self.rows) - 1
            if 0 <= top < bottom < self.rows:
                self.top, self.bottom = top, bottom
                self._move(0, 0)
        elif final == "b":
            for _ in range(arg()):
                self._print(self.last)
        elif final == "s":
            self.saved = (y, x)
        elif final == "u":
            self._move(*self.saved)
        elif final in "hl":
            if 4 in values:
                self.insert = final == "h"
        # m (colours), t (window), n (reports), g (tabs) change nothing seen.

    def _private_modes(self, values, on):
        for mode in values:
            if mode == 7:
                self.autowrap = on
            elif mode in (47, 1047, 1049):
                if mode == 1049 and on:
                    self.saved = (self.y, self.x)
                if on and not self.in_alternate():
                    self.grid = self.alternate = self._blank_grid()
                elif not on and self.in_alternate():
                    self.grid = self.main
                if mode == 1049 and not on:
                    self._move(*self.saved)

    def _erase_display(self, how):
        if how == 0:
            self._erase_line(0)
            for r in range(self.y + 1, self.rows):
                self.grid[r] = self._blank()
        elif how == 1:
            self._erase_line(1)
            for r in range(self.y):
                self.grid[r] = self._blank()
        else:
            for r in range(self.rows):
                self.grid[r] = self._blank()

    def _erase_line(self, how):
        row = self.grid[self.y]
        start, end = {0: (self.x, self.cols), 1: (0, self.x + 1)}.get(how, (0, self.cols))
        for k in range(start, end):
            row[k] = " "
        self.pending_wrap = False


class PtyProgram:
    """`args` running on a new pseudo-terminal of `rows` x `cols` (its
    controlling terminal, in a new session), TERM=xterm. Started through
    `procs` so that it is killed by pid at the end of the test; close() closes
    the terminal."""

    def __init__(self, procs, args, rows=30, cols=120, **env):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.modes = termios.tcgetattr(self.slave)
        self.screen = Screen(rows, cols)
        self.output = b""
        self.proc = procs.start(args, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                start_new_session=True, preexec_fn=_take_controlling_terminal,
                                env=clean_env(TERM="xterm", **env))

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self.slave = -1

    def read(self, timeout):
        """Reads what the program writes for up to `timeout` seconds (returns
        earlier once a read got something and nothing more is ready at once).
        Returns the bytes read."""
        got = b""
        deadline = time.monotonic() + timeout
        while True:
            left = 0 if got else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                return got
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: no process has the terminal open any more
                return got
            if not chunk:
                return got
            got += chunk
            self.output += chunk
            self.screen.feed(chunk)

    def wait_screen(self, condition, timeout=15, what="the screen"):
        """Reads until `condition(screen)` is true; fails the test after `timeout` seconds with the screen."""
        deadline = time.monotonic() + timeout
        while not condition(self.screen):
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self.read(0)):
                state = "running" if self.proc.poll() is None else f"ended with {self.proc.returncode}"
                pytest.fail(f"waited {timeout}s for {what} ({state}); the screen:\n{self.screen.text()}\n"
                            f"last bytes: {self.output[-400:]!r}")
            self.read(min(left, 0.2))
        return self.screen

    def key(self, data):
        """Types `data` (bytes) on the terminal."""
        os.write(self.master, data)

    def finish(self, timeout=10, what="the program to end"):
        """Reads until the program ends (failing after `timeout` seconds), then
        what is left on the terminal; returns its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout}s for {what}; the screen:\n{self.screen.text()}")
            self.read(0.05)
        while self.read(0.05):
            pass
        return self.proc.returncode

    def tty_modes(self):
        """The terminal's modes (termios.tcgetattr) now."""
        return termios.tcgetattr(self.slave)


def _take_controlling_terminal():
    """In the child, after setsid(): its standard input becomes its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
