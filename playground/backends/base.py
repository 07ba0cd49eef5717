"""The backend protocol: capabilities as data, ``stream(request)`` as typed events, ``aclose()``."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from playground.events import StreamEvent
from playground.params import GenerationRequest


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
        default_factory=lambda: frozenset(
            {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "greedy"}
        )
    )
    """Sampler settings the backend honours; others are not sent and are shown as ignored."""


@runtime_checkable
class Backend(Protocol):
    """Anything that can stream a completion as StartEvent, TokenEvent..., Done/FailedEvent."""

    name: str
    capabilities: Capabilities

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
