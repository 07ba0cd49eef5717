"""A stream whose final chunk carries a token but no logprobs (seen from servers that attach the
finish reason, or their usage, to a chunk built apart from the token's): the token is kept, with
None where the server said nothing, the tokens before keep theirs, and the run ends normally."""

from __future__ import annotations

import pytest

from fault_server import FaultServer, completion_chunk, sse
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.backends.factory import remote_backend
from playground.events import DoneEvent
from playground.params import GenerationRequest, SamplerParams

REQ = GenerationRequest("Hi", SamplerParams(temperature=0.7, seed=3), max_tokens=3, top_n=2)


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


async def run(endpoint: Endpoint, request: GenerationRequest = REQ):
    backend = remote_backend(endpoint, {})
    try:
        return collect([e async for e in backend.stream(request)])
    finally:
        await backend.aclose()


async def test_completions_final_chunk_with_null_logprobs(srv):
    chunks = [completion_chunk("a", -0.5, {"a": -0.5, "b": -1.5}), completion_chunk("b", -0.25),
              completion_chunk("c", None, finish="length")]
    srv.route("/v1/completions", lambda c: c.stream(sse(chunks)))
    _, tokens, done = await run(Endpoint("s", "openai", srv.url + "/v1", "m", read_timeout=3.0))
    assert isinstance(done, DoneEvent) and done.finish_reason == "length"
    assert [(t.text, t.logprob) for t in tokens] == [("a", -0.5), ("b", -0.25), ("c", None)]
    assert [a.text for a in tokens[0].top] == ["a", "b"] and tokens[2].top == ()


async def test_llama_server_v1_shape_final_chunk_with_empty_content(srv):
    def entry(tid, text, lp):
        return {"id": tid, "token": text, "bytes": list(text.encode()), "logprob": lp,
                "top_logprobs": [{"id": tid, "token": text, "bytes": list(text.encode()), "logprob": lp}]}

    def chunk(text, logprobs, finish=None):
        return {"choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}]}

    chunks = [chunk("x", {"content": [entry(87, "x", -0.1)]}), chunk("y", {"content": []}, finish="length")]
    srv.route("/v1/completions", lambda c: c.stream(sse(chunks)))
    _, tokens, done = await run(Endpoint("s", "openai", srv.url + "/v1", "m", read_timeout=3.0))
    assert isinstance(done, DoneEvent)
    assert [(t.text, t.logprob) for t in tokens] == [("x", -0.1), ("y", None)]


async def test_chat_final_chunk_without_logprobs(srv):
    def chunk(text, lp, finish=None):
        logprobs = None if lp is None else {"content": [{"token": text, "logprob": lp, "top_logprobs": []}]}
        return {"choices": [{"index": 0, "delta": {"content": text}, "logprobs": logprobs, "finish_reason": finish}]}

    srv.route("/v1/chat/completions", lambda c: c.stream(sse([chunk("Hel", -0.2), chunk("lo", None, "stop")])))
    _, tokens, done = await run(Endpoint("s", "openai", srv.url + "/v1", "m", mode="chat", read_timeout=3.0))
    assert isinstance(done, DoneEvent) and done.finish_reason == "stop"
    assert [(t.text, t.logprob) for t in tokens] == [("Hel", -0.2), ("lo", None)]


def native_chunk(tid, text, probs):
    return {"index": 0, "content": text, "tokens": [tid], "stop": False, **({"completion_probabilities": probs} if probs else {})}


NATIVE_END = {"index": 0, "content": "", "tokens": [], "stop": True, "stop_type": "limit", "tokens_evaluated": 1}


@pytest.mark.parametrize("missing", ["both", "raw"])
async def test_native_final_token_without_probabilities(srv, missing):
    def script(call):
        post = call.record.body["post_sampling_probs"]
        first = ({"id": 5, "token": "A", "bytes": [65], "prob": 0.6, "top_probs": [{"id": 5, "token": "A", "bytes": [65], "prob": 0.6}]}
                 if post else {"id": 5, "token": "A", "bytes": [65], "logprob": -0.9, "top_logprobs": []})
        last = None
        if post and missing == "raw":
            last = [{"id": 6, "token": "B", "bytes": [66], "prob": 1.0, "top_probs": [{"id": 6, "token": "B", "bytes": [66], "prob": 1.0}]}]
        call.stream(sse([native_chunk(5, "A", [first]), native_chunk(6, "B", last), NATIVE_END], done=False))

    srv.route("/completion", script)
    _, tokens, done = await run(Endpoint("ls", "llamacpp", srv.url, "llama-server", read_timeout=3.0))
    assert isinstance(done, DoneEvent) and done.finish_reason == "length"
    assert [(t.id, t.text, t.p_sampled, t.logprob) for t in tokens] == [
        (5, "A", 0.6, -0.9), (6, "B", None if missing == "both" else 1.0, None)]
