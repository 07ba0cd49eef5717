"""Step mode (``engine/stepper.py``) against independent runs of the engine's own stream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import CHAT, collect
from playground.engine.stepper import Stepper
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest, SamplerParams

SAMPLER = SamplerParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.2, repeat_last_n=64, seed=7)
REQUEST = GenerationRequest(CHAT.format("Name three things you can find at the beach."), SAMPLER, max_tokens=14, top_n=5)


def numbers(events):
    return [(e.id, e.logprob, e.top, e.entropy, e.p_sampled, e.n_candidates) for e in events]


@pytest.fixture(scope="module")
def step_engine():
    eng = EngineChoice(n_ctx=2048, n_threads=1).load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def fresh():
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield eng
    eng.close()


def steps(stepper, n):
    out = []
    for _ in range(n):
        event = stepper.step()
        if event is None:
            break
        out.append(event)
    return out


def test_sampler_steps_equal_a_plain_run(step_engine, fresh):
    _, run, end = collect(fresh.stream(REQUEST))
    stepper = Stepper(step_engine, REQUEST)
    try:
        stepped = steps(stepper, len(run))
        assert numbers(stepped) == numbers(run)
        assert stepper.text == "".join(e.text for e in run)
    finally:
        stepper.close()


def test_a_manual_pick_equals_a_forced_branch(step_engine, fresh):
    for i in (0, 4):
        stepper = Stepper(step_engine, REQUEST)
        try:
            steps(stepper, i)
            rival = stepper.distribution(5).ids[1]  # not the best token: a real choice
            picked = stepper.step(int(rival))
            assert picked.forced and picked.p_sampled is None
            after = steps(stepper, 8)
            forced = stepper.completion[: i + 1]
            _, branch, _ = collect(fresh.stream(replace(REQUEST, max_tokens=8, force_ids=forced)))
            assert [e.id for e in branch] == list(stepper.completion)
            assert [(e.logprob, e.top, e.entropy) for e in branch] == [(e.logprob, e.top, e.entropy) for e in stepper.events]
            assert numbers(after) == numbers(branch[i + 1:])
        finally:
            stepper.close()


def test_undo_restores_the_cache_and_the_sampler(step_engine, fresh):
    _, run, _ = collect(fresh.stream(REQUEST))
    stepper = Stepper(step_engine, REQUEST)
    try:
        first = steps(stepper, 6)
        prompt = stepper.prompt
        before = step_engine.tokens_decoded
        removed = [stepper.undo(), stepper.undo()]
        assert [e.id for e in removed] == [first[5].id, first[4].id]
        assert step_engine.kv_tokens == prompt + stepper.completion
        assert step_engine.tokens_decoded - before == 2  # each undo decodes the new last token once more
        assert numbers(steps(stepper, 2)) == numbers(first[4:6])  # the same draws again
        stepper.step(int(stepper.distribution(3).ids[2]))
        stepper.undo()
        assert numbers(steps(stepper, 1)) == numbers(run[6:7])  # the pick and its undo left no trace
    finally:
        stepper.close()


def test_undo_after_a_manual_pick_gives_back_the_sampler(step_engine, fresh):
    _, run, _ = collect(fresh.stream(REQUEST))
    stepper = Stepper(step_engine, REQUEST)
    try:
        steps(stepper, 3)
        stepper.step(int(stepper.distribution(4).ids[3]))
        assert stepper.undo().forced
        assert numbers(steps(stepper, 5)) == numbers(run[3:8])
        assert stepper.undo() is not None and stepper.undo() is not None
        assert stepper.completion == tuple(e.id for e in run[:6])
    finally:
        stepper.close()


def test_the_stepper_survives_other_runs_on_the_engine(step_engine, fresh):
    _, run, _ = collect(fresh.stream(REQUEST))
    stepper = Stepper(step_engine, REQUEST)
    try:
        first = steps(stepper, 3)
        collect(step_engine.stream(GenerationRequest("Something else entirely", SAMPLER, max_tokens=5)))
        rest = steps(stepper, 3)
        assert numbers(first + rest) == numbers(run[:6])
        assert step_engine.kv_tokens == stepper.prompt + stepper.completion
    finally:
        stepper.close()


def test_a_forced_branch_after_steps_reuses_them(step_engine):
    stepper = Stepper(step_engine, REQUEST)
    try:
        steps(stepper, 5)
        completion = stepper.completion
    finally:
        stepper.close()
    _, branch, end = collect(step_engine.stream(replace(REQUEST, max_tokens=4, force_ids=completion)))
    assert end.prompt_tokens_evaluated == 1  # only the last stepped token, for its row
    assert [e.id for e in branch[:5]] == list(completion)


def test_a_manual_pick_outside_the_vocabulary_is_refused(step_engine):
    stepper = Stepper(step_engine, REQUEST)
    try:
        with pytest.raises(InvalidParameterError):
            stepper.step(step_engine.model.n_vocab)
        assert stepper.completion == ()
        assert stepper.undo() is None
    finally:
        stepper.close()
