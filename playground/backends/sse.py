"""Reading remote streams: SSE (OpenAI) and NDJSON (Ollama) framing, and checked field values.

The framing parsers take the response's text lines and yield payloads; they never decide what a
payload means. Malformed JSON (also nested too deeply to parse), or a required field of the wrong
type, raises ``MalformedStream`` with a short excerpt of what arrived; an optional field that is
malformed (a log-probability that is a string, NaN or infinite) reads as None, "not available".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from playground.events import Alternative

DONE = "[DONE]"
#: OpenAI's "this token was not in the top 20" placeholder: not a probability.
_SENTINEL = -9999.0
_EXCERPT = 80
_SURROGATE = re.compile("[\ud800-\udfff]")
#: One SSE event may span many ``data:`` lines; past this many characters it is not the protocol.
MAX_EVENT = 1024 * 1024


class MalformedStream(Exception):
    """The server sent something that is not the protocol (bad JSON, wrong shape)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event: its ``event:`` type ("message" by default) and joined ``data:``."""

    event: str
    data: str


async def _each(lines: AsyncIterator[str | list[str]]) -> AsyncIterator[list[str]]:
    async for item in lines:
        yield item if isinstance(item, list) else [item]


async def iter_sse(lines: AsyncIterator[str | list[str]]) -> AsyncIterator[SseEvent]:
    """Parse SSE per the WHATWG rules that matter here: fields, comments, multi-line data.

    ``lines`` yields lines, or lists of lines (``body.iter_lines``' batches). An event is
    dispatched at a blank line (and at the end of the stream, where some servers omit the last
    blank line). ``id:`` and ``retry:`` are ignored: we never reconnect mid-completion.
    """
    data: list[str] = []
    event, size = "", 0
    async for batch in _each(lines):
        for raw in batch:
            line = raw.rstrip("\r")
            if not line:
                if data:
                    yield SseEvent(event or "message", "\n".join(data))
                data, event, size = [], "", 0
                continue
            if line.startswith(":"):
                continue  # comment / keep-alive ping
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
                size += len(value) + 1
                if size > MAX_EVENT:
                    raise MalformedStream(f"an event is longer than {MAX_EVENT} characters")
            elif name == "event":
                event = value
    if data:
        yield SseEvent(event or "message", "\n".join(data))


async def iter_ndjson(lines: AsyncIterator[str | list[str]]) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per non-blank line (Ollama's streaming format); lines or batches of them."""
    async for batch in _each(lines):
        for raw in batch:
            line = raw.strip()
            if line:
                yield parse_json_object(line)


def parse_json_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object, or MalformedStream quoting the start of it."""
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedStream(f"invalid JSON: {excerpt(text)}") from None
    except RecursionError:  # not a ValueError: "[[[[..." nested deeper than the parser's stack
        raise MalformedStream(f"JSON nested too deeply: {excerpt(text)}") from None
    if not isinstance(value, dict):
        raise MalformedStream(f"expected a JSON object, got: {excerpt(text)}")
    return value


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A short, single-line quote of server output for an error message."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (JSON's ``"\\ud800"``) as U+FFFD: they cannot be encoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)  # one U+FFFD per surrogate, like a decoder would
    return text


def as_text(value: Any) -> str:
    """A text field (None counts as empty); anything else but a string is MalformedStream."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedStream(f"expected text, got {type(value).__name__}")
    return clean_text(value)


def as_logprob(value: Any) -> float | None:
    """A log-probability field: None when absent, a placeholder or impossible, never made up.

    It is optional data, so a malformed one (a string, a list, NaN, +-inf, a positive value) means
    "not available" rather than failing a run whose text is fine.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int past float range (JSON allows 1 followed by 400 zeros)
        return None
    if value == _SENTINEL or not math.isfinite(value) or value > 1e-6:
        return None  # -9999 is "not among the top 20": the server did not give its probability
    return min(value, 0.0)  # float noise can put a certain token a hair above 0


def as_count(value: Any) -> int | None:
    """A non-negative count (tokens), or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None


def as_rate(count: Any, duration: Any, per_second: float = 1.0) -> float | None:
    """``count`` per second over ``duration`` (in 1/per_second units) when sane and finite, else None."""
    n = as_count(count)
    if n is None or not isinstance(duration, (int, float)) or isinstance(duration, bool):
        return None
    try:
        rate = n / (float(duration) / per_second)
    except (OverflowError, ZeroDivisionError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def as_list(value: Any) -> list[Any]:
    """A list field; anything else (a number, a string, an object) reads as empty."""
    return value if isinstance(value, list) else []


def top_alternatives(items: list[tuple[str, float | None]], top_n: int) -> tuple[Alternative, ...]:
    """The ``top_n`` most likely (text, logprob) pairs, most likely first; ids are not sent (-1)."""
    known = [(clean_text(t), lp) for t, lp in items if lp is not None and isinstance(t, str)]
    known.sort(key=lambda item: -item[1])
    return tuple(Alternative(-1, t, lp) for t, lp in known[:top_n])
