"""Hostile or broken server data never ends a remote stream with a traceback.

Against the real fault server: odd Retry-After values, surrogates and invalid UTF-8 in token text,
log-probability fields of every wrong type and shape, JSON nested past the parser's stack, and
non-finite numbers. Each becomes a sane value ("not available": None) or one FailedEvent that
names the endpoint, after every token already streamed.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from fault_server import FaultServer, completion_chunk, ndjson, sse
from helpers import collect
from playground import jsonlines
from playground.backends.endpoints import Endpoint
from playground.backends.ollama import OllamaBackend
from playground.backends.openai_compat import OpenAIBackend
from playground.backends.timing import parse_retry_after
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.params import GenerationRequest

PATH = "/v1/completions"
CHAT = "/v1/chat/completions"
REQ = GenerationRequest("Hello", top_n=3)


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


def openai(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("read_timeout", 2.0)
    return OpenAIBackend(Endpoint("fault", "openai", url + "/v1", "m", connect_timeout=1.0, **kw))


def ollama(url: str, **kw) -> OllamaBackend:
    return OllamaBackend(Endpoint("fault", "ollama", url, "m", read_timeout=2.0, connect_timeout=1.0, **kw))


async def run(b, request: GenerationRequest = REQ):
    try:
        return [e async for e in b.stream(request)]
    finally:
        await b.aclose()


def well_formed(events) -> tuple[list[TokenEvent], DoneEvent | FailedEvent]:
    """Start, tokens, one end; every event serialises as strict JSON (no NaN, no surrogate)."""
    start, tokens, end = collect(events)
    assert start is not None and isinstance(end, (DoneEvent, FailedEvent)) and events[-1] is end
    assert [t.i for t in tokens] == list(range(len(tokens))) and end.n_tokens == len(tokens)
    for event in events:
        json.dumps(jsonlines.event_to_dict(event), allow_nan=False).encode("utf-8")  # raises on NaN/surrogates
        jsonlines.dumps(event).encode("utf-8")
    for t in tokens:
        assert t.logprob is None or (math.isfinite(t.logprob) and t.logprob <= 0)
        assert all(math.isfinite(a.logprob) and a.logprob <= 0 for a in t.top)
    return tokens, end


def failed(events, needle: str) -> FailedEvent:
    _, end = well_formed(events)
    assert isinstance(end, FailedEvent) and end.message.startswith("fault (http://127.0.0.1:"), end
    assert needle in end.message and "Traceback" not in end.message
    return end


# -- Retry-After ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-5", "1.5", "NaN", "inf", "1e999", "²", "٣".encode().decode("latin-1"), "garbage", "", " 0 ",
                                   "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 -0000", "Mon, 99 Foo 0 99:99:99"])
async def test_odd_retry_after_values_are_retried_after_a_sane_wait(srv, value):
    def script(c):
        if c.n == 0:
            c.json(429, {"error": "slow down"}, {"Retry-After": value})
        else:
            c.stream(sse([completion_chunk("ok", -0.1, finish="stop")]))
    srv.route(PATH, script)
    t0 = time.perf_counter()
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["ok"] and len(srv.requests) == 2
    assert time.perf_counter() - t0 < 2.5  # at most the 0.5 s back-off


@pytest.mark.parametrize("value", ["9" * 400, "99999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_absurd_retry_after_values_fail_at_once(srv, value):
    srv.route(PATH, lambda c: c.json(503, {"error": "busy"}, {"Retry-After": value}))
    t0 = time.perf_counter()
    end = failed(await run(openai(srv.url)), "server error (HTTP 503: 'busy'); the server asks to wait")
    assert len(srv.requests) == 1 and time.perf_counter() - t0 < 2 and "more than 30 s" in end.message


def test_parse_retry_after_is_never_negative_nor_nan():
    for value in ["-1", "nan", "1e400", "-0", "Thu, 01 Jan 1970 00:00:00 GMT", "Sat, 01 Jan 0001 00:00:00 +2359", "\x00", "9" * 5000]:
        wait = parse_retry_after(value, 0.5)
        assert wait >= 0 and not math.isnan(wait)
    assert parse_retry_after("7", 0.5) == 7.0 and parse_retry_after("x", 0.5) == 0.5


# -- text ----------------------------------------------------------------------------------------

async def test_surrogates_in_token_text_become_replacement_characters(srv):
    raw = '{"choices": [{"text": "a\\ud800b\\udfff", "logprobs": {"tokens": ["\\ud83d"], "token_logprobs": [-0.5], ' \
          '"top_logprobs": [{"\\ud83d": -0.5, "x\\udc00": -1.0}]}}]}'
    srv.route(PATH, lambda c: c.stream(sse([raw, completion_chunk("", finish="stop")])))
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent)
    assert tokens[0].text == "a\ufffdb\ufffd" and tokens[0].logprob == -0.5
    assert [a.text for a in tokens[0].top] == ["\ufffd", "x\ufffd"]


async def test_invalid_utf8_is_replaced_and_split_characters_stay_whole(srv):
    e_acute = "é".encode()
    chunks = [b'data: {"choices": [{"text": "a\xff\xfeb"}]}\n\n',
              b'data: {"choices": [{"text": "caf' + e_acute[:1], e_acute[1:] + b'"}]}\n\n',  # é cut between chunks
              *[c.encode() for c in sse([completion_chunk("", finish="stop")])]]
    srv.route(PATH, lambda c: c.stream(chunks))
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["a\ufffd\ufffdb", "café"]


# -- log-probability fields of the wrong type or shape -------------------------------------------

WRONG = [None, 5, -0.5, "x", "-inf", [], [[-0.5]], [None], {"a": 1}, True, [1, [2, [3]]], {"tokens": 5}]


@pytest.mark.parametrize("value", WRONG, ids=repr)
@pytest.mark.parametrize("field", ["logprobs", "tokens", "token_logprobs", "top_logprobs"])
async def test_completion_logprob_fields_of_any_shape(srv, field, value):
    good = {"tokens": ["Hi"], "token_logprobs": [-0.5], "top_logprobs": [{"Hi": -0.5, "Ho": -1.5}]}
    logprobs = value if field == "logprobs" else {**good, field: value}
    chunk = {"choices": [{"text": "Hi", "logprobs": logprobs}]}
    srv.route(PATH, lambda c: c.stream(sse([chunk, completion_chunk("", finish="stop")])))
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["Hi"]  # the text is kept whatever the rest
    if field == "top_logprobs":
        assert tokens[0].logprob == -0.5


@pytest.mark.parametrize("value", WRONG, ids=repr)
@pytest.mark.parametrize("field", ["logprobs", "content", "entry", "logprob", "top_logprobs", "alternative"])
async def test_chat_logprob_fields_of_any_shape(srv, field, value):
    alt = value if field == "alternative" else {"token": "Ho", "logprob": -1.5}
    entry = {"token": "Hi", "logprob": value if field == "logprob" else -0.5,
             "top_logprobs": value if field == "top_logprobs" else [alt]}
    content = value if field == "content" else [value if field == "entry" else entry]
    logprobs = value if field == "logprobs" else {"content": content}
    chunk = {"choices": [{"delta": {"content": "Hi"}, "logprobs": logprobs}]}
    srv.route(CHAT, lambda c: c.stream(sse([chunk, {"choices": [{"delta": {}, "finish_reason": "stop"}]}])))
    tokens, end = well_formed(await run(openai(srv.url, mode="chat")))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["Hi"]


@pytest.mark.parametrize("value", WRONG, ids=repr)
@pytest.mark.parametrize("field", ["logprobs", "entry", "logprob", "top_logprobs", "prompt_eval_count", "prompt_eval_duration", "done_reason"])
async def test_ollama_fields_of_any_shape(srv, field, value):
    entry = {"token": "Hi", "logprob": value if field == "logprob" else -0.5,
             "top_logprobs": value if field == "top_logprobs" else [{"token": "Ho", "logprob": -1.0}]}
    logprobs = value if field == "logprobs" else [value if field == "entry" else entry]
    last = {"response": "", "done": True, "done_reason": "stop", "prompt_eval_count": 3, "prompt_eval_duration": 1000}
    if field in last:
        last[field] = value
    srv.route("/api/generate", lambda c: c.stream(ndjson([{"response": "Hi", "logprobs": logprobs}, last]), content_type="application/x-ndjson"))
    tokens, end = well_formed(await run(ollama(srv.url)))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["Hi"]
    assert end.prompt_tok_s is None or math.isfinite(end.prompt_tok_s)


# -- non-finite and out-of-range numbers ---------------------------------------------------------

@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "0.7", "-9999"])
async def test_non_finite_logprobs_are_not_available(srv, number):
    raw = ('{"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": [%s], "top_logprobs": [{"x": %s, "y": -1.0}]}}],'
           ' "usage": {"prompt_tokens": %s}}' % (number, number, number))
    srv.route(PATH, lambda c: c.stream(sse([raw, completion_chunk("", finish="stop")])))
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent) and tokens[0].text == "x" and tokens[0].logprob is None
    assert [(a.text, a.logprob) for a in tokens[0].top] == [("y", -1.0)]
    assert end.prompt_tokens_evaluated == 0  # a count that is not a count is not reported


@pytest.mark.parametrize("count, duration", [(3, "NaN"), (3, "Infinity"), (3, "1e400"), (3, "5e-324"), (3, "0"), (3, "-5"),
                                             ("1" + "0" * 400, "1"), (-3, "1000"), (3, "1" + "0" * 400), (2**62, "1e-300")])
async def test_ollama_non_finite_durations(srv, count, duration):
    last = '{"response": "", "done": true, "prompt_eval_count": %s, "prompt_eval_duration": %s}\n' % (count, duration)
    srv.route("/api/generate", lambda c: c.stream([json.dumps({"response": "Hi"}) + "\n", last], content_type="application/x-ndjson"))
    tokens, end = well_formed(await run(ollama(srv.url)))
    assert isinstance(end, DoneEvent) and [t.text for t in tokens] == ["Hi"]
    assert end.prompt_tok_s is None or (math.isfinite(end.prompt_tok_s) and end.prompt_tok_s > 0)


@pytest.mark.parametrize("reason", ['["stop"]', "5", '{"a": 1}', '"' + "x" * 10 + '"', "true"])
async def test_odd_finish_reasons(srv, reason):
    raw = '{"choices": [{"text": "", "finish_reason": %s}]}' % reason
    srv.route(PATH, lambda c: c.stream(sse([completion_chunk("a", -0.1), raw])))
    tokens, end = well_formed(await run(openai(srv.url)))
    assert isinstance(end, DoneEvent) and end.finish_reason in ("stop", "length") and len(tokens) == 1


# -- JSON nested past the parser's stack ---------------------------------------------------------

DEEP = "[" * 200_000 + "]" * 200_000


async def test_deeply_nested_json_mid_stream_keeps_the_tokens(srv):
    srv.route(PATH, lambda c: c.stream(sse([completion_chunk("a", -0.1), completion_chunk("b", -0.2), DEEP])))
    events = await run(openai(srv.url))
    end = failed(events, "malformed response after 2 tokens: JSON nested too deeply")
    assert [t.text for t in collect(events)[1]] == ["a", "b"] and len(end.message) < 300


async def test_deeply_nested_values_inside_an_object(srv):
    deep_obj = '{"choices": [{"text": "a", "logprobs": {"top_logprobs": ' + "[" * 100_000 + "]" * 100_000 + "}}]}"
    srv.route(PATH, lambda c: c.stream(sse([deep_obj, completion_chunk("", finish="stop")])))
    failed(await run(openai(srv.url)), "nested too deeply")


async def test_deeply_nested_ndjson_and_error_bodies(srv):
    srv.route("/api/generate", lambda c: c.stream([json.dumps({"response": "Hi"}) + "\n", DEEP + "\n"]))
    failed(await run(ollama(srv.url)), "after 1 tokens: JSON nested too deeply")
    srv.route(PATH, lambda c: c.raw(500, ('{"error": ' + "[" * 3000 + "]" * 3000 + "}").encode(), {"Content-Type": "application/json"}))
    failed(await run(openai(srv.url)), "server error (HTTP 500")


async def test_error_objects_of_odd_shapes(srv):
    deep_error = '{"error": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}"  # parses, but is no message
    srv.route(PATH, lambda c: c.stream(sse([completion_chunk("a", -0.1), deep_error])))
    failed(await run(openai(srv.url)), "the server reported an error")
    srv.route("/api/generate", lambda c: c.stream(ndjson([{"response": "Hi"}, {"error": {"message": 5}}])))
    failed(await run(ollama(srv.url)), "the server reported an error: (no readable message)")
