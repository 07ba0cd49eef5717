"""The backend protocol: capabilities as data, ``stream(request)`` as typed events, ``aclose()``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from playground.events import StreamEvent
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest, SamplerParams


@dataclass(frozen=True)
class Capabilities:
    """What a backend can give; the UI adapts to it (e.g. "not available from this backend")."""

    logprobs: bool = True
    """Raw log-probability of each generated token."""
    max_alternatives: int = 100
    """How many alternatives per token it can return (0 = none)."""
    sampled_prob: bool = True
    """Probability of the token in the sampler's final distribution."""
    distribution: bool = True
    """A head of the raw distribution per token, for the live sampler view."""
    raw_prompt: bool = True
    """Accepts a raw prompt string (completion)."""
    chat: bool = True
    """Accepts chat messages."""
    seed: bool = True
    cancel: bool = True
    token_ids: bool = True
    sampler_params: frozenset[str] = field(
        default_factory=lambda: frozenset(f.name for f in dataclasses.fields(SamplerParams))
    )
    """Sampler settings the backend honours (default: every one, as the local engine); others are
    not sent and are shown as ignored."""
    constraints: frozenset[str] = frozenset({"json_schema", "grammar", "choices"})
    """Constraint kinds (``constraint.KINDS``) it can enforce; a run asking for another is refused
    before it starts (never run unconstrained)."""


#: Sampler settings older than the full llama.cpp set: a backend that does not honour one of these
#: leaves it to the server's default and says so (``not_sent``).
CLASSIC_SAMPLER_FIELDS = frozenset(
    {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "greedy"}
)


def refuse_unhonoured_samplers(sampler: SamplerParams, honoured: frozenset[str], label: str) -> None:
    """Refuse, before any request, a newer sampler stage set away from its default that the backend
    cannot send (running without it would silently sample differently).

    Raises:
        InvalidParameterError: naming the settings and the backend.
    """
    d = SamplerParams()
    bad = sorted(f for f in sampler.to_dict() if f not in CLASSIC_SAMPLER_FIELDS and f not in honoured
                 and getattr(sampler, f) != getattr(d, f))
    if bad:
        raise InvalidParameterError(f"{label} cannot apply {', '.join(bad)}: reset them or use the local engine or llama-server")


@runtime_checkable
class Backend(Protocol):
    """Anything that can stream a completion as StartEvent, TokenEvent..., Done/FailedEvent."""

    name: str
    capabilities: Capabilities

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
