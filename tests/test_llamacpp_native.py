"""The ``llamacpp`` kind against recorded llama-server ``/completion`` streams (fault server): what
it sends, how the post-sampler and raw answers are joined, and the faults of the second request."""

from __future__ import annotations

import argparse
import threading

import pytest

from fault_server import FaultServer, sse
from helpers import collect
from playground.backends.endpoints import Endpoint, add_backend_options, endpoint_from_args, endpoint_from_mapping
from playground.backends.factory import remote_backend
from playground.backends.llamacpp import LlamaCppBackend
from playground.errors import ConfigError
from playground.events import DoneEvent, FailedEvent, StartEvent
from playground.params import GenerationRequest, SamplerParams

SAMPLER = SamplerParams(temperature=0.7, top_k=3, top_p=0.9, min_p=0.05, repeat_penalty=1.2, repeat_last_n=32, seed=7)
REQ = GenerationRequest("Once", SAMPLER, max_tokens=3, top_n=2)
#: (id, text, p after sampling, survivors [(id, text, p)], raw logprob, raw top [(id, text, lp)])
TOKENS = [
    (304, " upon", 0.75, [(304, " upon", 0.75), (11, ",", 0.25)], -0.4, [(304, " upon", -0.4), (11, ",", -1.6)]),
    (264, " a", 1.0, [(264, " a", 1.0)], -0.05, [(264, " a", -0.05), (279, " the", -3.1)]),
]


def post_chunk(tid, text, p, survivors):
    e = {"id": tid, "token": text, "bytes": list(text.encode()), "prob": p,
         "top_probs": [{"id": i, "token": t, "bytes": list(t.encode()), "prob": q} for i, t, q in survivors]}
    return {"index": 0, "content": text, "tokens": [tid], "stop": False, "id_slot": 0, "tokens_predicted": 1,
            "tokens_evaluated": 2, "completion_probabilities": [e]}


def raw_chunk(tid, text, lp, top):
    e = {"id": tid, "token": text, "bytes": list(text.encode()), "logprob": lp,
         "top_logprobs": [{"id": i, "token": t, "bytes": list(t.encode()), "logprob": v} for i, t, v in top]}
    return {"index": 0, "content": text, "tokens": [tid], "stop": False, "completion_probabilities": [e]}


FINAL = {"index": 0, "content": "", "tokens": [], "stop": True, "stop_type": "limit", "tokens_evaluated": 2,
         "timings": {"prompt_n": 2, "prompt_per_second": 123.5, "predicted_n": 2}}


def answer(call, ids=None):
    """llama-server's stream for the body it was sent (post-sampler or raw)."""
    post = call.record.body.get("post_sampling_probs")
    rows = []
    for k, (tid, text, p, surv, lp, top) in enumerate(TOKENS):
        tid = ids[k] if ids else tid
        rows.append(post_chunk(tid, text, p, surv) if post else raw_chunk(tid, text, lp, top))
    call.stream(sse([*rows, FINAL], done=False))


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


async def run(url: str, request: GenerationRequest = REQ, **kw):
    b = LlamaCppBackend(Endpoint("ls", "llamacpp", url, "llama-server", read_timeout=3.0, **kw))
    try:
        return [e async for e in b.stream(request)]
    finally:
        await b.aclose()


async def test_every_sampler_is_sent_and_a_trailing_v1_is_ignored(srv):
    srv.route("/completion", answer)
    events = await run(srv.url + "/v1")
    assert isinstance(events[-1], DoneEvent), events[-1]
    post, raw = sorted((r.body for r in srv.requests), key=lambda b: not b["post_sampling_probs"])
    assert {r.path for r in srv.requests} == {"/completion"}
    assert post["samplers"] == list(SamplerParams().samplers)  # the local chain's (llama.cpp's default) order
    assert {k: post[k] for k in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "n_predict")} == {
        "temperature": 0.7, "top_k": 3, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.2, "repeat_last_n": 32, "seed": 7, "n_predict": 3}
    assert post["typical_p"] == 1.0 and post["dry_multiplier"] == 0.0 and post["xtc_probability"] == 0.0 and post["mirostat"] == 0
    assert post["n_probs"] == 3  # all top-k survivors, so that their count is known
    assert raw["n_probs"] == 2 and raw["post_sampling_probs"] is False
    assert {k: v for k, v in raw.items() if k not in ("n_probs", "post_sampling_probs")} == {
        k: v for k, v in post.items() if k not in ("n_probs", "post_sampling_probs")}
    start = events[0]
    assert isinstance(start, StartEvent) and start.params["server_defaults"] == [] and start.backend == "llamacpp"


