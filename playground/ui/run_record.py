"""What one run produced so far, and the figures derived from it (pure: no Textual here).

A ``RunRecord`` is the core's ``Transcript`` (the one every consumer builds on: run jobs, the
session recorder, the history) plus where the run came from. The completion view, inspector and
metrics read from it; a compare lane or a replayed session fills one from the same events, and
saving hands it to the session recorder as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from playground.events import DoneEvent, FailedEvent
from playground.params import GenerationRequest, SamplerParams
from playground.transcript import Transcript

Source = Literal["", "live", "session", "replay"]


@dataclass
class RunRecord(Transcript):
    """Events of one run, appended as they arrive, and where the run came from."""

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

    @property
    def done(self) -> DoneEvent | None:
        return self.end if isinstance(self.end, DoneEvent) else None

    @property
    def failed(self) -> FailedEvent | None:
        return self.end if isinstance(self.end, FailedEvent) else None

    @property
    def lane(self) -> Any:
        """The shown ``Lane`` of an opened or replayed session, else None."""
        return self.session.lanes[self.lane_index] if self.session is not None else None

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
