"""What one run produced so far, and the figures derived from it (pure: no Textual here).

The completion view, inspector and metrics read from one ``RunRecord``; a compare lane or a
replayed session can fill one from the same events.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from playground.events import DoneEvent, FailedEvent, StartEvent, StreamEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

Source = Literal["", "live", "session", "replay"]


@dataclass
class RunRecord:
    """Events of one run, appended as they arrive, and where the run came from."""

    start: StartEvent | None = None
    tokens: list[TokenEvent] = field(default_factory=list)
    done: DoneEvent | None = None
    failed: FailedEvent | None = None
    source: Source = ""
    """"live" (run here: kept in the history), "session" (opened), "replay" (streamed from a file)."""
    request: GenerationRequest | None = None
    """What a live run asked for (the sampler as requested: a random seed stays -1)."""
    spec: Any = None
    """The ``prompt_builder.PromptSpec`` a live run was started from."""
    backend: Any = None
    """A live remote run's ``sessions.schema.BackendSpec`` (None: derived from the start event)."""
    session: Any = None
    """The ``sessions.schema.Session`` an opened or replayed run comes from (saved back whole)."""
    lane_index: int = 0
    """Which of ``session``'s lanes is shown."""
    started_utc: str = ""
    t0: float | None = None
    """``time.monotonic()`` when the run started, and when its end arrived (for the elapsed time)."""
    t1: float | None = None

    def add(self, event: StreamEvent) -> None:
        match event:
            case StartEvent():
                self.start = event
            case TokenEvent():
                self.tokens.append(event)
            case DoneEvent():
                self.done = event
                self.t1 = time.monotonic()
            case FailedEvent():
                self.failed = event
                self.t1 = time.monotonic()

    def events(self) -> list[StreamEvent]:
        """A snapshot of the events so far, in stream order."""
        out: list[StreamEvent] = [self.start] if self.start is not None else []
        out.extend(self.tokens)
        end = self.done or self.failed
        return out + [end] if end is not None else out

    @property
    def lane(self) -> Any:
        """The shown ``Lane`` of an opened or replayed session, else None."""
        return self.session.lanes[self.lane_index] if self.session is not None else None

    @property
    def finished(self) -> bool:
        return self.done is not None or self.failed is not None

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens) + (self.done.tail if self.done else "")

    @property
    def params(self) -> SamplerParams | None:
        """The sampler settings the run used (seed resolved), from its start event."""
        return SamplerParams.from_dict(self.start.params) if self.start else None

    def history(self, i: int) -> list[int]:
        """Token ids before completion position ``i`` (prompt then generated), for the penalties."""
        prompt = list(self.start.prompt_tokens) if self.start else []
        return prompt + [t.id for t in self.tokens[:i]]

    def perplexity(self) -> float | None:
        """exp(-mean raw logprob) of the generated tokens; None when logprobs are unavailable."""
        lps = [t.logprob for t in self.tokens if t.logprob is not None]
        if not lps or len(lps) != len(self.tokens):
            return None
        return math.exp(-sum(lps) / len(lps))

    def mean_entropy(self) -> float | None:
        hs = [t.entropy for t in self.tokens if t.entropy is not None]
        return sum(hs) / len(hs) if hs and len(hs) == len(self.tokens) else None

    def gaps(self, last: int = 120) -> list[float]:
        """Seconds between consecutive tokens (the last ``last`` of them)."""
        ts = [t.t for t in self.tokens[-(last + 1):]]
        return [b - a for a, b in zip(ts, ts[1:])]

    def live_rate(self) -> float | None:
        """Decode tokens/s so far (first to last token)."""
        if len(self.tokens) < 2:
            return None
        span = self.tokens[-1].t - self.tokens[0].t
        return (len(self.tokens) - 1) / span if span > 0 else None
