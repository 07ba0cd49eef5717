"""Against llama.cpp's REAL C++ llama-server (built from the pinned sdist, see llama_server_cpp.py):
its native ``/completion`` through the ``llamacpp`` kind, and its ``/v1`` endpoints through the
``openai`` kind, each compared with the local engine on the same embedded model.

The server runs with flash attention on, like the local engine (``ModelOptions.flash_attn``): with
it off the logits differ by up to ~0.2 nats and greedy runs can diverge (measured with llama-cpp-
python's server, see test_backend_llama_server.py). The logits agree within 1e-6 (the gaps between
a position's log-probabilities), but llama-server's log-probabilities read 1e-4 to 3e-4 higher than
the exact ones, whichever endpoint: it normalises in float32 summing the sorted probabilities, so
the vocabulary's tail is rounded away (see assert_same_as_local). p_sampled of a seeded sampled
run is equal to the local engine's, token for token. ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import pytest

from helpers import collect
from llama_server_cpp import llamacpp_binary, llamacpp_url  # noqa: F401 - session fixtures
from playground.backends.endpoints import Endpoint
from playground.backends.factory import remote_backend
from playground.events import DoneEvent
from playground.params import GenerationRequest, SamplerParams

pytestmark = pytest.mark.slow
TOL = 1e-4
#: How much higher llama-server's log-probabilities may read than the exact ones (see assert_same_as_local).
NORM_SHIFT = 5e-4
#: Gaps between two log-probabilities of one position are the logits' own: measured within 5e-7.
GAP_TOL = 1e-5
PROMPTS = ["The capital of France is", "def fibonacci(n):\n"]
GREEDY = SamplerParams(temperature=0.0, repeat_penalty=1.0)


async def remote(endpoint: Endpoint, request: GenerationRequest):
    backend = remote_backend(endpoint, {})
    try:
        return [e async for e in backend.stream(request)]
    finally:
        await backend.aclose()


def native(url: str, **kw) -> Endpoint:
    return Endpoint("llama-server", "llamacpp", url, "llama-server", read_timeout=120, **kw)


def assert_same_as_local(tokens, local, *, ids: bool) -> tuple[float, float]:
    """Same tokens, the same logits (every gap between two entries of a position within GAP_TOL),
    and each position's log-probabilities shifted by one small positive offset: llama-server
    normalises in float32, adding the probabilities in sorted order, so the vocabulary's tail is
    lost to rounding and its log Z is too low by 1e-4 to 3e-4 (summing llama-cpp-python's logits
    that way reproduced its first values to 1e-8; the local engine sums pairwise). Returns (largest
    |logprob difference|, largest |gap difference|) for the report."""
    assert [t.text for t in tokens] == [t.text for t in local]
    if ids:
        assert [t.id for t in tokens] == [t.id for t in local]
    worst = worst_gap = 0.0
    for r, l in zip(tokens, local):
        assert r.logprob is not None and l.logprob is not None, (r.text, r.logprob)
        shift = r.logprob - l.logprob
        assert -TOL / 10 <= shift <= NORM_SHIFT, (r.text, r.logprob, l.logprob)
        local_alts = {a.id if ids else a.text: a.logprob for a in l.top}
        shared = [a for a in r.top if (a.id if ids else a.text) in local_alts]
        assert len(shared) >= len(r.top) - 1  # texts can collide; ids cannot
        for alt in shared:
            gap = (alt.logprob - r.logprob) - (local_alts[alt.id if ids else alt.text] - l.logprob)
            assert abs(gap) <= GAP_TOL, (r.text, alt.text, gap)
            worst_gap = max(worst_gap, abs(gap))
            worst = max(worst, abs(alt.logprob - local_alts[alt.id if ids else alt.text]))
        worst = max(worst, abs(shift))
    return worst, worst_gap


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_native_greedy_equals_the_local_engine(llamacpp_url, engine, prompt):
    request = GenerationRequest(prompt, GREEDY, max_tokens=12, top_n=5)
    _, local, local_done = collect(engine.stream(request))
    start, tokens, done = collect(await remote(native(llamacpp_url), request))
    assert isinstance(done, DoneEvent), done
    assert len(tokens) >= 8 and done.finish_reason == local_done.finish_reason
    worst, gap = assert_same_as_local(tokens, local, ids=True)
    print(f"native greedy {prompt!r}: max |logprob diff| {worst:.3g}, max |gap diff| {gap:.3g}")
    assert all(t.p_sampled == 1.0 and t.n_candidates == 1 for t in tokens)  # greedy: one survivor, p = 1
    assert start.params["server_defaults"] == []


@pytest.mark.parametrize(("seed", "repeat_penalty"), [(1234, 1.0), (7, 1.0), (99, 1.3)])
async def test_native_sampled_run_matches_the_local_p_sampled(llamacpp_url, engine, seed, repeat_penalty):
    # Same seed and chain: llama-server's dist sampler and ours draw from the same RNG (mt19937 seeded
    # alike) over the same candidates, so the tokens and their final probabilities agree.
    sampler = SamplerParams(temperature=0.9, top_k=20, top_p=0.9, min_p=0.02, repeat_penalty=repeat_penalty, seed=seed)
    request = GenerationRequest("Once upon a time", sampler, max_tokens=32, top_n=5)
    _, local, _ = collect(engine.stream(request))
    _, tokens, done = collect(await remote(native(llamacpp_url), request))
    assert isinstance(done, DoneEvent), done
    assert [t.id for t in tokens] == [t.id for t in local]
    worst, gap = assert_same_as_local(tokens, local, ids=True)
    worst_p = 0.0
    for r, l in zip(tokens, local):
        assert r.p_sampled == pytest.approx(l.p_sampled, abs=TOL), (r.text, r.p_sampled, l.p_sampled)
        assert r.n_candidates is None or r.n_candidates == l.n_candidates
        worst_p = max(worst_p, abs(r.p_sampled - l.p_sampled))
        # (no p_sampled >= exp(logprob): truncation raises p, but a temperature below 1 lowers the unlikely ones)
        assert 0.0 < r.p_sampled <= 1.0
    print(f"native sampled: {len(tokens)} ids equal, max |p_sampled diff| {worst_p:.3g}, "
          f"max |logprob diff| {worst:.3g}, max |gap diff| {gap:.3g}")


@pytest.mark.parametrize("mode", ["completions", "chat"])
async def test_v1_endpoints_give_logprobs_and_ids(llamacpp_url, engine, mode):
    from playground.prompt_builder import ChatTemplate, render_chat

    messages = (("user", "What is the capital of France?"),)
    if mode == "chat":
        request = GenerationRequest("", GREEDY, max_tokens=6, top_n=3, messages=messages)
        text, _, _ = render_chat(messages, ChatTemplate(engine.model.chat_template()))
        local_request = GenerationRequest(text, GREEDY, max_tokens=6, top_n=3)
    else:
        request = local_request = GenerationRequest(PROMPTS[0], GREEDY, max_tokens=8, top_n=3)
    endpoint = Endpoint("llama-server", "openai", llamacpp_url + "/v1", "smollm2", mode=mode, read_timeout=120,
                        extra_params=frozenset({"top_k", "min_p", "repeat_penalty"}))
    _, tokens, done = collect(await remote(endpoint, request))
    _, local, _ = collect(engine.stream(local_request))
    assert isinstance(done, DoneEvent), done
    assert len(tokens) >= 4
    worst, gap = assert_same_as_local(tokens, local, ids=True)
    print(f"/v1 {mode}: max |logprob diff| {worst:.3g}, max |gap diff| {gap:.3g}")
