"""Reading remote streams: SSE (OpenAI) and NDJSON (Ollama) framing, and checked field values.

The framing parsers take the response's text lines and yield payloads; they never decide what a
payload means. Malformed JSON, or a field of the wrong type, raises ``MalformedStream`` with a
short excerpt of what arrived.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from playground.events import Alternative

DONE = "[DONE]"
#: OpenAI's "this token was not in the top 20" placeholder: not a probability.
_SENTINEL = -9999.0
_EXCERPT = 80


class MalformedStream(Exception):
    """The server sent something that is not the protocol (bad JSON, wrong shape)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event: its ``event:`` type ("message" by default) and joined ``data:``."""

    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Parse SSE per the WHATWG rules that matter here: fields, comments, multi-line data.

    An event is dispatched at a blank line (and at the end of the stream, where some servers omit
    the last blank line). ``id:`` and ``retry:`` are ignored: we never reconnect mid-completion.
    """
    data: list[str] = []
    event = ""
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive ping
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SseEvent(event or "message", "\n".join(data))


async def iter_ndjson(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per non-blank line (Ollama's streaming format)."""
    async for raw in lines:
        line = raw.strip()
        if line:
            yield parse_json_object(line)


def parse_json_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object, or MalformedStream quoting the start of it."""
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedStream(f"invalid JSON: {excerpt(text)}") from None
    if not isinstance(value, dict):
        raise MalformedStream(f"expected a JSON object, got: {excerpt(text)}")
    return value


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A short, single-line quote of server output for an error message."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def as_text(value: Any) -> str:
    """A text field (None counts as empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedStream(f"expected text, got {type(value).__name__}")
    return value


def as_logprob(value: Any) -> float | None:
    """A log-probability field: None when absent or a placeholder, never made up."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise MalformedStream(f"a log-probability is not a number: {value!r}")
    value = float(value)
    if value == _SENTINEL:
        return None  # "not among the top 20": the server did not give its probability
    if math.isnan(value) or value > 1e-6:
        raise MalformedStream(f"impossible log-probability {value}")
    return min(value, 0.0)  # float noise can put a certain token a hair above 0


def top_alternatives(items: list[tuple[str, float | None]], top_n: int) -> tuple[Alternative, ...]:
    """The ``top_n`` most likely (text, logprob) pairs, most likely first; ids are not sent (-1)."""
    known = [(t, lp) for t, lp in items if lp is not None]
    known.sort(key=lambda item: -item[1])
    return tuple(Alternative(-1, t, lp) for t, lp in known[:top_n])