async def test_post_sampler_and_raw_answers_are_joined_by_position(srv):
    srv.route("/completion", answer)
    _, tokens, end = collect(await run(srv.url))
    assert isinstance(end, DoneEvent) and end.finish_reason == "length" and end.prompt_tokens_evaluated == 2
    assert end.prompt_tok_s == 123.5
    assert [(t.id, t.text, t.p_sampled, t.logprob) for t in tokens] == [(304, " upon", 0.75, -0.4), (264, " a", 1.0, -0.05)]
    assert [t.n_candidates for t in tokens] == [2, 1]  # fewer than the 3 asked for: the count is exact
    assert [(a.id, a.text, a.logprob) for a in tokens[0].top] == [(304, " upon", -0.4), (11, ",", -1.6)]


async def test_raw_answers_stop_counting_once_the_ids_differ(srv):
    srv.route("/completion", lambda c: answer(c, ids=None if c.record.body["post_sampling_probs"] else [304, 999]))
    _, tokens, end = collect(await run(srv.url))
    assert isinstance(end, DoneEvent)
    assert [t.logprob for t in tokens] == [-0.4, None] and tokens[1].top == () and tokens[1].p_sampled == 1.0


async def test_one_server_slot_serves_the_second_request_after_the_first(srv):
    # llama-server --parallel 1 queues the second request until the first is done: both must be read
    # at once or the run would stall.
    first_done = threading.Event()

    def script(call):
        if call.record.body["post_sampling_probs"]:
            answer(call)
            first_done.set()
        else:
            assert first_done.wait(5)
            answer(call)

    srv.route("/completion", script)
    _, tokens, end = collect(await run(srv.url))
    assert isinstance(end, DoneEvent) and [t.logprob for t in tokens] == [-0.4, -0.05]


async def test_a_failing_second_request_fails_the_run_and_says_which(srv):
    def script(call):
        if call.record.body["post_sampling_probs"]:
            answer(call)
        else:
            call.json(500, {"error": {"code": 500, "message": "out of slots", "type": "server_error"}})

    srv.route("/completion", script)
    events = await run(srv.url, max_retries=0)
    assert isinstance(events[-1], FailedEvent)
    assert "second request" in events[-1].message and "out of slots" in events[-1].message


async def test_without_raw_logprobs_one_request_gives_p_sampled_only(srv):
    srv.route("/completion", answer)
    events = await run(srv.url, raw_logprobs=False)
    _, tokens, end = collect(events)
    assert isinstance(end, DoneEvent) and len(srv.requests) == 1
    assert [(t.p_sampled, t.logprob, t.top) for t in tokens] == [(0.75, None, ()), (1.0, None, ())]
    assert events[0].params["probabilities"] == {"p_sampled": "server (post_sampling_probs)", "logprob": None}


async def test_greedy_sends_the_local_greedy_chain(srv):
    srv.route("/completion", answer)
    await run(srv.url, GenerationRequest("Once", SamplerParams(greedy=True, repeat_penalty=1.0), max_tokens=2, top_n=1))
    body = srv.requests[0].body
    assert body["samplers"] == ["penalties", "dry", "temperature"] and body["temperature"] == 0.0


async def test_an_error_event_in_the_stream_fails_the_run(srv):
    srv.route("/completion", lambda c: c.stream(sse([{"error": {"code": 400, "message": "context full"}}], done=False)))
    events = await run(srv.url)
    assert isinstance(events[-1], FailedEvent) and "context full" in events[-1].message


def test_config_and_command_line_select_the_kind():
    e = endpoint_from_mapping("box", {"kind": "llamacpp", "base_url": "http://gpu:8080"})
    assert e.model == "llama-server" and isinstance(remote_backend(e, {}), LlamaCppBackend)
    assert endpoint_from_mapping("d", {"kind": "llamacpp"}).base_url == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match="chat"):
        endpoint_from_mapping("c", {"kind": "llamacpp", "mode": "chat"})
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    cli = endpoint_from_args(parser.parse_args(["--api-kind", "llamacpp", "--base-url", "http://h:8080/v1"]), environ={})
    assert cli is not None and cli.kind == "llamacpp" and cli.api_key_env is None
    b = LlamaCppBackend(cli)
    assert b.url("/completion") == "http://h:8080/completion"
    assert b.capabilities.token_ids and b.capabilities.sampled_prob and not b.capabilities.chat
