"""Re-runs equal cold runs bit for bit: the canonical prompt schedule on the real embedded model.

Every comparison here is ``==`` on float32 values read from llama.cpp, never approx: a re-run that
reuses part of the last prompt must give exactly what a fresh engine (nothing cached) gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import collect
from reference import reference_logprobs
from playground.engine_options import EngineChoice
from playground.params import GenerationRequest, SamplerParams

SAMPLED = SamplerParams(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, seed=11)
# Words the tokenizer keeps as one token each (checked below), so a prompt's length is exact.
WORDS = " the cat sat on a mat and then it ran to see my old red dog by her big blue car".split()


@pytest.fixture(scope="module")
def warm_engine():
    """Reuses the last prompt (the behaviour under test)."""
    eng = EngineChoice(n_ctx=2048, n_threads=1).load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def cold_engine():
    """Evaluates every prompt from scratch: what a cold run computes."""
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield eng
    eng.close()


def word_prompt(engine, n_tokens: int, edit_at: int | None = None) -> str:
    """A prompt of exactly ``n_tokens`` tokens; ``edit_at`` swaps the word at that position."""
    words = [" " + WORDS[(i * 7) % len(WORDS)] for i in range(n_tokens)]
    if edit_at is not None:
        words[edit_at] = " zebra" if words[edit_at] != " zebra" else " lion"
    text = "".join(words)
    assert len(engine.model.tokenize(text, add_special=False)) == n_tokens
    return text


def request(prompt: str, sampler: SamplerParams = SAMPLED, max_tokens: int = 10) -> GenerationRequest:
    return GenerationRequest(prompt, sampler, max_tokens=max_tokens, top_n=5, add_special=False)


def numbers(tokens) -> list[tuple]:
    """Everything a token event says that comes from the logits, for exact comparison."""
    return [(t.id, t.logprob, t.entropy, t.p_sampled, tuple((a.id, a.logprob) for a in t.top)) for t in tokens]


def test_sampler_change_evaluates_nothing_and_sees_the_cold_logits(warm_engine, cold_engine):
    prompt = word_prompt(warm_engine, 300)
    _, first, done1 = collect(warm_engine.stream(request(prompt, SamplerParams(temperature=0.0), max_tokens=12)))
    assert done1.prompt_tokens_evaluated == 300 and len(first) == 12  # generated tokens now sit in the cache
    cold_logits = warm_engine.prompt_logits.copy()
    start, again, done2 = collect(warm_engine.stream(request(prompt)))
    assert done2.prompt_tokens_evaluated == 0
    assert np.array_equal(warm_engine.prompt_logits, cold_logits)
    # the same run on an engine that evaluated the prompt from scratch: identical numbers at every
    # position, which also needs the last run's generated tokens gone from the KV cache
    _, cold, _ = collect(cold_engine.stream(request(prompt)))
    assert np.array_equal(warm_engine.prompt_logits, cold_engine.prompt_logits)
    assert numbers(again) == numbers(cold)
    assert start.params["prefill_chunk"] == warm_engine.prefill_chunk
    assert done2.ttft_s < done1.ttft_s / 5


def edit_cases(chunk: int) -> list[tuple[int, int]]:
    """(prompt length, edited position) around chunk boundaries."""
    return [
        (2 * chunk, 2 * chunk - 3),  # prompt ends on a boundary: the last whole chunk is re-run
        (2 * chunk + 1, 2 * chunk - 2),  # a one-token last chunk
        (2 * chunk + 3, 2 * chunk),  # the edit sits exactly on a boundary
        (3 * chunk + 5, 3 * chunk + 2),
        (chunk - 1, chunk - 4),  # shorter than one chunk: nothing can be reused
    ]


def test_prompt_edited_near_its_end_equals_a_cold_run(warm_engine, cold_engine):
    chunk = warm_engine.prefill_chunk
    for n_tokens, edit_at in edit_cases(chunk):
        original = word_prompt(warm_engine, n_tokens)
        edited = word_prompt(warm_engine, n_tokens, edit_at)
        collect(warm_engine.stream(request(original, max_tokens=6)))
        _, rerun, done = collect(warm_engine.stream(request(edited)))
        _, cold, cold_done = collect(cold_engine.stream(request(edited)))
        kept = (edit_at // chunk) * chunk
        assert (done.prompt_tokens_evaluated, cold_done.prompt_tokens_evaluated) == (n_tokens - kept, n_tokens), n_tokens
        assert len(rerun) == 10
        assert numbers(rerun) == numbers(cold), (n_tokens, edit_at)


def test_extended_and_shortened_prompts_equal_cold_runs(warm_engine, cold_engine):
    chunk = warm_engine.prefill_chunk
    base = 2 * chunk + 40
    for n_tokens in (base, base + 30, 2 * chunk, chunk + 1, 2 * chunk + 70):
        prompt = word_prompt(warm_engine, n_tokens)
        _, rerun, done = collect(warm_engine.stream(request(prompt, max_tokens=5)))
        _, cold, _ = collect(cold_engine.stream(request(prompt, max_tokens=5)))
        assert numbers(rerun) == numbers(cold), n_tokens
        assert done.prompt_tokens_evaluated <= n_tokens


def test_an_independent_reference_following_the_reported_schedule_agrees(cold_engine, embedded_path):
    """The start event's ``prefill_chunk`` is enough to reproduce the engine's numbers elsewhere."""
    prompt = word_prompt(cold_engine, 2 * cold_engine.prefill_chunk + 30)
    start, tokens, _ = collect(cold_engine.stream(request(prompt, max_tokens=6)))
    ref = reference_logprobs(embedded_path, list(start.prompt_tokens), [t.id for t in tokens],
                             n_threads=cold_engine.model.n_threads, prefill_chunk=start.params["prefill_chunk"])
    for tok, ref_lp in zip(tokens, ref):
        assert tok.logprob == pytest.approx(ref_lp[tok.id], abs=1e-5)
        assert tok.top[0].id == int(np.argmax(ref_lp))
