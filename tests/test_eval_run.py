"""Evaluation in process: variants render as declared, scores follow the prompt, a bad cell fails alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.compare.job import EnginePool
from playground.compare.mixed import LaneTarget
from playground.engine_options import EngineChoice
from playground.evaluate.run import Evaluation
from playground.evaluate.scoring import summarise
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import default_variants, load_variants
from playground.params import GenerationRequest, SamplerParams

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pool():
    pool = EnginePool(EngineChoice(n_ctx=512, n_threads=1))
    yield pool
    pool.close()


def test_variants_render_and_score_each_their_own_way(pool):
    suite = load_suite(ROOT / "sessions/suites/review-sentiment.toml")
    variants = load_variants(ROOT / "sessions/suites/review-sentiment.variants.toml", suite)
    base = GenerationRequest("", SamplerParams(temperature=0.0), max_tokens=4)
    cells = list(Evaluation(suite, variants, pool, base).cells())
    assert [c.variant for c in cells] == [v.name for v in variants for _ in suite.cases]
    engine = pool.backend(LaneTarget(), [base]).engine
    plain = [c for c in cells if c.variant == "plain two-shot"]
    for cell in plain:
        # plain: the answer follows "Sentiment:" with the space the tokenizer attaches to the word
        assert cell.answer.tokens == tuple(engine.model.tokenize(" " + cell.case.expected, add_special=False))
    chat = [c for c in cells if c.variant == "two-shot"]
    assert chat[0].answer.tokens == tuple(engine.model.tokenize(chat[0].case.expected, add_special=False))
    zero = [c for c in cells if c.variant == "zero-shot"]
    assert len(chat[0].prompt_tokens) > len(zero[0].prompt_tokens)  # the examples are in the prompt
    assert chat[0].answer.logprob != zero[0].answer.logprob
    summary = summarise(cells)
    assert list(summary) == [v.name for v in variants] and all(row["n"] == 4 for row in summary.values())


def test_a_case_too_long_for_the_context_fails_alone(pool, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f"[[case]]\ninput = '{'word ' * 600}'\nexpected = 'x'\nassert = [{{ type = 'contains' }}]\n"
                    "[[case]]\ninput = 'Say hi.'\nexpected = 'Hi'\n", encoding="utf-8")
    suite = load_suite(path)
    cells = list(Evaluation(suite, default_variants(suite),
                            pool, GenerationRequest("", SamplerParams(temperature=0.0), max_tokens=3)).cells())
    assert cells[0].error and "Prompt too long" in cells[0].error and cells[0].answer is None
    assert cells[1].error is None and cells[1].answer is not None and cells[1].output is not None
    row = summarise(cells)[suite.name]
    assert row["n_failed"] == 1 and row["pass_rate"] == 0.0 and row["n_scored"] == 1
