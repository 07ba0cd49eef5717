"""Branching: a completion continued from given tokens (``GenerationRequest.force_ids``).

References are independent runs: a cold run whose prompt holds the forced tokens (a fresh engine,
its own loop over ``SequenceDecoder``), and the same forced request on a fresh engine that reuses
nothing. Counting uses ``Engine.tokens_decoded`` (every token handed to ``llama_decode``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest

from conftest import playground_cmd, subprocess_env
from helpers import CHAT, collect
from playground import jsonlines
from playground.engine.generator import Engine
from playground.engine.sequence import SequenceDecoder
from playground.engine.token_stats import StatsComputer
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest, SamplerParams

PROMPT = CHAT.format("Describe a walk through an old forest at dawn.")
# Repeat penalty on, so the forced tokens' place in the penalty history matters too.
SAMPLER = SamplerParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.3, repeat_last_n=64, seed=11)
REQUEST = GenerationRequest(PROMPT, SAMPLER, max_tokens=40, top_n=5)


@pytest.fixture(scope="module")
def fresh():
    """An engine that evaluates every prompt from scratch (nothing reused)."""
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def branch_engine():
    eng = EngineChoice(n_ctx=2048, n_threads=1).load()
    yield eng
    eng.close()


def cold_run(engine: Engine, request: GenerationRequest, prompt_tokens: list[int]):
    """A cold run whose prompt is ``prompt_tokens``: prefilled in the canonical chunks, then one
    token per decode, sampled with a fresh chain of the request's seed (no overlap, no reuse)."""
    model = engine.model
    seq = SequenceDecoder(request, request.sampler.seed, model, len(prompt_tokens), StatsComputer(model.n_vocab))
    try:
        seq.accept_prompt(prompt_tokens)
        assert engine.evaluate_prompt(list(prompt_tokens)) == len(prompt_tokens)
        logits = engine.prompt_logits
        events = []
        while True:
            event = seq.step(logits, 0.0, 0, True, False)
            if event is not None:
                events.append(event)
            if seq.ended:
                return events, seq.finish
            engine.decode_one(seq.next_token)
            seq.pos += 1
            logits = engine.logits_view()
    finally:
        seq.close()


