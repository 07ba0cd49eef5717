"""Model-graded assertions: the local model as judge; its verdict parsed from its own text, and the
verdict's probability checked against an independent ``Engine.stream`` of the same judge prompt."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from playground.compare.job import EnginePool
from playground.engine_options import EngineChoice
from playground.evaluate.errors import SuiteError
from playground.evaluate.judge import parse_judge, parse_verdict
from playground.evaluate.run import Evaluation
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import default_variants
from playground.params import GenerationRequest, SamplerParams

# A plain judge prompt with two worked verdicts, so that even a small model answers in kind.
JUDGE_PROMPT = ("Grade each answer.\n\nQuestion: What is 1 + 1?\nAnswer: 2\nVerdict: PASS\n\n"
                "Question: What colour is the sky?\nAnswer: green\nVerdict: FAIL\n\n"
                "Question: {input}\nAnswer: {output}\nVerdict:")
SUITE = f"""
[suite]
instruction = "Answer with the name of the city only."
max_tokens = 6
[judge]
template = "plain"
max_tokens = 4
prompt = {json.dumps(JUDGE_PROMPT)}
[[case]]
input = "What is the capital of France?"
expected = "Paris"
assert = [{{ type = "contains" }}, {{ type = "judge", rubric = "Names Paris." }}]
[[case]]
input = "What is the capital of Japan?"
expected = "Tokyo"
assert = [{{ type = "judge" }}]
"""


@pytest.fixture(scope="module")
def pool():
    pool = EnginePool(EngineChoice(n_ctx=1024, n_threads=1))
    yield pool
    pool.close()


def test_verdicts_parse_words_and_numbers():
    assert (parse_verdict(" PASS\n").word, parse_verdict("fail.").word) == ("PASS", "FAIL")
    assert parse_verdict("Score: 8/10, PASS").score == 8.0 and parse_verdict("Score: 8/10").start == 7
    assert parse_verdict("-0.5 points").score == -0.5
    assert parse_verdict("The answer passes; bypass it") is None and parse_verdict("no verdict") is None


def test_judge_tables_are_checked(tmp_path):
    for table, message in [({"prompt": "no placeholder"}, "'prompt' must contain {output}"),
                           ({"template": "html"}, "'template' must be"), ({"temperature": 1}, "'temperature' is not a judge field"),
                           ({"max_tokens": 0}, "'max_tokens' must be a whole number")]:
        with pytest.raises(SuiteError, match=re.escape(message)):
            parse_judge(table, "s.toml: [judge]")
    path = tmp_path / "s.toml"
    path.write_text("[[case]]\ninput = 'x'\nassert = [{ type = 'judge', value = 'y' }]\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="'value' is not used by judge"):
        load_suite(path)


def test_local_judge_verdict_and_its_probability(pool, engine, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(path)
    judge = parse_judge(suite.judge, "s.toml: [judge]")
    evaluation = Evaluation(suite, default_variants(suite), pool, GenerationRequest("", SamplerParams(temperature=0.0),
                                                                                    max_tokens=6), judge=judge)
    cells = list(evaluation.cells())
    assert len(cells) == 2 and all(c.error is None for c in cells)
    first = cells[0]
    assert [a.type for a in first.asserts] == ["contains", "judge"]  # the case's order is kept
    for cell in cells:
        result = cell.asserts[-1]
        report = result.judge
        # the independent reference: the judge prompt filled here, streamed greedily on another engine
        prompt = JUDGE_PROMPT.replace("{input}", cell.case.vars["input"]).replace("{output}", cell.output.strip())
        assert report["prompt"] == prompt
        events = list(engine.stream(GenerationRequest(prompt, SamplerParams(temperature=0.0), max_tokens=4, top_n=10)))
        tokens = [e for e in events if type(e).__name__ == "TokenEvent"]
        text = "".join(t.text for t in tokens)
        assert report["output"] == text
        found = re.search(r"\b(pass|fail)\b", text, re.I)
        assert found, f"the judge gave no verdict: {text!r}"  # the worked examples make it answer in kind
        assert report["verdict"] == found.group(1).upper() and result.passed == (found.group(1).upper() == "PASS")
        offset, token = 0, None
        for t in tokens:
            offset += len(t.text)
            if t.text and offset > found.start():
                token = t
                break
        assert report["verdict_token"]["id"] == token.id and report["verdict_token"]["text"] == token.text
        assert report["verdict_token"]["prob"] == math.exp(token.logprob)
        # the mass of the alternatives there that begin each word, summed here from the stream's own
        for word in ("PASS", "FAIL"):
            expected = math.fsum(math.exp(a.logprob) for a in token.top if a.text.strip()
                                 and word.startswith(a.text.strip().upper()))
            assert report["verdict_probs"][word] == pytest.approx(expected, abs=1e-12)
        assert report["verdict_probs"][report["verdict"]] >= report["verdict_token"]["prob"] - 1e-12
        as_json = cell.to_dict()["asserts"][-1]
        assert as_json["judge"]["verdict_token"]["prob"] == report["verdict_token"]["prob"]


def test_a_numeric_judge_needs_a_threshold(pool, tmp_path):
    """A judge asked for a score: the first number in its text against pass_threshold."""
    path = tmp_path / "s.toml"
    prompt = ("Rate the answer from 0 to 9.\n\nQuestion: What is 1 + 1?\nAnswer: 2\nScore: 9\n\n"
              "Question: What is 2 + 2?\nAnswer: 7\nScore: 0\n\nQuestion: {input}\nAnswer: {output}\nScore:")
    path.write_text(f"[suite]\nmax_tokens = 4\n[judge]\ntemplate = 'plain'\nmax_tokens = 3\nprompt = {json.dumps(prompt)}\n"
                    "[[case]]\ninput = 'What is 3 + 3?'\nexpected = '6'\n"
                    "assert = [{ type = 'judge', pass_threshold = 5 }, { type = 'judge' }]\n", encoding="utf-8")
    suite = load_suite(path)
    cell = next(Evaluation(suite, default_variants(suite), pool, GenerationRequest("", SamplerParams(temperature=0.0),
                                                                                   max_tokens=4),
                           judge=parse_judge(suite.judge, "[judge]")).cells())
    with_threshold, without = cell.asserts
    text = with_threshold.judge["output"]
    assert without.judge["output"] == text  # greedy: the same judge run twice
    number = re.search(r"-?\d+(\.\d+)?", text)
    if number is None:
        assert not with_threshold.passed and "no verdict" in with_threshold.detail
    else:
        assert with_threshold.judge["score"] == float(number.group(0))
        assert with_threshold.passed == (float(number.group(0)) >= 5)
        assert not without.passed and "no pass_threshold" in without.detail


def test_the_judge_prompt_template_fills_placeholders_once(tmp_path):
    from playground.evaluate.assertions import Assertion
    from playground.evaluate.judge import JudgeSpec, judge_text

    case = load_suite(_write(tmp_path, "[[case]]\ninput = 'q {output}'\nexpected = 'e'\n")).cases[0]
    text = judge_text(JudgeSpec(prompt='{"json": 1} {input} | {output} | {expected} | {rubric}'),
                      Assertion("judge", rubric="R"), case, "  out  ")
    assert text == '{"json": 1} q {output} | out | e | R'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    return path
