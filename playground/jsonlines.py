"""The headless JSON-lines format of ``playground generate`` and ``compare`` (one object per line)."""

from __future__ import annotations

import json
from typing import Any

from playground.events import (
    DoneEvent,
    FailedEvent,
    StartEvent,
    StreamEvent,
    TokenEvent,
    round_logprob,
)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


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
                "logprob": round_logprob(event.logprob),
                "p_sampled": _round(event.p_sampled, 8),
                "n_candidates": event.n_candidates,
                "entropy": _round(event.entropy),
                "top": [alt.to_dict() for alt in event.top],
                "t": round(event.t, 6),
            }
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
    return json.dumps(event_to_dict(event, lane), ensure_ascii=False)
