"""Typed stream events: what every backend yields and every front end consumes.

A stream is ``StartEvent``, then zero or more ``TokenEvent``, then exactly one ``DoneEvent`` or
``FailedEvent`` (which keeps the tokens already produced: they were yielded before it).
Probabilities a backend cannot provide are ``None`` ("not available from this backend"), never
invented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class Alternative:
    """One candidate token at a position, with its raw log-probability (T = 1)."""

    id: int
    text: str
    logprob: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "logprob": round_logprob(self.logprob)}


@dataclass(frozen=True, slots=True)
class RawDistribution:
    """The head of the raw next-token distribution at one position (sorted, most likely first).

    Enough of it to redraw the distribution under other sampler settings without re-running the
    model. ``logprobs`` are raw log-softmax values at T = 1 over the whole vocabulary, so the mass
    outside the head is ``1 - exp(logprobs).sum()``.
    """

    ids: np.ndarray
    logprobs: np.ndarray
    n_vocab: int
    log_z: float = 0.0
    """The log normaliser: raw logit = logprob + log_z (the repeat penalty acts on raw logits)."""
    allowed: np.ndarray | None = None
    """Under a constraint: which tokens of the head the grammar allowed at this position (bool,
    aligned with ``ids``); None without a constraint, or where it is not known (remote, sessions)."""
    n_allowed: int = 0
    """Under a constraint: how many tokens of the whole vocabulary the grammar allowed."""
    allowed_mass: float = 1.0
    """Under a constraint: the raw (T = 1) probability of all allowed tokens
    (``1 - TokenEvent.constraint_mass_removed``)."""

    @property
    def tail_mass(self) -> float:
        return max(0.0, 1.0 - float(np.exp(self.logprobs.astype(np.float64)).sum()))

    def allowed_only(self) -> "RawDistribution | None":
        """The distribution the sampler chain drew from under the constraint: the allowed tokens
        of the head, renormalised over everything allowed (the engine samples grammar first, among
        the allowed tokens only, from their raw logits). Raw logits are kept (``log_z`` moves by
        the same amount). None without a constraint, or when no allowed token is in the head."""
        if self.allowed is None or self.allowed_mass <= 0.0 or not bool(self.allowed.any()):
            return None
        log_mass = math.log(self.allowed_mass)
        return RawDistribution(self.ids[self.allowed], self.logprobs[self.allowed].astype(np.float64) - log_mass,
                               max(self.n_allowed, int(self.allowed.sum())), self.log_z + log_mass)


@dataclass(frozen=True, slots=True)
class StartEvent:
    """Generation is about to begin; states exactly what is being run."""

    model: dict[str, Any]
    prompt: str
    prompt_tokens: tuple[int, ...]
    params: dict[str, Any]
    backend: str = "llama.cpp"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token.

    Attributes:
        i: index in the completion, from 0.
        id: token id (-1 when a remote backend does not say).
        text: the text this token adds to the completion; "" while a multi-byte character is
            incomplete (its bytes come out with the token that completes it).
        logprob: raw log-probability of this token given everything before it (log-softmax at T=1).
        p_sampled: its probability in the sampler's final distribution (after penalties,
            truncations and temperature); 1.0 under greedy.
        top: the most likely raw alternatives at this position, most likely first.
        t: seconds since the start of the run when this token was ready.
        n_candidates: how many tokens survived the sampler chain.
        entropy: entropy (nats) of the raw distribution at this position.
        dist: head of the raw distribution for the live sampler view, when asked for.
    """

    i: int
    id: int
    text: str
    logprob: float | None
    p_sampled: float | None
    top: tuple[Alternative, ...]
    t: float
    n_candidates: int | None = None
    entropy: float | None = None
    dist: RawDistribution | None = field(default=None, repr=False, compare=False)
    forced: bool = False
    """Given, not sampled (``GenerationRequest.force_ids``): its logprob/top/entropy are the model's
    real ones at that position; ``p_sampled`` and ``n_candidates`` are None (no sampler drew it)."""
    constraint_mass_removed: float | None = None
    """Under a constraint (``GenerationRequest.constraint``): the raw (T = 1) probability of the
    tokens the grammar forbade at this step; None without one, or where it is not known (remote)."""
    unconstrained_id: int | None = None
    """The token the same sampler and seed would have taken without the constraint, where that
    differs from ``id`` (None: the same token, or not known)."""
    unconstrained_text: str | None = None
    """That token's text (display form)."""

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The run ended normally (or was cancelled); carries its timing."""

    finish_reason: FinishReason
    n_tokens: int
    ttft_s: float | None
    prompt_tok_s: float | None
    decode_tok_s: float | None
    prompt_tokens_evaluated: int = 0
    stop_string: str | None = None
    seed: int | None = None
    tail: str = ""
    """Text of bytes still pending at the end (an incomplete character, shown as U+FFFD)."""


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """The run failed part-way; tokens already yielded are kept and marked interrupted."""

    title: str
    message: str
    n_tokens: int


StreamEvent = Union[StartEvent, TokenEvent, DoneEvent, FailedEvent]


def round_logprob(value: float | None) -> float | None:
    """Round for JSON output: 6 decimals keep far more precision than the model has."""
    if value is None:
        return None
    if math.isinf(value):
        return -1e30 if value < 0 else 1e30
    return round(float(value), 6)
