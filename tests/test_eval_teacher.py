"""Teacher-forced answer scores: equal to what a greedy stream reports, and to numpy's log-softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from playground.engine.teacher import answer_tokens, normalise, score_answer, score_choices
from playground.errors import PromptTooLongError
from playground.events import TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import chat_request


def _chat(engine, text: str, n: int = 10) -> GenerationRequest:
    return chat_request(GenerationRequest(text, SamplerParams(temperature=0.0), max_tokens=n, top_n=0), engine)


def reference_logprobs(engine, prompt: list[int], answer: list[int]) -> list[float]:
    """Independent: float64 log-softmax over the full logits, same schedule (prompt, one token per decode)."""
    engine.evaluate_prompt(prompt)
    rows = [np.array(engine.prompt_logits, dtype=np.float64)]
    for token in answer[:-1]:
        engine.decode_one(token)
        rows.append(np.array(engine.logits_view(), dtype=np.float64))
    out = []
    for row, token in zip(rows, answer):
        m = row.max()
        out.append(float(row[token] - m - math.log(np.exp(row - m).sum())))
    return out


def test_answer_the_model_generated_scores_exactly_its_stream_logprobs(engine):
    request = _chat(engine, "What is the capital of France?")
    tokens = [e for e in engine.stream(request) if isinstance(e, TokenEvent)]
    assert len(tokens) >= 3
    prompt = engine.tokenize_prompt(request)
    score = score_answer(engine, prompt, [t.id for t in tokens])
    assert score.token_logprobs == tuple(t.logprob for t in tokens)  # exact, not approximately
    assert score.logprob == math.fsum(t.logprob for t in tokens)
    # the text route gives the same tokens here (BPE re-tokenises its own greedy output)
    assert answer_tokens(engine, "".join(t.text for t in tokens)) == list(score.tokens)


def test_answer_score_matches_numpy_log_softmax(engine):
    request = _chat(engine, "Name a colour.")
    prompt = engine.tokenize_prompt(request)
    answer = answer_tokens(engine, "Blue is a colour of the sky.")
    score = score_answer(engine, prompt, answer)
    assert score.token_logprobs == pytest.approx(reference_logprobs(engine, prompt, answer), abs=2e-4)
    assert score.mean_logprob == pytest.approx(score.logprob / len(answer))


def test_choices_normalise_to_one_and_argmax_matches_the_reference(engine):
    request = _chat(engine, "Is fire hot or cold? Answer with one word.")
    prompt = engine.tokenize_prompt(request)
    choices = [answer_tokens(engine, c) for c in ("Hot", "Cold", "Lukewarm and wet")]
    result = score_choices(engine, prompt, choices)
    assert math.fsum(result.probs) == pytest.approx(1.0, abs=1e-12)
    totals = [math.fsum(reference_logprobs(engine, prompt, c)) for c in choices]
    assert result.predicted == int(np.argmax(totals))
    ref = np.exp(np.array(totals) - max(totals))
    assert result.probs == pytest.approx(tuple(ref / ref.sum()), abs=1e-3)


def test_a_choice_scores_the_same_after_another_choice_as_alone(engine):
    """The KV cache is trimmed between choices: the earlier choice's tokens leave no trace."""
    prompt = engine.tokenize_prompt(_chat(engine, "Pick a fruit."))
    apple, pear = answer_tokens(engine, "An apple a day"), answer_tokens(engine, "A ripe pear")
    engine.evaluate_prompt(engine.tokenize_prompt(_chat(engine, "Something else entirely.")))  # cold for this prompt
    alone = score_answer(engine, prompt, pear)
    after = score_choices(engine, prompt, [apple, pear]).scores[1]
    assert after == alone


def test_normalise_handles_very_unlikely_answers():
    probs = normalise([-2000.0, -2001.0])
    assert probs[0] > probs[1] > 0 and math.fsum(probs) == pytest.approx(1.0)


def test_an_answer_past_the_context_is_refused(engine):
    prompt = engine.tokenize_prompt(_chat(engine, "Hi"))
    with pytest.raises(PromptTooLongError):
        score_answer(engine, prompt, [prompt[-1]] * (engine.model.n_ctx - len(prompt) + 1))
