"""The OpenAI-compatible backend against a misbehaving local server: every fault is one clear
FailedEvent naming the endpoint and the cause, tokens already received stay, nothing hangs."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fault_server import Blackhole, FaultServer, completion_chunk, free_port, sse
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.backends.openai_compat import OpenAIBackend
from playground.events import DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

PATH = "/v1/completions"
REQ = GenerationRequest("Hello", SamplerParams(temperature=0.7, top_p=0.9, seed=42, top_k=7), max_tokens=16, stop=("\n",), top_n=3)
TOKENS = [("He", -0.1, {"He": -0.1, "A": -2.5, "The": -3.0, "x": -9.0}), ("llo", -0.5, {"llo": -0.5, "y": -1.5}), (" world", -1.25, None)]


def chunks(n: int = 3, finish: str | None = "length"):
    out = [completion_chunk(t, lp, top) for t, lp, top in TOKENS[:n]]
    if finish:
        out.append(completion_chunk("", finish=finish))
    return out


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


def backend(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("read_timeout", 2.0)
    kw.setdefault("connect_timeout", 1.0)
    return OpenAIBackend(Endpoint("fault", "openai", url + "/v1", "m", api_key_env="FAULT_KEY", **kw), "k-123")


async def run(b: OpenAIBackend, request: GenerationRequest = REQ, cancel: threading.Event | None = None):
    try:
        return [e async for e in b.stream(request, cancel)]
    finally:
        await b.aclose()


def failure(events) -> FailedEvent:
    start, tokens, end = collect(events)
    assert isinstance(start, StartEvent) and isinstance(end, FailedEvent), events[-1]
    assert end.n_tokens == len(tokens) and end.title == "Backend"
    assert end.message.startswith("fault (http://127.0.0.1:"), end.message  # names the endpoint
    return end


async def test_a_normal_stream_maps_every_field(srv):
    srv.route(PATH, lambda c: c.stream([": ping\n\n", *sse(chunks())]))
    events = await run(backend(srv.url, extra_params=frozenset({"top_k"})))
    start, tokens, done = collect(events)
    assert start.backend == "openai" and start.model["name"] == "m" and start.prompt_tokens == ()
    assert [t.text for t in tokens] == ["He", "llo", " world"] and [t.i for t in tokens] == [0, 1, 2]
    assert [t.logprob for t in tokens] == [-0.1, -0.5, -1.25]
    assert [(a.text, a.logprob) for a in tokens[0].top] == [("He", -0.1), ("A", -2.5), ("The", -3.0)]  # top_n=3
    assert [(a.text, a.logprob) for a in tokens[1].top] == [("llo", -0.5), ("y", -1.5)]
    for t in tokens:  # what the protocol does not carry is None, never invented
        assert t.id == -1 and t.p_sampled is None and t.n_candidates is None and t.entropy is None and t.dist is None
        assert all(a.id == -1 for a in t.top)
    assert isinstance(done, DoneEvent) and done.finish_reason == "length" and done.n_tokens == 3 and done.seed == 42
    body = srv.requests[0].body
    assert body == {"model": "m", "stream": True, "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 42,
                    "stop": ["\n"], "top_k": 7, "prompt": "Hello", "echo": False, "logprobs": 3}
    assert start.params["not_sent"] == ["min_p", "repeat_last_n", "repeat_penalty"]


async def test_random_seed_is_drawn_sent_and_reported(srv):
    srv.route(PATH, lambda c: c.stream(sse(chunks(1))))
    events = await run(backend(srv.url), GenerationRequest("Hi", SamplerParams(seed=-1)))
    sent = srv.requests[0].body["seed"]
    assert isinstance(sent, int) and sent >= 0 and events[0].params["seed"] == sent and events[-1].seed == sent
    assert "top_k" not in srv.requests[0].body  # not declared accepted: not sent


async def test_connection_refused():
    t0 = time.perf_counter()
    end = failure(await run(backend(f"http://127.0.0.1:{free_port()}")))
    assert "could not connect" in end.message and time.perf_counter() - t0 < 3


async def test_connect_timeout():
    with Blackhole() as url:
        t0 = time.perf_counter()
        end = failure(await run(backend(url, connect_timeout=0.3)))
    assert "could not connect within 0.3 s (connect timeout)" in end.message
    assert time.perf_counter() - t0 < 3


async def test_no_response_read_timeout(srv):
    srv.route(PATH, lambda c: c.released.wait(10))
    t0 = time.perf_counter()
    end = failure(await run(backend(srv.url, read_timeout=0.4)))
    assert "no response within 0.4 s (read timeout)" in end.message and time.perf_counter() - t0 < 3


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_name_the_variable(srv, status):
    srv.route(PATH, lambda c: c.json(status, {"error": {"message": "Invalid API key", "type": "auth"}}))
    end = failure(await run(backend(srv.url)))
    assert f"authentication failed (HTTP {status}: 'Invalid API key'); check the key in $FAULT_KEY" in end.message
    assert len(srv.requests) == 1


async def test_unknown_model(srv):
    srv.route(PATH, lambda c: c.json(404, {"error": {"message": "The model `m` does not exist"}}))
    end = failure(await run(backend(srv.url)))
    assert "not found (HTTP 404" in end.message and "unknown model 'm'" in end.message


async def test_429_retry_after_then_success(srv):
    def script(c):
        if c.n < 2:
            c.json(429, {"error": "slow down"}, {"Retry-After": "0"})
        else:
            c.stream(sse(chunks()))
    srv.route(PATH, script)
    _, tokens, done = collect(await run(backend(srv.url)))
    assert isinstance(done, DoneEvent) and len(tokens) == 3 and len(srv.requests) == 3


async def test_429_retries_are_bounded(srv):
    srv.route(PATH, lambda c: c.json(429, {"error": "slow down"}, {"Retry-After": "0"}))
    end = failure(await run(backend(srv.url, max_retries=2)))
    assert "rate limited (HTTP 429: 'slow down') (after 2 retries)" in end.message and len(srv.requests) == 3


async def test_429_with_a_long_retry_after_fails_at_once(srv):
    srv.route(PATH, lambda c: c.json(429, {}, {"Retry-After": "3600"}))
    t0 = time.perf_counter()
    end = failure(await run(backend(srv.url)))
    assert "asks to wait 3600 s" in end.message and len(srv.requests) == 1 and time.perf_counter() - t0 < 2


async def test_server_error_is_not_retried(srv):
    srv.route(PATH, lambda c: c.json(500, {"detail": "boom"}))
    end = failure(await run(backend(srv.url)))
    assert "server error (HTTP 500: 'boom')" in end.message and len(srv.requests) == 1


async def test_malformed_json_mid_stream_keeps_tokens(srv):
    srv.route(PATH, lambda c: c.stream(sse([*chunks(2, None), "{not json"])))
    events = await run(backend(srv.url))
    end = failure(events)
    assert [e.text for e in events if isinstance(e, TokenEvent)] == ["He", "llo"]
    assert "malformed response after 2 tokens: invalid JSON: '{not json'" in end.message


async def test_wrong_shape_is_malformed(srv):
    srv.route(PATH, lambda c: c.stream(sse([{"choices": [{"text": 5}]}])))
    assert "malformed response" in failure(await run(backend(srv.url))).message


async def test_stream_cut_mid_way(srv):
    srv.route(PATH, lambda c: c.stream(sse(chunks(2, None), done=False), cut=True))
    end = failure(await run(backend(srv.url)))
    assert end.n_tokens == 2 and "connection was cut after 2 tokens" in end.message


async def test_stream_that_just_ends_early(srv):
    srv.route(PATH, lambda c: c.stream(sse(chunks(2, None), done=False)))
    end = failure(await run(backend(srv.url)))
    assert end.n_tokens == 2 and "ended before the server said it was done" in end.message


async def test_stalled_stream(srv):
    srv.route(PATH, lambda c: c.stream(sse(chunks(2, None), done=False), stall=10))
    t0 = time.perf_counter()
    end = failure(await run(backend(srv.url, read_timeout=0.4)))
    assert end.n_tokens == 2 and "stalled: nothing received for 0.4 s after 2 tokens (read timeout)" in end.message
    assert time.perf_counter() - t0 < 3


async def test_error_event_after_tokens_is_not_retried(srv):
    srv.route(PATH, lambda c: c.stream(sse([*chunks(1, None), {"error": {"message": "overloaded", "code": 429}}])))
    end = failure(await run(backend(srv.url)))
    assert end.n_tokens == 1 and "the server reported an error: 'overloaded'" in end.message and len(srv.requests) == 1


async def test_cancel_closes_the_connection(srv):
    many = [completion_chunk("a", -0.1) for _ in range(400)]
    srv.route(PATH, lambda c: c.stream(sse(many), delay=0.02))
    cancel = threading.Event()
    b = backend(srv.url)
    events, t0 = [], time.perf_counter()
    async for event in b.stream(REQ, cancel):
        events.append(event)
        if sum(isinstance(e, TokenEvent) for e in events) == 3:
            cancel.set()
    await b.aclose()
    _, tokens, done = collect(events)
    assert isinstance(done, DoneEvent) and done.finish_reason == "cancelled" and 3 <= len(tokens) < 10
    assert srv.disconnected.wait(3) and time.perf_counter() - t0 < 3


async def test_cancel_while_waiting_for_the_first_byte(srv):
    srv.route(PATH, lambda c: c.released.wait(10))
    cancel = threading.Event()
    asyncio.get_running_loop().call_later(0.2, cancel.set)
    t0 = time.perf_counter()
    events = await run(backend(srv.url, read_timeout=30), cancel=cancel)
    assert isinstance(events[-1], DoneEvent) and events[-1].finish_reason == "cancelled"
    assert time.perf_counter() - t0 < 2


async def test_consumer_that_stops_early_closes_the_connection(srv):
    many = [completion_chunk("a", -0.1) for _ in range(400)]
    srv.route(PATH, lambda c: c.stream(sse(many), delay=0.02))
    b = backend(srv.url)
    gen = b.stream(REQ)
    async for event in gen:
        if isinstance(event, TokenEvent):
            break
    await gen.aclose()
    await b.aclose()
    assert srv.disconnected.wait(3)


async def test_chat_mode_sends_messages_and_reads_chat_logprobs(srv):
    def entry(tok, lp, alts):
        return {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in alts]}
    stream = [
        {"choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [entry("Hi", -0.2, [("Hello", -1.9), ("Hi", -0.2)])]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": " there"}, "logprobs": {"content": [entry(" there", -9999.0, [])]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], "usage": {"prompt_tokens": 12}},
    ]
    srv.route("/v1/chat/completions", lambda c: c.stream(sse(stream)))
    request = GenerationRequest("<rendered>", SamplerParams(temperature=0.0), messages=(("system", "Be brief."), ("user", "Hi")), top_n=30)
    _, tokens, done = collect(await run(backend(srv.url, mode="chat"), request))
    body = srv.requests[0].body
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["temperature"] == 0.0 and "prompt" not in body
    assert [(t.text, t.logprob) for t in tokens] == [("Hi", -0.2), (" there", None)]  # -9999 is "unknown"
    assert [a.text for a in tokens[0].top] == ["Hi", "Hello"]
    assert done.finish_reason == "stop" and done.prompt_tokens_evaluated == 12


async def test_chat_mode_without_messages_sends_the_prompt_as_one_user_turn(srv):
    srv.route("/v1/chat/completions", lambda c: c.stream(sse([{"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}])))
    _, tokens, done = collect(await run(backend(srv.url, mode="chat", logprobs=False), GenerationRequest("Say ok")))
    assert srv.requests[0].body["messages"] == [{"role": "user", "content": "Say ok"}]
    assert "logprobs" not in srv.requests[0].body and tokens[0].logprob is None and tokens[0].top == ()


async def test_cancelling_the_consuming_task_closes_the_connection(srv):
    many = [completion_chunk("a", -0.1) for _ in range(400)]
    srv.route(PATH, lambda c: c.stream(sse(many), delay=0.02))
    b = backend(srv.url)
    seen = asyncio.Event()

    async def consume():
        async for event in b.stream(REQ):
            if isinstance(event, TokenEvent):
                seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await b.aclose()
    assert srv.disconnected.wait(3)
