"""Stream framing (SSE, NDJSON) and the checked field readers, without a network."""

from __future__ import annotations

import pytest

from playground.backends.remote import Piece, pieces_for
from playground.backends.sse import (
    MalformedStream,
    SseEvent,
    as_logprob,
    iter_ndjson,
    iter_sse,
    parse_json_object,
    top_alternatives,
)


async def lines(*items: str):
    for item in items:
        yield item


async def events(*raw: str) -> list[SseEvent]:
    return [e async for e in iter_sse(lines(*raw))]


async def test_sse_fields_comments_and_multiline_data():
    got = await events(": ping", "data: {\"a\": 1}", "", "event: error", "data: line1", "data:line2", "\r", "data: [DONE]", "")
    assert got == [SseEvent("message", '{"a": 1}'), SseEvent("error", "line1\nline2"), SseEvent("message", "[DONE]")]


async def test_sse_last_event_without_blank_line_and_ignored_fields():
    assert await events("id: 7", "retry: 10", "data: x") == [SseEvent("message", "x")]
    assert await events("", "", ": only comments") == []


async def test_ndjson_skips_blank_lines_and_rejects_garbage():
    got = [o async for o in iter_ndjson(lines('{"a": 1}', "  ", '{"b": 2}'))]
    assert got == [{"a": 1}, {"b": 2}]
    with pytest.raises(MalformedStream, match="invalid JSON"):
        [o async for o in iter_ndjson(lines('{"a": 1', ))]


def test_json_object_errors_quote_briefly():
    with pytest.raises(MalformedStream, match="expected a JSON object"):
        parse_json_object("[1, 2]")
    with pytest.raises(MalformedStream) as info:
        parse_json_object("x" * 500)
    assert len(str(info.value)) < 120


def test_logprob_values():
    assert as_logprob(None) is None
    assert as_logprob(-0.5) == -0.5 and as_logprob(0) == 0.0 and as_logprob(3e-7) == 0.0
    assert as_logprob(-9999.0) is None  # OpenAI's "not in the top 20" placeholder
    # Optional data: a malformed value is "not available", not a failed run (issue 15).
    for bad in ("x", True, 0.7, float("nan"), float("inf"), float("-inf"), [-0.5], {"a": 1}, 10**400):
        assert as_logprob(bad) is None


def test_top_alternatives_sorted_truncated_unknown_dropped():
    alts = top_alternatives([("a", -2.0), ("b", -0.1), ("c", None), ("d", -1.0)], 2)
    assert [(a.text, a.logprob, a.id) for a in alts] == [("b", -0.1, -1), ("d", -1.0, -1)]


def test_pieces_for_chunks():
    a, b = Piece("He", -0.1), Piece("llo", -0.2)
    assert pieces_for("", []) == [] and pieces_for("x", []) == [Piece("x")]
    assert pieces_for("Hi", [a]) == [Piece("Hi", -0.1)]  # one entry: the chunk's text is the token's
    assert pieces_for("Hello", [a, b]) == [a, b]
    odd = pieces_for("Hé", [a, b])  # entries that do not add up: the text stays the server's
    assert "".join(p.text for p in odd) == "Hé" and [p.logprob for p in odd] == [-0.1, -0.2]