def branch_points(tokens, n=3):
    """(i, t): a position and a token other than the one the run took there (its best rival)."""
    picks = []
    for i in (0, len(tokens) // 3, (2 * len(tokens)) // 3)[:n]:
        rival = next(a.id for a in tokens[i].top if a.id != tokens[i].id)
        picks.append((i, rival))
    return picks


def test_a_branch_equals_a_cold_run_whose_prompt_holds_the_forced_tokens(branch_engine, fresh, record_property):
    _, run, _ = collect(branch_engine.stream(REQUEST))
    prompt = branch_engine.tokenize_prompt(REQUEST)
    worst = 0.0
    for i, t in branch_points(run):
        forced = tuple(e.id for e in run[:i]) + (t,)
        _, branch, end = collect(branch_engine.stream(replace(REQUEST, force_ids=forced)))
        generated = branch[len(forced):]
        assert [e.forced for e in branch] == [True] * len(forced) + [False] * len(generated)
        assert [e.id for e in branch[:len(forced)]] == list(forced)
        cold, finish = cold_run(fresh, REQUEST, prompt + list(forced))
        assert [e.id for e in generated] == [e.id for e in cold], f"branch at {i}"
        assert end.finish_reason == finish
        assert len(generated) == len(cold) and end.n_tokens == len(forced) + len(cold)
        worst = max([worst, *(abs(a.logprob - b.logprob) for a, b in zip(generated, cold))])
    # The cold run prefills the forced tokens in its prompt's last chunk, the branch decodes them
    # one per token: llama.cpp is not batch-invariant, so the floats could differ. Measured on this
    # CPU build (flash attention, SmolLM2 Q4_1, 3 branch points x 40 tokens): 0.0, bit-identical.
    # Only the ids are required equal; the bound catches a wrong row, not last-bit noise.
    record_property("max_abs_logprob_diff_vs_cold_prompt", worst)
    print(f"max |logprob(branch) - logprob(cold run with the tokens in its prompt)| = {worst:.3g} nats")
    assert worst < 1e-2


def test_a_branch_is_bit_identical_to_the_same_forced_run_from_scratch(branch_engine, fresh):
    _, run, _ = collect(branch_engine.stream(REQUEST))
    for i, t in branch_points(run):
        request = replace(REQUEST, force_ids=tuple(e.id for e in run[:i]) + (t,))
        _, reused, _ = collect(branch_engine.stream(request, dist_size=8))
        _, scratch, end = collect(fresh.stream(request, dist_size=8))
        assert end.prompt_tokens_evaluated == len(fresh.tokenize_prompt(request)) + len(request.force_ids)
        assert [(e.id, e.logprob, e.top, e.entropy, e.p_sampled, e.forced) for e in reused] == \
               [(e.id, e.logprob, e.top, e.entropy, e.p_sampled, e.forced) for e in scratch]
        assert [e.dist.log_z for e in reused] == [e.dist.log_z for e in scratch]
        # the forced prefix's numbers are those the original run reported there (same rows)
        assert [(e.logprob, e.top, e.entropy) for e in reused[:i]] == [(e.logprob, e.top, e.entropy) for e in run[:i]]


def expected_generation_decodes(tokens, end, n_forced):
    """Decodes a run spends after its context: every generated token but a last one that ended it
    by length or a stop string (an end-of-generation token ends it after its token is decoded)."""
    n = len(tokens) - n_forced
    return n if end.finish_reason == "stop" and end.stop_string is None else n - 1


def test_branching_evaluates_no_prompt_token_again(branch_engine):
    request = replace(REQUEST, max_tokens=12)
    _, run, _ = collect(branch_engine.stream(request))
    prompt_len = len(branch_engine.tokenize_prompt(request))
    for i in (0, 1, 5, 10):
        t = next(a.id for a in run[i].top if a.id != run[i].id)
        forced = tuple(e.id for e in run[:i]) + (t,)
        before = branch_engine.tokens_decoded
        _, branch, end = collect(branch_engine.stream(replace(request, force_ids=forced)))
        decoded = branch_engine.tokens_decoded - before
        # the token before the branch point again (its row scores t; llama.cpp keeps no older rows), and t
        context = 1 if i == 0 else 2
        assert end.prompt_tokens_evaluated == context
        assert decoded == context + expected_generation_decodes(branch, end, len(forced))
        assert decoded < prompt_len  # the prompt itself was not evaluated again
        # back to the original completion for the next branch point
        _, again, _ = collect(branch_engine.stream(request))
        assert [e.id for e in again] == [e.id for e in run]


def test_continuing_the_same_completion_decodes_only_its_last_token(branch_engine):
    request = replace(REQUEST, max_tokens=10)
    _, run, _ = collect(branch_engine.stream(request))
    forced = tuple(e.id for e in run[:7])
    before = branch_engine.tokens_decoded
    _, cont, end = collect(branch_engine.stream(replace(request, force_ids=forced)))
    assert end.prompt_tokens_evaluated == 1
    assert branch_engine.tokens_decoded - before == 1 + expected_generation_decodes(cont, end, len(forced))
    assert [(e.id, e.logprob) for e in cont[:7]] == [(e.id, e.logprob) for e in run[:7]]


def test_reuse_needs_the_statistics_asked_for(branch_engine, fresh):
    """A trail recorded with top_n=2 cannot serve a branch asking top_n=8: it is computed again, the same."""
    small = replace(REQUEST, max_tokens=8, top_n=2)
    _, run, _ = collect(branch_engine.stream(small))
    request = replace(REQUEST, max_tokens=8, top_n=8, force_ids=tuple(e.id for e in run[:5]))
    _, branch, end = collect(branch_engine.stream(request))
    assert end.prompt_tokens_evaluated == 5
    _, scratch, _ = collect(fresh.stream(request))
    assert [(e.id, e.logprob, e.top) for e in branch] == [(e.id, e.logprob, e.top) for e in scratch]
    assert all(len(e.top) == 8 for e in branch)


def test_forced_tokens_are_checked(branch_engine):
    with pytest.raises(InvalidParameterError):
        collect(branch_engine.stream(replace(REQUEST, force_ids=(branch_engine.model.n_vocab,))))
    with pytest.raises(InvalidParameterError):
        replace(REQUEST, force_ids=(-3,)).validate()


def test_forced_marks_only_forced_tokens_in_json(branch_engine):
    _, tokens, _ = collect(branch_engine.stream(replace(REQUEST, max_tokens=3, force_ids=(504,))))
    lines = [jsonlines.event_to_dict(e) for e in tokens]
    assert lines[0]["forced"] is True and lines[0]["p_sampled"] is None
    assert all("forced" not in line for line in lines[1:])


def test_cli_force_prefix_ids_and_text(tmp_path):
    prompt = "The capital of France is"
    base = [*playground_cmd(), "generate", prompt, "--json", "--temp", "0", "-n", "4", "-t", "1"]
    first = subprocess.run(base, capture_output=True, text=True, env=subprocess_env(tmp_path), timeout=120)
    assert first.returncode == 0, first.stderr
    tokens = [json.loads(line) for line in first.stdout.splitlines() if '"token"' in line]
    ids = [t["id"] for t in tokens]
    out = subprocess.run([*base, "--force-prefix-ids", ",".join(map(str, ids[:2]))],
                         capture_output=True, text=True, env=subprocess_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    branch = [json.loads(line) for line in out.stdout.splitlines() if '"token"' in line]
    assert [t.get("forced", False) for t in branch] == [True, True, False, False, False, False]
    assert [t["id"] for t in branch[:4]] == ids  # greedy: the same completion, continued
    assert [t["logprob"] for t in branch[:2]] == [t["logprob"] for t in tokens[:2]]
    text = "".join(t["text"] for t in tokens[:2])
    out = subprocess.run([*base, "--force-prefix", text], capture_output=True, text=True,
                         env=subprocess_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    by_text = [json.loads(line) for line in out.stdout.splitlines() if '"token"' in line]
    assert "".join(t["text"] for t in by_text if t.get("forced")) == text
