"""Ollama's native wire format, against recorded responses of its documented shape.

The shapes follow Ollama's ``api/types.go`` (GenerateResponse / ChatResponse with
``logprobs: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]``, Ollama >= 0.12.11)
and its error body ``{"error": "..."}``; they are served by the local fault server.
"""

from __future__ import annotations

import pytest

from fault_server import FaultServer, ndjson
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.backends.ollama import OllamaBackend
from playground.events import DoneEvent, FailedEvent
from playground.params import GenerationRequest, SamplerParams

T0 = "2025-11-20T10:00:00.000000Z"


def lp(token: str, value: float, alts: list[tuple[str, float]]) -> dict:
    return {"token": token, "logprob": value, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in alts]}


GENERATE = [
    {"model": "smollm2", "created_at": T0, "response": "The", "done": False, "logprobs": [lp("The", -0.3, [("The", -0.3), ("A", -1.6), ("It", -2.2)])]},
    {"model": "smollm2", "created_at": T0, "response": " sky", "done": False, "logprobs": [lp(" sky", -1.1, [(" sun", -0.9), (" sky", -1.1)])]},
    # two tokens in one object: their texts add up to the response
    {"model": "smollm2", "created_at": T0, "response": " is blue", "done": False,
     "logprobs": [lp(" is", -0.05, [(" is", -0.05)]), lp(" blue", -0.4, [(" blue", -0.4)])]},
    {"model": "smollm2", "created_at": T0, "response": "", "done": True, "done_reason": "length", "context": [1, 2, 3],
     "total_duration": 5_000_000_000, "load_duration": 1_000_000, "prompt_eval_count": 26, "prompt_eval_duration": 130_000_000,
     "eval_count": 4, "eval_duration": 40_000_000},
]

CHAT = [
    {"model": "smollm2", "created_at": T0, "message": {"role": "assistant", "content": "Hello"}, "done": False,
     "logprobs": [lp("Hello", -0.2, [("Hello", -0.2), ("Hi", -1.8)])]},
    {"model": "smollm2", "created_at": T0, "message": {"role": "assistant", "content": "!"}, "done": False,
     "logprobs": [lp("!", -0.7, [("!", -0.7), (".", -0.9)])]},
    {"model": "smollm2", "created_at": T0, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
     "prompt_eval_count": 9, "prompt_eval_duration": 30_000_000, "eval_count": 2, "eval_duration": 10_000_000},
]

# What Ollama before 0.12.11 sends: no logprobs at all.
OLD = [{"model": "m", "created_at": T0, "response": "Hi", "done": False}, {"model": "m", "created_at": T0, "response": "", "done": True, "done_reason": "stop"}]


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


async def run(srv: FaultServer, request: GenerationRequest, mode: str = "completions"):
    b = OllamaBackend(Endpoint("box", "ollama", srv.url, "smollm2", mode=mode, read_timeout=2))
    try:
        return [e async for e in b.stream(request)]
    finally:
        await b.aclose()


async def test_generate_request_and_tokens(srv):
    srv.route("/api/generate", lambda c: c.stream(ndjson(GENERATE), content_type="application/x-ndjson"))
    sampler = SamplerParams(temperature=0.6, top_k=20, top_p=0.8, min_p=0.02, repeat_penalty=1.2, repeat_last_n=32, seed=5)
    start, tokens, done = collect(await run(srv, GenerationRequest("Why is the sky blue?", sampler, max_tokens=4, stop=("\n\n",), top_n=2)))
    body = srv.requests[0].body
    assert body == {"model": "smollm2", "stream": True, "prompt": "Why is the sky blue?", "raw": True, "logprobs": True, "top_logprobs": 2,
                    "options": {"temperature": 0.6, "top_k": 20, "top_p": 0.8, "min_p": 0.02, "repeat_penalty": 1.2,
                                "repeat_last_n": 32, "num_predict": 4, "seed": 5, "stop": ["\n\n"]}}
    assert start.backend == "ollama" and start.params["not_sent"] == []
    assert [(t.text, t.logprob) for t in tokens] == [("The", -0.3), (" sky", -1.1), (" is", -0.05), (" blue", -0.4)]
    assert [(a.text, a.logprob) for a in tokens[1].top] == [(" sun", -0.9), (" sky", -1.1)]  # sorted, most likely first
    assert [a.text for a in tokens[0].top] == ["The", "A"]  # top_n = 2
    assert all(t.id == -1 and t.p_sampled is None and t.entropy is None for t in tokens)
    assert isinstance(done, DoneEvent) and done.finish_reason == "length" and done.n_tokens == 4 and done.seed == 5
    assert done.prompt_tokens_evaluated == 26 and done.prompt_tok_s == pytest.approx(26 / 0.13)


async def test_chat_request_and_tokens(srv):
    srv.route("/api/chat", lambda c: c.stream(ndjson(CHAT), content_type="application/x-ndjson"))
    request = GenerationRequest("rendered", SamplerParams(greedy=True), messages=(("user", "Say hello"),), top_n=50)
    _, tokens, done = collect(await run(srv, request, mode="chat"))
    body = srv.requests[0].body
    assert body["messages"] == [{"role": "user", "content": "Say hello"}] and "prompt" not in body and "raw" not in body
    assert body["options"]["temperature"] == 0.0 and body["top_logprobs"] == 20
    assert "".join(t.text for t in tokens) == "Hello!" and [t.logprob for t in tokens] == [-0.2, -0.7]
    assert done.finish_reason == "stop" and done.prompt_tokens_evaluated == 9


async def test_server_without_logprobs_gives_none(srv):
    srv.route("/api/generate", lambda c: c.stream(ndjson(OLD)))
    _, tokens, done = collect(await run(srv, GenerationRequest("Hi")))
    assert [(t.text, t.logprob, t.top) for t in tokens] == [("Hi", None, ())] and done.finish_reason == "stop"


async def test_unknown_model_404(srv):
    srv.route("/api/generate", lambda c: c.json(404, {"error": "model 'smollm2' not found, try pulling it first"}))
    _, _, end = collect(await run(srv, GenerationRequest("Hi")))
    assert isinstance(end, FailedEvent)
    assert end.message.startswith(f"box ({srv.url}): not found (HTTP 404: \"model 'smollm2' not found")
    assert "unknown model 'smollm2'" in end.message


async def test_error_object_mid_stream_keeps_tokens(srv):
    srv.route("/api/generate", lambda c: c.stream(ndjson([GENERATE[0], {"error": "an error was encountered while running the model"}])))
    _, tokens, end = collect(await run(srv, GenerationRequest("Hi")))
    assert [t.text for t in tokens] == ["The"] and isinstance(end, FailedEvent) and end.n_tokens == 1
    assert "the server reported an error: 'an error was encountered while running the model'" in end.message


async def test_no_done_object_is_a_cut_stream(srv):
    srv.route("/api/generate", lambda c: c.stream(ndjson(GENERATE[:2])))
    _, tokens, end = collect(await run(srv, GenerationRequest("Hi")))
    assert len(tokens) == 2 and isinstance(end, FailedEvent) and "ended before the server said it was done" in end.message


async def test_malformed_line(srv):
    srv.route("/api/generate", lambda c: c.stream(ndjson(GENERATE[:1]) + ["{\"response\": \n"]))
    _, tokens, end = collect(await run(srv, GenerationRequest("Hi")))
    assert len(tokens) == 1 and isinstance(end, FailedEvent) and "malformed response after 1 tokens: invalid JSON" in end.message
