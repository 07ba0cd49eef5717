"""Recording for the headless commands: ``--save FILE`` and the automatic history.

``RunRecording.tap(events)`` passes a stream through unchanged while recording it; ``finish()``
writes the session where asked. A ``--save`` that cannot be written is an error (exit 2); a
history that cannot be written only warns, since the run itself succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from playground.errors import PlaygroundError, SessionFileError
from playground.events import StreamEvent
from playground.params import GenerationRequest
from playground.prompt_builder import PromptSpec
from playground.sessions import history
from playground.sessions.prompt import prompt_fields
from playground.sessions.record import SessionRecorder, backend_from_endpoint
from playground.sessions.schema import BackendSpec
from playground.sessions.store import write
from playground.terminal_text import inert_line


def add_session_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("session")
    group.add_argument("--save", metavar="FILE", default=None,
                       help="also write the run as a session file ('playground open/replay FILE')")
    group.add_argument("--no-history", action="store_true", help="do not keep this run in the history ('playground sessions')")


def check_save_target(path: str) -> Path:
    """Fail before the run, not after it, when ``--save`` cannot be written there."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise SessionFileError(f"{target}: is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise SessionFileError(f"{target}: the directory {parent} does not exist")
    return target


class RunRecording:
    """Records one command's run (one lane, or several fed with ``feed(event, lane)``)."""

    def __init__(
        self,
        save_to: str | None,
        keep_history: bool,
        *,
        kind: str = "generate",
        request: GenerationRequest | None = None,
        backend: BackendSpec | None = None,
        endpoint: Any = None,
        keep_dist: int = 0,
        history_dir: Path | None = None,
        prompt: PromptSpec | None = None,
    ) -> None:
        """``endpoint``: a remote ``backends.endpoints.Endpoint`` (recorded as data, keyless);
        ``history_dir``: the configured history folder (None: the default one); ``prompt``: the
        prompt as given (a conversation), None: the text sent, as a free-form prompt."""
        self.save_to = check_save_target(save_to) if save_to else None
        self.keep_history = keep_history
        self.history_dir = history_dir
        self.recorder = SessionRecorder(kind=kind, keep_dist=keep_dist, **(prompt_fields(prompt) if prompt else {}))
        if endpoint is not None and backend is None:
            backend = backend_from_endpoint(endpoint)
        if request is not None or backend is not None:
            self.recorder.lane(0, request=request, backend=backend)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **options: Any) -> "RunRecording":
        """From ``--save``/``--no-history`` and the settings ``cli.main`` put on ``args``."""
        folder = getattr(getattr(args, "config", None), "history_dir", None)
        return cls(getattr(args, "save", None), not getattr(args, "no_history", False),
                   history_dir=folder if isinstance(folder, Path) else None, **options)

    def feed(self, event: StreamEvent, lane: int = 0) -> None:
        self.recorder.feed(event, lane)

    def tap(self, events: Iterable[StreamEvent]) -> Iterator[StreamEvent]:
        for event in events:
            self.recorder.feed(event)
            yield event

    async def atap(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        async for event in events:
            self.recorder.feed(event)
            yield event

    def finish(self) -> Path | None:
        """Write the session to ``--save`` and the history; returns the history file, if any."""
        if not self.recorder.lanes:
            return None  # nothing ran (e.g. the model failed to load)
        session = self.recorder.session()
        kept = None
        if self.keep_history:
            try:
                kept = history.keep(session, self.history_dir)
            except PlaygroundError as exc:
                print(f"playground: history not kept: {exc.message}", file=sys.stderr)
        if self.save_to is not None:
            saved = write(session, self.save_to)
            for note in saved.trimmed:  # the run is kept; say what had to give to fit the limits
                print(f"playground: {saved.path}: {inert_line(note)}", file=sys.stderr)
        return kept
