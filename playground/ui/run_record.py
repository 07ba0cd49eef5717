"""What one run produced so far, and the figures derived from it (pure: no Textual here).

The completion view, inspector and metrics read from one ``RunRecord``; a compare lane or a
replayed session can fill one from the same events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from playground.events import DoneEvent, FailedEvent, StartEvent, StreamEvent, TokenEvent
from playground.params import SamplerParams


@dataclass
class RunRecord:
    """Events of one run, appended as they arrive."""

    start: StartEvent | None = None
    tokens: list[TokenEvent] = field(default_factory=list)
    done: DoneEvent | None = None
    failed: FailedEvent | None = None

    def add(self, event: StreamEvent) -> None:
        match event:
            case StartEvent():
                self.start = event
            case TokenEvent():
                self.tokens.append(event)
            case DoneEvent():
                self.done = event
            case FailedEvent():
                self.failed = event

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
