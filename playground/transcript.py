"""What one stream produced so far: the one transcript every consumer builds on.

A run job keeps one per lane; the session recorder turns one into a stored ``Lane``; the UI's
run record and the compare screen read theirs. Events are kept as they came (the stream's own
typed events), with the wall-clock start and the monotonic times of the start and the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from playground.events import DoneEvent, FailedEvent, StartEvent, StreamEvent, TokenEvent

Clock = Callable[[], float]


def utc_now() -> str:
    """Now as ISO 8601 UTC to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Transcript:
    """One lane's events, appended as they arrive."""

    start: StartEvent | None = None
    tokens: list[TokenEvent] = field(default_factory=list)
    end: DoneEvent | FailedEvent | None = None
    started_utc: str = ""
    """Wall-clock time of the start event, ISO 8601 UTC."""
    t_start: float | None = None
    """``clock()`` at the start event, and at the end event."""
    t_end: float | None = None
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)

    def add(self, event: StreamEvent) -> None:
        match event:
            case StartEvent():
                self.start = event
                # A caller that knew the start earlier (a run begun before its model answered) keeps it.
                self.started_utc = self.started_utc or utc_now()
                self.t_start = self.clock() if self.t_start is None else self.t_start
            case TokenEvent():
                self.tokens.append(event)
            case DoneEvent() | FailedEvent():
                self.end = event
                self.t_end = self.clock()

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def text(self) -> str:
        """The completion as shown: every token's text, then a pending incomplete character."""
        tail = self.end.tail if isinstance(self.end, DoneEvent) else ""
        return "".join(t.text for t in self.tokens) + tail

    @property
    def elapsed_s(self) -> float | None:
        """From the start event to the end event, as this process saw them."""
        if self.t_start is None or self.t_end is None:
            return None
        return self.t_end - self.t_start

    def events(self) -> list[StreamEvent]:
        """The events so far, in stream order."""
        out: list[StreamEvent] = [self.start] if self.start is not None else []
        out.extend(self.tokens)
        if self.end is not None:
            out.append(self.end)
        return out
