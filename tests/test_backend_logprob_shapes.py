"""Every engine's logprob shape, as recorded from their OpenAI-compatible servers, is read on both
endpoints: llama-server's ``content`` entries (ids, bytes), vLLM's long legacy lists, TensorRT-LLM's."""

from __future__ import annotations

import math

import pytest

from fault_server import FaultServer, sse
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.backends.logprob_shapes import ByteJoiner, logprob_entries
from playground.backends.openai_compat import OpenAIBackend
from playground.events import DoneEvent, StartEvent
from playground.params import GenerationRequest, SamplerParams

REQ = GenerationRequest("Hi", SamplerParams(temperature=0.0), max_tokens=8, top_n=2)


def entry(tid: int, text: str, lp: float, alts: list[tuple[int, str, float]], raw: bytes | None = None) -> dict:
    """One ``content`` entry as llama-server writes it (token text cut to valid UTF-8, full bytes)."""
    data = raw if raw is not None else text.encode()
    return {"id": tid, "token": text, "bytes": list(data), "logprob": lp,
            "top_logprobs": [{"id": i, "token": t, "bytes": list(t.encode()), "logprob": v} for i, t, v in alts]}


def chunk(text: str, logprobs, finish=None, chat=False) -> dict:
    choice = {"index": 0, "logprobs": logprobs, "finish_reason": finish}
    choice.update({"delta": {"content": text}} if chat else {"text": text})
    return {"choices": [choice], "object": "chat.completion.chunk" if chat else "text_completion"}


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


async def run(url: str, path: str, chunks: list[dict], mode: str = "completions", **kw):
    with_srv = kw.pop("srv")
    with_srv.route(path, lambda c: c.stream(sse(chunks)))
    b = OpenAIBackend(Endpoint("e", "openai", url + "/v1", "m", mode=mode, read_timeout=2.0, **kw))
    try:
        return [e async for e in b.stream(REQ)]
    finally:
        await b.aclose()


@pytest.mark.parametrize("chat", [False, True])
async def test_llama_server_content_entries_give_logprobs_and_ids(srv, chat):
    chunks = [chunk(" Paris", {"content": [entry(6342, " Paris", -0.25, [(6342, " Paris", -0.25), (3, " the", -1.75), (9, " a", -3.0)])]}, chat=chat),
              chunk(".", {"content": [entry(30, ".", -0.5, [(30, ".", -0.5), (11, ",", -1.0)])]}, chat=chat),
              chunk("", None, finish="stop", chat=chat)]
    path = "/v1/chat/completions" if chat else "/v1/completions"
    start, tokens, end = collect(await run(srv.url, path, chunks, mode="chat" if chat else "completions", srv=srv))
    assert isinstance(end, DoneEvent)
    assert [(t.text, t.id, t.logprob) for t in tokens] == [(" Paris", 6342, -0.25), (".", 30, -0.5)]
    assert [(a.id, a.text, a.logprob) for a in tokens[0].top] == [(6342, " Paris", -0.25), (3, " the", -1.75)]  # top_n = 2


async def test_a_character_split_over_two_tokens_is_joined_from_bytes(srv):
    # "é" = c3 a9 in two tokens, sent together in one chunk (a non-streamed or batched answer):
    # the first token adds "" and the second the whole character, like the local engine.
    e1 = entry(200, "", -0.1, [], raw=b"\xc3")
    e2 = entry(201, "é", -0.2, [], raw=b"\xa9")
    e2["token"] = ""  # llama-server cuts the token text to valid UTF-8: only the bytes are exact
    chunks = [chunk("é", {"content": [e1, e2]}), chunk("", None, finish="length")]
    _, tokens, end = collect(await run(srv.url, "/v1/completions", chunks, srv=srv))
    assert isinstance(end, DoneEvent)
    assert [(t.text, t.id) for t in tokens] == [("", 200), ("é", 201)]
    assert [t.logprob for t in tokens] == [-0.1, -0.2]


def test_the_joiner_spans_chunks_and_an_entry_without_bytes_resets_it():
    joiner = ByteJoiner()
    first = logprob_entries({"content": [{"token": "", "bytes": [0xE2, 0x80], "logprob": -1.0}]}, 0, joiner)
    second = logprob_entries({"content": [{"token": "", "bytes": [0x99], "logprob": -1.0}]}, 0, joiner)
    assert (first[0].text, second[0].text) == ("", "\u2019")
    logprob_entries({"content": [{"token": "", "bytes": [0xE2], "logprob": -1.0}]}, 0, joiner)
    plain = logprob_entries({"content": [{"token": "x", "logprob": -1.0}]}, 0, joiner)  # no bytes: its text
    after = logprob_entries({"content": [{"token": "", "bytes": [0x41], "logprob": -1.0}]}, 0, joiner)
    assert (plain[0].text, after[0].text) == ("x", "A")


