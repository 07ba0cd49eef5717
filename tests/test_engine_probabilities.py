"""The engine's numbers against an independent reference on the real embedded model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import CHAT, collect
from reference import reference_logprobs
from playground.engine_options import EngineChoice
from playground.params import GenerationRequest, SamplerParams

PROMPT = CHAT.format("Name three colours of the rainbow and explain why the sky is blue.")


@pytest.fixture(scope="module")
def fresh_engine():
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield eng
    eng.close()


def test_logprobs_and_alternatives_match_reference(fresh_engine, embedded_path):
    request = GenerationRequest(PROMPT, SamplerParams(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, seed=7), max_tokens=24, top_n=20, add_special=False)
    start, tokens, done = collect(fresh_engine.stream(request))
    assert done.finish_reason in ("stop", "length") and len(tokens) >= 5
    ref = reference_logprobs(embedded_path, list(start.prompt_tokens), [t.id for t in tokens], n_threads=fresh_engine.model.n_threads,
                             prefill_chunk=start.params["prefill_chunk"])
    for tok, ref_lp in zip(tokens, ref):
        assert tok.logprob == pytest.approx(ref_lp[tok.id], abs=1e-4), tok
        ref_top = np.argsort(-ref_lp)[:20]
        # same set in the same order, except where two logits tie to float precision
        assert [a.id for a in tok.top][:5] == list(ref_top[:5])
        for alt in tok.top:
            assert alt.logprob == pytest.approx(ref_lp[alt.id], abs=1e-4)
        p = np.exp(ref_lp)
        entropy = float(-(p * ref_lp).sum())
        assert tok.entropy == pytest.approx(entropy, abs=1e-3)


def test_greedy_picks_the_argmax(engine):
    request = GenerationRequest(PROMPT, SamplerParams(temperature=0.0, repeat_penalty=1.0), max_tokens=20, top_n=5, add_special=False)
    _, tokens, _ = collect(engine.stream(request))
    assert tokens
    for tok in tokens:
        assert tok.id == tok.top[0].id
        assert tok.p_sampled == 1.0 and tok.n_candidates == 1


def test_same_seed_same_tokens_other_seed_other_tokens(engine):
    def run(seed: int) -> list[int]:
        sampler = SamplerParams(temperature=1.2, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
        _, tokens, _ = collect(engine.stream(GenerationRequest(PROMPT, sampler, max_tokens=30, top_n=0, add_special=False)))
        return [t.id for t in tokens]

    a, b, c = run(11), run(11), run(12)
    assert a == b
    assert a != c


def test_top_k_one_equals_greedy(engine):
    def run(sampler: SamplerParams) -> list[int]:
        _, tokens, _ = collect(engine.stream(GenerationRequest(PROMPT, sampler, max_tokens=25, top_n=0, add_special=False)))
        return [t.id for t in tokens]

    assert run(SamplerParams(temperature=1.5, top_k=1, seed=3)) == run(SamplerParams(temperature=0.0))


def test_chosen_token_survives_the_chain_and_p_sampled_is_exact(engine):
    k, temp = 5, 0.7
    sampler = SamplerParams(temperature=temp, top_k=k, top_p=1.0, min_p=0.0, seed=99)
    _, tokens, _ = collect(engine.stream(GenerationRequest(PROMPT, sampler, max_tokens=30, top_n=10, add_special=False)))
    for tok in tokens:
        survivors = tok.top[:k]
        assert tok.n_candidates == k
        assert tok.id in [a.id for a in survivors]
        # independent computation of the final distribution: softmax of the top-k at temperature
        scaled = np.array([a.logprob for a in survivors], dtype=np.float64) / temp
        p = np.exp(scaled - scaled.max())
        p /= p.sum()
        expected = p[[a.id for a in survivors].index(tok.id)]
        assert tok.p_sampled == pytest.approx(expected, abs=1e-5)


def test_min_p_and_top_p_survivor_counts(engine):
    sampler = SamplerParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1, seed=5)
    _, tokens, _ = collect(engine.stream(GenerationRequest(PROMPT, sampler, max_tokens=15, top_n=100, add_special=False)))
    for tok in tokens:
        cutoff = tok.top[0].logprob + math.log(0.1)
        expected = sum(1 for a in tok.top if a.logprob >= cutoff)
        assert tok.n_candidates == expected
