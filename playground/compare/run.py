"""One comparison, start to end: lane requests, the batched run, then divergence and vote.

``run_compare`` is what the headless command prints and what a UI would drive in a thread worker:
it forwards every ``LaneEvent`` as it comes, then ``BatchDone``, then the analysis events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Protocol

from playground.compare.divergence import divergences
from playground.compare.events import BatchDone, CompareEvent, LaneEvent
from playground.compare.extract import Extractor
from playground.compare.vote import tally
from playground.errors import InvalidParameterError, PlaygroundError
from playground.events import DoneEvent
from playground.params import RANDOM_SEED, GenerationRequest, SamplerParams
from playground.stream_guard import failed_event
from playground.transcript import Transcript

MAX_SAMPLES = 32


class LaneSource(Protocol):
    """What runs the lanes: a ``backends.local.LocalBackend`` or ``LaneRunner`` (one model), or a
    ``compare.mixed.MixedRunner``."""

    def stream(
        self, requests: Sequence[GenerationRequest], cancel: threading.Event | None = None, *, dist_size: int = 0
    ) -> Iterator[LaneEvent | BatchDone]: ...


def lane_stream(
    source: LaneSource, requests: Sequence[GenerationRequest], cancel: threading.Event | None, dist_size: int
) -> Iterator[LaneEvent | BatchDone]:
    """``source``'s lane events: a Backend that batches names its lane stream ``stream_lanes``
    (its ``stream`` is the protocol's one-request async stream)."""
    run = getattr(source, "stream_lanes", None) or source.stream
    return run(requests, cancel, dist_size=dist_size)


def lane_requests(base: GenerationRequest, samplers: Sequence[SamplerParams]) -> list[GenerationRequest]:
    """One request per lane: the shared prompt and limits, each lane's own sampler."""
    return [replace(base, sampler=s) for s in samplers]


def sample_requests(base: GenerationRequest, n: int) -> list[GenerationRequest]:
    """N samples of the same settings; a fixed seed s gives seeds s, s+1, ... (else each is random)."""
    if not 1 <= n <= MAX_SAMPLES:
        raise InvalidParameterError(f"samples must be between 1 and {MAX_SAMPLES}")
    seed = base.sampler.seed
    if seed == RANDOM_SEED:
        return [base] * n
    return [replace(base, sampler=base.sampler.replace(seed=(seed + k) % 2**32)) for k in range(n)]


#: What one lane produced so far (the core's one transcript).
LaneTranscript = Transcript


def feed(transcripts: list[LaneTranscript], item: LaneEvent) -> None:
    """Record one lane event in its lane's transcript."""
    transcripts[item.lane].add(item.event)


def run_compare(
    runner: LaneSource,
    requests: Sequence[GenerationRequest],
    cancel: threading.Event | None = None,
    *,
    diverge: bool = True,
    extractor: Extractor | None = None,
    transcripts: list[LaneTranscript] | None = None,
    dist_size: int = 0,
) -> Iterator[CompareEvent]:
    """Run the lanes and yield every event, then a ``Divergence`` per lane after lane 0 (when
    ``diverge``), then a ``Vote`` over the extracted answers (when ``extractor`` is given).

    Args:
        transcripts: a list to fill with each lane's transcript (the caller keeps the samples).

    A mixed runner (lanes on several models or backends) yields one ``BatchDone`` per local model,
    and its ``id_spaces`` make divergence compare token texts where ids are not comparable.
    """
    lanes = transcripts if transcripts is not None else []
    lanes[:] = [LaneTranscript() for _ in requests]
    stream = lane_stream(runner, requests, cancel, dist_size)
    try:
        for item in stream:
            if isinstance(item, LaneEvent):
                feed(lanes, item)
            yield item
    except Exception as exc:  # noqa: BLE001 - the one failure path: every lane keeps its tokens
        if isinstance(exc, PlaygroundError) and not any(lane.start for lane in lanes):
            raise  # nothing ran yet: the caller reports it
        for k, lane in enumerate(lanes):
            if lane.end is None:
                item = LaneEvent(k, failed_event(exc, len(lane.tokens)))
                feed(lanes, item)
                yield item
    finally:
        stream.close()  # now, while the engines behind it are alive (not at garbage collection)
    if diverge and len(lanes) > 1:
        yield from divergences([lane.tokens for lane in lanes], id_spaces=getattr(runner, "id_spaces", None))
    if extractor is not None:
        yield tally([extractor(lane.text) if finished(lane) else None for lane in lanes])


def finished(lane: LaneTranscript) -> bool:
    """Whether the lane ran to its end (a failed or cancelled sample's partial text is no answer)."""
    return isinstance(lane.end, DoneEvent) and lane.end.finish_reason != "cancelled"