async def test_vllm_legacy_lists_with_more_alternatives_than_openai_allows(srv):
    # vLLM answers `logprobs: 8` (up to its --max-logprobs) and adds the chosen token when it is not
    # among them: nine entries for the first token.
    top = {f"t{k}": -0.5 - k for k in range(8)} | {" Paris": -0.2}
    chunks = [chunk(" Paris", {"text_offset": [0], "token_logprobs": [-0.2], "tokens": [" Paris"], "top_logprobs": [top]}),
              chunk("", None, finish="stop")]
    srv.route("/v1/completions", lambda c: c.stream(sse(chunks)))
    b = OpenAIBackend(Endpoint("v", "openai", srv.url + "/v1", "m", max_logprobs=8, read_timeout=2.0))
    try:
        events = [e async for e in b.stream(REQ.__class__("Hi", REQ.sampler, max_tokens=4, top_n=8))]
    finally:
        await b.aclose()
    assert srv.requests[-1].body["logprobs"] == 8
    _, tokens, _ = collect(events)
    assert tokens[0].logprob == -0.2 and len(tokens[0].top) == 8 and tokens[0].top[0].text == " Paris"
    assert [a.logprob for a in tokens[0].top] == sorted((a.logprob for a in tokens[0].top), reverse=True)


async def test_vllm_token_id_spelling_gives_ids(srv):
    chunks = [chunk("Hi", {"content": [{"token": "token_id:9906", "logprob": -0.3, "bytes": [72, 105],
                                         "top_logprobs": [{"token": "token_id:9906", "logprob": -0.3, "bytes": [72, 105]}]}]}, chat=True),
              chunk("", None, finish="stop", chat=True)]
    _, tokens, _ = collect(await run(srv.url, "/v1/chat/completions", chunks, mode="chat", srv=srv))
    assert [(t.text, t.id, t.logprob) for t in tokens] == [("Hi", 9906, -0.3)]
    assert tokens[0].top[0].id == 9906 and tokens[0].top[0].text == "Hi"


async def test_tensorrt_llm_chat_and_completions_shapes(srv):
    # trtllm-serve: chat entries without ids (token, logprob, bytes, top_logprobs); completions in
    # the legacy lists with top_logprobs as a list of {token: logprob} objects.
    chat = [chunk("A", {"content": [{"token": "A", "logprob": -0.7, "bytes": [65],
                                     "top_logprobs": [{"token": "A", "logprob": -0.7, "bytes": [65]}, {"token": "B", "logprob": -1.2, "bytes": [66]}]}]}, chat=True),
            chunk("", None, finish="length", chat=True)]
    _, tokens, _ = collect(await run(srv.url, "/v1/chat/completions", chat, mode="chat", srv=srv))
    assert [(t.text, t.id, t.logprob, [a.text for a in t.top]) for t in tokens] == [("A", -1, -0.7, ["A", "B"])]
    plain = [chunk("A", {"tokens": ["A"], "token_logprobs": [-0.7], "top_logprobs": [{"A": -0.7, "B": -1.2}]}),
             chunk("", None, finish="length")]
    _, tokens, _ = collect(await run(srv.url, "/v1/completions", plain, srv=srv))
    assert [(t.text, t.logprob, [a.text for a in t.top]) for t in tokens] == [("A", -0.7, ["A", "B"])]


async def test_the_start_event_lists_the_settings_left_to_the_server(srv):
    chunks = [chunk("A", None), chunk("", None, finish="stop")]
    start, _, _ = collect(await run(srv.url, "/v1/completions", chunks, srv=srv, extra_params=frozenset({"top_k"})))
    assert isinstance(start, StartEvent)
    assert start.params["server_defaults"] == ["min_p", "repeat_last_n", "repeat_penalty"]
    assert "top_k" in srv.requests[-1].body and "repeat_penalty" not in srv.requests[-1].body


def test_impossible_values_in_any_shape_read_as_unknown():
    pieces = logprob_entries({"content": [{"token": "a", "logprob": math.nan, "bytes": [300]},
                                          {"token": 5}, "junk", {"token": "b", "logprob": 0.5}]}, 3)
    assert [(p.text, p.logprob) for p in pieces] == [("a", None), ("b", None)]
