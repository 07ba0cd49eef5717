"""Draw the samples of a sample tree: N lanes of one prompt, seeds s, s+1, ..., in batches.

The lanes run through ``RunJob`` (one ``LaneRunner`` batch per at most ``MAX_LANES`` samples, on
one loaded model): a lane takes exactly the tokens a single run with its seed takes
(tests/test_lanes.py), so the tree equals the one built from N independent runs
(tests/test_sample_tree.py). Up to 64 samples run as two batches of at most 32 rather than one
of 64: the lane limit stays what the compare screens were measured with, and the second batch
evaluates no prompt token (the engine keeps the prompt), so the cost is one extra step per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.run import LaneTranscript
from playground.engine.generator import resolve_seed
from playground.engine.lanes import MAX_LANES
from playground.errors import InvalidParameterError
from playground.events import DoneEvent
from playground.params import GenerationRequest

#: Most samples one tree draws.
MAX_TREE_SAMPLES = 64


def tree_requests(base: GenerationRequest, n: int) -> tuple[int, list[GenerationRequest]]:
    """The base seed actually used (-1 draws one, so it can be reported and replayed) and the N
    requests with seeds base, base + 1, ... (mod 2^32)."""
    if not 1 <= n <= MAX_TREE_SAMPLES:
        raise InvalidParameterError(f"samples must be between 1 and {MAX_TREE_SAMPLES}")
    seed = resolve_seed(base.sampler.seed)
    return seed, [replace(base, sampler=base.sampler.replace(seed=(seed + k) % 2**32)) for k in range(n)]


def batches(requests: Sequence[GenerationRequest], size: int = MAX_LANES) -> list[list[GenerationRequest]]:
    """Consecutive batches of at most ``size``, the first the largest (the model is loaded for it)."""
    return [list(requests[i : i + size]) for i in range(0, len(requests), size)]


def draw_samples(pool: EnginePool, requests: Sequence[GenerationRequest]) -> list[LaneTranscript]:
    """Every request's transcript, in order (blocking)."""
    out: list[LaneTranscript] = []
    for batch in batches(requests):
        out.extend(RunJob([LanePlan(r) for r in batch], pool).run())
    return out


def finish_reason(transcript: LaneTranscript) -> str | None:
    """How a sample ended ("stop", "length", "cancelled"), or None if it failed."""
    return transcript.end.finish_reason if isinstance(transcript.end, DoneEvent) else None
