"""Fuzzing the remote parsers: random JSON values in every logprob / top_logprobs / usage / timing
field, and random bytes as lines. The parser yields pieces or raises one of its two failure types
(which the stream turns into a FailedEvent); through the real fault server, the stream always
ends in exactly one Done or FailedEvent and every event serialises as strict JSON."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault_server import FaultServer
from helpers import collect
from playground import jsonlines
from playground.backends.endpoints import Endpoint
from playground.backends.faults import RemoteFailure
from playground.backends.ollama import OllamaBackend
from playground.backends.openai_compat import OpenAIBackend
from playground.backends.remote import Piece
from playground.backends.sse import MalformedStream
from playground.events import DoneEvent, FailedEvent
from playground.params import GenerationRequest

REQ = GenerationRequest("Hi", top_n=3)

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                      max_leaves=12)
maybe_text = st.text(max_size=6) | values


def either(field_strategy):
    """A well-formed value part of the time, anything at all the rest."""
    return field_strategy | values


completion_logprobs = st.fixed_dictionaries({
    "tokens": either(st.lists(st.text(max_size=4), max_size=3)),
    "token_logprobs": either(st.lists(st.floats(max_value=0) | st.none(), max_size=3)),
    "top_logprobs": either(st.lists(st.dictionaries(st.text(max_size=4), values, max_size=3), max_size=3)),
})
completion_chunk = st.fixed_dictionaries({
    "choices": either(st.lists(st.fixed_dictionaries({"text": maybe_text, "logprobs": either(completion_logprobs),
                                                      "finish_reason": values}), min_size=1, max_size=2)),
    "usage": either(st.fixed_dictionaries({"prompt_tokens": values})),
})
chat_entry = st.fixed_dictionaries({"token": maybe_text, "logprob": values,
                                    "top_logprobs": either(st.lists(st.fixed_dictionaries({"token": maybe_text, "logprob": values}), max_size=3))})
chat_chunk = st.fixed_dictionaries({
    "choices": st.lists(st.fixed_dictionaries({"delta": either(st.fixed_dictionaries({"content": maybe_text})),
                                               "logprobs": either(st.fixed_dictionaries({"content": either(st.lists(chat_entry, max_size=3))})),
                                               "finish_reason": values}), min_size=1, max_size=1),
})
ollama_obj = st.fixed_dictionaries({
    "response": maybe_text, "logprobs": either(st.lists(chat_entry, max_size=3)), "done": st.booleans() | values,
    "done_reason": values, "prompt_eval_count": values, "prompt_eval_duration": values,
})


def openai(url: str = "http://127.0.0.1:9/v1", **kw) -> OpenAIBackend:
    return OpenAIBackend(Endpoint("fuzz", "openai", url, "m", read_timeout=2, **kw))


def ollama(url: str = "http://127.0.0.1:9") -> OllamaBackend:
    return OllamaBackend(Endpoint("fuzz", "ollama", url, "m", read_timeout=2))


def sse_body(objs) -> bytes:
    return "".join(f"data: {json.dumps(o)}\n\n" for o in objs).encode("utf-8", "surrogatepass")


def ndjson_body(objs) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objs).encode("utf-8", "surrogatepass")


async def parse_all(backend, body: bytes) -> list:
    """Everything ``parse`` yields for a body, or the one failure type it may raise."""
    response = httpx.Response(200, stream=httpx.ByteStream(body))  # a real response, read as a stream
    out = []
    try:
        async for item in backend.parse(response, REQ):
            out.append(item)
    except (MalformedStream, RemoteFailure) as exc:
        out.append(exc)
    return out


def check(items) -> None:
    for item in items:
        if isinstance(item, Piece):
            item.text.encode("utf-8")
            assert item.logprob is None or (math.isfinite(item.logprob) and item.logprob <= 0)
            for alt in item.top:
                alt.text.encode("utf-8")
                assert math.isfinite(alt.logprob) and alt.logprob <= 0


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(completion_chunk, max_size=4))
def test_completion_parser_never_raises_anything_else(objs):
    check(asyncio.run(parse_all(openai(), sse_body(objs))))


@FAST
@given(st.lists(chat_chunk, max_size=4))
def test_chat_parser_never_raises_anything_else(objs):
    check(asyncio.run(parse_all(openai(mode="chat"), sse_body(objs))))


@FAST
@given(st.lists(ollama_obj, max_size=4))
def test_ollama_parser_never_raises_anything_else(objs):
    check(asyncio.run(parse_all(ollama(), ndjson_body(objs))))


@FAST
@given(st.lists(values, max_size=4))
def test_any_json_value_as_a_payload(objs):
    check(asyncio.run(parse_all(openai(), sse_body(objs))))
    check(asyncio.run(parse_all(ollama(), ndjson_body(objs))))


@FAST
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_random_bytes_as_lines(chunks):
    body = b"\n".join(chunks)
    check(asyncio.run(parse_all(openai(), body)))
    check(asyncio.run(parse_all(openai(), b"\n".join(b"data: " + c for c in chunks))))
    check(asyncio.run(parse_all(ollama(), body)))


# -- whole streams through the real server -------------------------------------------------------

@pytest.fixture(scope="module")
def srv():
    with FaultServer() as server:
        yield server


async def stream_all(backend) -> list:
    try:
        return [e async for e in backend.stream(REQ)]
    finally:
        await backend.aclose()


def assert_clean(events) -> None:
    start, tokens, end = collect(events)
    assert start is not None and isinstance(end, (DoneEvent, FailedEvent)) and events[-1] is end
    assert end.n_tokens == len(tokens) and [t.i for t in tokens] == list(range(len(tokens)))
    for event in events:
        json.dumps(jsonlines.event_to_dict(event), allow_nan=False).encode("utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["completions", "chat", "ollama"]), objs=st.lists(completion_chunk | chat_chunk | ollama_obj | values, max_size=4),
       garbage=st.binary(max_size=30), end=st.sampled_from(["done", "none", "garbage"]))
def test_whole_streams_always_end_in_one_clean_event(srv, kind, objs, garbage, end):
    if kind == "ollama":
        body = ndjson_body(objs) + (garbage if end == "garbage" else b"")
        srv.route("/api/generate", lambda c: c.stream([body], content_type="application/x-ndjson"))
        backend = ollama(srv.url)
    else:
        body = sse_body(objs) + {"done": b"data: [DONE]\n\n", "none": b"", "garbage": garbage}[end]
        path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        srv.route(path, lambda c: c.stream([body]))
        backend = openai(srv.url + "/v1", mode="chat" if kind == "chat" else "completions")
    assert_clean(asyncio.run(stream_all(backend)))
