"""Events of a batched lanes run: each lane's stream event tagged with its lane, and the batch summary.

They live beside the engine that yields them (``engine/lanes.py``); ``playground.compare.events``
re-exports them with the comparison's own events (divergence, vote).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from playground import jsonlines
from playground.events import StreamEvent


@dataclass(frozen=True, slots=True)
class LaneEvent:
    """One stream event of lane ``lane`` (0-based, in the order the lanes were given)."""

    lane: int
    event: StreamEvent

    def to_dict(self) -> dict[str, Any]:
        return jsonlines.event_to_dict(self.event, lane=self.lane)


@dataclass(frozen=True, slots=True)
class BatchDone:
    """All lanes have ended; timing of the shared work.

    Attributes:
        n_lanes: lanes in the batch.
        prompt_tokens: length of the shared prompt; with several prompts (``n_prompts``), the sum
            of their lengths (what evaluating each of them once would take).
        prompt_tokens_evaluated: prompt tokens decoded for this run (once for all lanes; fewer
            than ``prompt_tokens`` when the previous run's prefix was reused, or prompts share
            a prefix).
        prompt_s: seconds from the start to the prompt's logits.
        n_tokens: tokens produced by all lanes together.
        n_steps: batched decodes after the prompt (each holds one token of every live lane).
        decode_s: seconds from the first token of any lane to the last token of any lane.
        decode_tok_s: aggregate decode rate, (n_tokens - lanes that produced a token) / decode_s,
            the batched analogue of a single run's (n - 1) / decode time.
        wall_s: seconds from the start to the end of the last lane.
        lanes: the lanes this batch held, when a mixed run has several batches (one per local
            model; remote lanes have none); empty: every lane of the run.
    """

    n_lanes: int
    prompt_tokens: int
    prompt_tokens_evaluated: int
    prompt_s: float
    n_tokens: int
    n_steps: int
    decode_s: float
    decode_tok_s: float | None
    wall_s: float
    lanes: tuple[int, ...] = ()
    n_prompts: int = 1
    """Distinct prompts among the lanes (prompt variants); equal prompts are evaluated once."""
    prompt_tokens_shared: int = 0
    """Prompt positions copied from another prompt's sequence instead of evaluated again."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "batch",
            "n_lanes": self.n_lanes,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_evaluated": self.prompt_tokens_evaluated,
            "prompt_s": round(self.prompt_s, 6),
            "n_tokens": self.n_tokens,
            "n_steps": self.n_steps,
            "decode_s": round(self.decode_s, 6),
            "decode_tok_s": None if self.decode_tok_s is None else round(self.decode_tok_s, 2),
            "wall_s": round(self.wall_s, 6),
        }
        if self.lanes:
            out["lanes"] = list(self.lanes)
        if self.n_prompts > 1:
            out["n_prompts"] = self.n_prompts
            out["prompt_tokens_shared"] = self.prompt_tokens_shared
        return out


def batch_summary(t0: float, prompt_s: float, n_prompt: int, n_evaluated: int,
                  spans: Sequence[tuple[int, float | None, float | None]], n_steps: int, *,
                  n_prompts: int = 1, prompt_tokens_shared: int = 0) -> BatchDone:
    """The figures of a batch from each lane's (tokens, first token time, last token time), any
    one clock; ``t0`` is ``time.perf_counter()`` at the start (for the wall time). Shared by the
    batched lanes and a one-lane run, so both count the same way."""
    firsts = [first for _, first, _ in spans if first is not None]
    lasts = [last for _, _, last in spans if last is not None]
    n_tokens = sum(n for n, _, _ in spans)
    decode_s = max(lasts) - min(firsts) if firsts else 0.0
    counted = n_tokens - len(firsts)  # each lane's first token comes from the prompt's logits
    return BatchDone(
        n_lanes=len(spans), prompt_tokens=n_prompt, prompt_tokens_evaluated=n_evaluated, prompt_s=prompt_s,
        n_tokens=n_tokens, n_steps=n_steps, decode_s=decode_s,
        decode_tok_s=(counted / decode_s) if counted > 0 and decode_s > 0 else None,
        wall_s=time.perf_counter() - t0, n_prompts=max(1, n_prompts), prompt_tokens_shared=prompt_tokens_shared,
    )
