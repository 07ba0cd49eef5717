"""Typed events of a comparison: a lane's stream event, the batch summary, divergence and vote.

A lanes run yields ``LaneEvent`` (the engine's own Start/Token/Done/Failed events, each tagged with
its lane index) and ends with one ``BatchDone``; the compare layer adds ``Divergence`` and ``Vote``.
``to_dict`` gives the headless JSON-lines object of each (``playground.jsonlines`` for lane events).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from playground.engine.lane_events import BatchDone, LaneEvent
from playground.events import TokenEvent, round_logprob

__all__ = ["BatchDone", "CompareEvent", "Divergence", "LaneEvent", "TokenChoice", "Vote"]


@dataclass(frozen=True, slots=True)
class TokenChoice:
    """A token one lane took at a position, with the model's and the sampler's probability."""

    id: int
    text: str
    logprob: float | None
    """Raw log-probability (T = 1) in the distribution at this position."""
    p_sampled: float | None
    """Probability in this lane's final sampler distribution."""

    @classmethod
    def of(cls, event: TokenEvent) -> "TokenChoice":
        return cls(event.id, event.text, event.logprob, event.p_sampled)

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "logprob": round_logprob(self.logprob),
            "prob": None if self.prob is None else round(self.prob, 8),
            "p_sampled": None if self.p_sampled is None else round(self.p_sampled, 8),
        }


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where lane ``lane`` first leaves lane ``reference``.

    Up to ``index`` both lanes produced the same token ids, so at ``index`` they saw the same
    context and the same raw distribution: both ``logprob`` values are read from it (each lane's own
    read of it, equal up to float rounding of the batched decode).

    Attributes:
        index: first token index whose ids differ; when one completion is a strict prefix of the
            other, its length (that lane's token is then None: it had ended); None when both
            completions are identical.
        token: this lane's token at ``index``.
        reference_token: the reference lane's token at ``index``.
        by: "id" (token ids, same local model) or "text" (token texts: a remote lane has no ids,
            or the lanes run different models, whose ids mean different tokens). By text, the
            index is only meaningful when both sides tokenise alike, and the two logprobs come
            from two models' distributions.
    """

    lane: int
    reference: int
    index: int | None
    token: TokenChoice | None
    reference_token: TokenChoice | None
    by: str = "id"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "divergence",
            "lane": self.lane,
            "reference": self.reference,
            "index": self.index,
            "token": None if self.token is None else self.token.to_dict(),
            "reference_token": None if self.reference_token is None else self.reference_token.to_dict(),
        }
        if self.by != "id":
            out["compared_by"] = self.by
        return out


@dataclass(frozen=True, slots=True)
class Vote:
    """Self-consistency result over N samples.

    Attributes:
        answers: answer -> count, most votes first (ties: the answer seen first).
        majority: the answer with the most votes (ties: seen first); None if no sample answered.
        agreement: majority votes / all samples (samples without an answer count against it).
        by_sample: each sample's extracted answer (None: the extractor found none).
        tied: every answer sharing the top count, when more than one does.
    """

    answers: dict[str, int]
    majority: str | None
    agreement: float
    by_sample: tuple[str | None, ...]
    tied: tuple[str, ...] = field(default=())

    @property
    def n_samples(self) -> int:
        return len(self.by_sample)

    @property
    def no_answer(self) -> int:
        return sum(1 for a in self.by_sample if a is None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "vote",
            "answers": dict(self.answers),
            "majority": self.majority,
            "agreement": round(self.agreement, 6),
            "n_samples": self.n_samples,
            "no_answer": self.no_answer,
            "by_lane": list(self.by_sample),
        }
        if self.tied:
            out["tied"] = list(self.tied)
        return out


CompareEvent = Union[LaneEvent, BatchDone, Divergence, Vote]
