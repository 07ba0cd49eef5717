"""Replaying a session: its lanes' events again, at the recorded timing scaled by a speed factor.

The events are the same typed events a live run yields (Start, Token..., Done/Failed), rebuilt from
the trace, so the front ends show probabilities, the inspector and the distribution view on replayed
tokens exactly as on live ones. ``timeline`` is pure; ``replay`` and ``areplay`` only add the waiting.

No single wait is longer than ``MAX_WAIT_S``: a recorded pause of an hour (a stalled server, a
laptop asleep, a hand edit) is cut short, the rest of the replay keeps its relative timing, and
the item after the pause says how much was skipped (``ReplayItem.skipped_s``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, RawDistribution, StartEvent, StreamEvent, TokenEvent
from playground.sessions.schema import Lane, Session, TokenRecord


#: The longest a replay waits for one item, in seconds of real time (whatever the speed).
MAX_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One event of one lane, due ``at`` seconds after the replay starts (at speed 1)."""

    at: float
    lane: int
    event: StreamEvent
    skipped_s: float = 0.0
    """Recorded seconds of a pause before this item that the replay did not wait (see MAX_WAIT_S)."""


def skipped_note(item: ReplayItem) -> str:
    """One line saying that a long pause was cut short (for the front ends to show)."""
    return (f"replay: skipped {item.skipped_s:.1f} s of a recorded pause before this event "
            f"(waits are capped at {MAX_WAIT_S:g} s)")


def start_event(lane: Lane) -> StartEvent:
    """The start event the lane's run yielded, rebuilt from its receipt."""
    rc, backend = lane.receipt, lane.backend
    model: dict[str, Any] = {"name": rc.model_name or backend.model, "replay": True}
    extras = {
        "size": rc.model_size, "sha256": rc.model_sha256, "n_ctx": rc.n_ctx, "n_gpu_layers": rc.n_gpu_layers,
        "n_threads": rc.n_threads, "llama_cpp_python": rc.llama_cpp_python, "path": backend.model_path,
        "base_url": backend.base_url, "model": backend.model if backend.kind != "local" else None,
    }
    model.update({k: v for k, v in extras.items() if v is not None})
    params = {
        **lane.sampler.to_dict(),
        "seed": rc.seed if rc.seed is not None else lane.sampler.seed,
        "max_tokens": lane.request.max_tokens,
        "stop": list(lane.request.stop),
        "top_n": lane.request.top_n,
        **({"constraint": lane.request.constraint.to_dict()} if lane.request.constraint is not None else {}),
    }
    return StartEvent(
        model=model,
        prompt=rc.prompt_text,
        prompt_tokens=rc.prompt_tokens,
        params=params,
        backend="llama.cpp" if backend.kind == "local" else backend.kind,
    )


def raw_distribution(tok: TokenRecord, n_vocab: int | None) -> RawDistribution | None:
    """The raw head for the distribution view: the kept head, else the alternatives.

    Needs the recorded normaliser (``log_z``) and vocabulary size; without them there is none,
    rather than one with an invented normaliser.
    """
    if tok.log_z is None or n_vocab is None:
        return None
    if tok.dist is not None:
        ids, logprobs = tok.dist.ids, tok.dist.logprobs
    else:
        ids = tuple(alt.id for alt in tok.top)
        logprobs = tuple(alt.logprob for alt in tok.top)
    return RawDistribution(np.asarray(ids, dtype=np.int32), np.asarray(logprobs, dtype=np.float32), n_vocab, tok.log_z)


def token_event(tok: TokenRecord, n_vocab: int | None = None) -> TokenEvent:
    return TokenEvent(
        i=tok.i,
        id=tok.id,
        text=tok.text,
        logprob=tok.logprob,
        p_sampled=tok.p_sampled,
        top=tok.top,
        t=tok.t,
        n_candidates=tok.n_candidates,
        entropy=tok.entropy,
        dist=raw_distribution(tok, n_vocab),
        forced=tok.forced,
        constraint_mass_removed=tok.constraint_mass_removed,
        unconstrained_id=tok.unconstrained_id,
        unconstrained_text=tok.unconstrained_text,
    )


def end_event(lane: Lane) -> DoneEvent | FailedEvent:
    """How the lane ended; a lane saved before it finished ends as "cancelled" here."""
    if lane.error is not None:
        return FailedEvent(lane.error.title, lane.error.message, len(lane.tokens))
    m = lane.metrics
    return DoneEvent(
        finish_reason=lane.finish_reason if lane.finish_reason not in (None, "error") else "cancelled",  # type: ignore[arg-type]
        n_tokens=len(lane.tokens),
        ttft_s=m.ttft_s,
        prompt_tok_s=m.prompt_tok_s,
        decode_tok_s=m.decode_tok_s,
        prompt_tokens_evaluated=m.prompt_tokens_evaluated,
        stop_string=lane.stop_string,
        seed=lane.receipt.seed,
        tail=lane.tail,
    )


def lane_events(lane: Lane) -> list[tuple[float, StreamEvent]]:
    """The lane's events with their times since the lane started."""
    out: list[tuple[float, StreamEvent]] = [(0.0, start_event(lane))]
    n_vocab = lane.receipt.n_vocab
    out.extend((tok.t, token_event(tok, n_vocab)) for tok in lane.tokens)
    last = lane.tokens[-1].t if lane.tokens else 0.0
    out.append((max(last, lane.metrics.elapsed_s or 0.0), end_event(lane)))
    return out


def timeline(session: Session) -> list[ReplayItem]:
    """Every lane's events merged in the order they happened (ties: lane order)."""
    keyed = []
    for k, lane in enumerate(session.lanes):
        for seq, (t, event) in enumerate(lane_events(lane)):
            keyed.append((lane.offset_s + t, k, seq, event))
    keyed.sort(key=lambda item: item[:3])
    return [ReplayItem(at, k, event) for at, k, _, event in keyed]


def _check_speed(speed: float) -> None:
    if not speed >= 0:  # also rejects NaN
        raise InvalidParameterError("replay speed must be 0 (instant) or positive")


def _paced(items: list[ReplayItem], speed: float, now: Callable[[], float]) -> Iterator[tuple[float, ReplayItem]]:
    """Each item with how long to wait before it; waits past MAX_WAIT_S are cut to it.

    Waits are measured from the replay's start, not between items, so slow consumers do not
    make the replay drift further behind; a cut pause moves that start forward by what it skipped.
    """
    t0 = now()
    shift = 0.0  # recorded seconds skipped so far
    for item in items:
        delay = t0 + (item.at - shift) / speed - now() if speed > 0 else 0.0
        if delay > MAX_WAIT_S:  # also an infinite delay (a tiny speed): only finite values are kept
            skip = (item.at - shift) - (now() - t0 + MAX_WAIT_S) * speed
            shift += skip
            item = dataclasses.replace(item, skipped_s=skip)
            delay = MAX_WAIT_S
        yield delay, item


def replay(
    session: Session,
    speed: float = 1.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ReplayItem]:
    """Yield the timeline, each item when it is due: recorded time / ``speed``; 0 = no waiting."""
    _check_speed(speed)
    for delay, item in _paced(timeline(session), speed, clock):
        if delay > 0:
            sleep(delay)
        yield item


async def areplay(session: Session, speed: float = 1.0) -> AsyncIterator[ReplayItem]:
    """``replay`` for an event loop (the UI): waits with ``asyncio.sleep``."""
    _check_speed(speed)
    loop = asyncio.get_running_loop()
    for delay, item in _paced(timeline(session), speed, loop.time):
        if delay > 0:
            await asyncio.sleep(delay)
        yield item
