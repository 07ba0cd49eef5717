"""Standard output for the headless commands: inert text, and a reader that went away.

``playground generate --json | head -1`` closes the pipe after one line. Python would raise
``BrokenPipeError`` at the next write (and again when the interpreter flushes at exit). Here the
first failed write marks the output closed, points the file descriptor at /dev/null so nothing
else can fail, and calls ``on_close`` so the run stops early: its partial result is still
recorded (history, ``--save``) and the command exits with 141, as a program ended by SIGPIPE.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

from playground.jsonlines import dumps_obj
from playground.terminal_text import inert, inert_line

#: Exit status of a command whose reader closed the pipe (128 + SIGPIPE, as the shell reports it).
EXIT_PIPE_CLOSED = 141


class Output:
    """Writes to stdout; ``text()`` makes server/file text inert, ``raw()`` is for our own JSON."""

    def __init__(self, stream: TextIO | None = None, on_close: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self.on_close = on_close
        self.closed = False

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # looked up late: tests swap sys.stdout

    def json(self, obj: object) -> None:
        """One JSON line (NaN written as null, terminal-safe: ``jsonlines.dumps_obj``)."""
        self.raw(dumps_obj(obj) + "\n")

    def line(self, text: str = "") -> None:
        """One line of text from a model, a server or a file, made inert."""
        self.text(text + "\n")

    def raw(self, data: str) -> None:
        """Write ``data`` as is: our own JSON lines (already inert) and layout."""
        if self.closed:
            return
        try:
            self.stream.write(data)
            self.stream.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._closed()
        except OSError as exc:
            if exc.errno not in (32, 104):  # EPIPE, ECONNRESET
                raise
            self._closed()

    def text(self, data: str) -> None:
        """Write text that came from a model, a server or a file: control characters made visible."""
        self.raw(inert(data))

    # TextIO-like, for writers that take a stream (compare's text report): everything inert.
    def write(self, data: str) -> int:
        self.text(data)
        return len(data)

    def flush(self) -> None:
        pass  # every write flushes

    def _closed(self) -> None:
        self.closed = True
        discard(self.stream)
        if self.on_close is not None:
            self.on_close()

    @property
    def status(self) -> int | None:
        """The exit status the closed pipe imposes, or None while the reader is there."""
        return EXIT_PIPE_CLOSED if self.closed else None


def discard(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null: its reader is gone, and the flush at exit
    must not raise ``BrokenPipeError`` again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's StringIO): nothing will flush it at exit


def error_line(message: str) -> None:
    """One line on stderr, inert (messages may quote a server's or a file's text)."""
    try:
        print(f"playground: {inert_line(message)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr is gone too: nothing left to tell
