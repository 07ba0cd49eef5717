"""The headless JSON-lines format of ``playground generate`` and ``compare`` (one object per line)."""

from __future__ import annotations

import json
import math
from typing import Any

from playground.events import (
    DoneEvent,
    FailedEvent,
    StartEvent,
    StreamEvent,
    TokenEvent,
    round_logprob,
)
from playground.terminal_text import inert_json


def _round(value: float | None, digits: int = 6) -> float | None:
    """Rounded, or None for a value JSON cannot hold (NaN, infinity: e.g. a damaged model's)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _logprob(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round_logprob(value)


def _nonfinite(event: TokenEvent) -> list[str]:
    """The token's numbers that are NaN (or an infinite entropy/probability): written as null."""
    bad = [] if event.logprob is None or not math.isnan(event.logprob) else ["logprob"]
    for name in ("p_sampled", "entropy"):
        value = getattr(event, name)
        if value is not None and not math.isfinite(value):
            bad.append(name)
    if any(math.isnan(alt.logprob) for alt in event.top):
        bad.append("top")
    return bad


def event_to_dict(event: StreamEvent, lane: int | None = None) -> dict[str, Any]:
    """The JSON object for one event; ``lane`` is added to every event when given."""
    match event:
        case StartEvent():
            out: dict[str, Any] = {
                "event": "start",
                "backend": event.backend,
                "model": event.model,
                "prompt": event.prompt,
                "prompt_tokens": list(event.prompt_tokens),
                "params": event.params,
            }
        case TokenEvent():
            out = {
                "event": "token",
                "i": event.i,
                "id": event.id,
                "text": event.text,
                "logprob": _logprob(event.logprob),
                "p_sampled": _round(event.p_sampled, 8),
                "n_candidates": event.n_candidates,
                "entropy": _round(event.entropy),
                "top": [{"id": a.id, "text": a.text, "logprob": _logprob(a.logprob)} for a in event.top],
                "t": _round(event.t),
            }
            if event.forced:  # only on forced tokens: a generated token's line is unchanged
                out["forced"] = True
            if event.constraint_mass_removed is not None:  # only under a constraint
                out["constraint_mass_removed"] = _round(event.constraint_mass_removed, 8)
            if event.unconstrained_id is not None:
                out["unconstrained_id"] = event.unconstrained_id
                out["unconstrained_text"] = event.unconstrained_text
            bad = _nonfinite(event)
            if bad:
                out["nonfinite"] = bad  # the model gave NaN/inf here (a damaged file?): shown as null
        case DoneEvent():
            out = {
                "event": "done",
                "finish_reason": event.finish_reason,
                "n_tokens": event.n_tokens,
                "ttft_s": _round(event.ttft_s),
                "prompt_tok_s": _round(event.prompt_tok_s, 2),
                "decode_tok_s": _round(event.decode_tok_s, 2),
                "prompt_tokens_evaluated": event.prompt_tokens_evaluated,
                "seed": event.seed,
            }
            if event.stop_string is not None:
                out["stop_string"] = event.stop_string
            if event.tail:
                out["tail"] = event.tail
        case FailedEvent():
            out = {
                "event": "failed",
                "finish_reason": "error",
                "title": event.title,
                "message": event.message,
                "n_tokens": event.n_tokens,
            }
        case _:
            raise TypeError(f"not a stream event: {event!r}")
    if lane is not None:
        out = {"event": out.pop("event"), "lane": lane, **out}
    return out


def dumps(event: StreamEvent, lane: int | None = None) -> str:
    """One event as a JSON line's text (no newline)."""
    return dumps_obj(event_to_dict(event, lane))


def dumps_obj(obj: Any) -> str:
    """Any JSON object as one line that is safe to write to a terminal (see ``terminal_text``)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere (a damaged model): null, as JSON can hold
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)
    return inert_json(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
