"""Few-shot ablation: the suite's prompt with 0..k of its examples, each count a variant whose
scores equal those of a suite written with just that many examples."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from playground.compare.job import EnginePool
from playground.engine_options import EngineChoice
from playground.evaluate.errors import SuiteError
from playground.evaluate.run import Evaluation
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import default_variants, shot_variants
from playground.params import GenerationRequest, SamplerParams

from conftest import ROOT, playground_cmd, subprocess_env

EXAMPLES = [("Broke the first time I used it.", "negative"), ("Works great, very happy.", "positive"),
            ("It is a box.", "neutral")]
CASES = """
[[case]]
input = "The battery died after two days."
expected = "negative"
choices = ["positive", "negative", "neutral"]
assert = [{ type = "icontains" }]
[[case]]
input = "Absolutely love it!"
expected = "positive"
choices = ["positive", "negative", "neutral"]
assert = [{ type = "icontains" }]
"""


def suite_text(examples) -> str:
    shown = ", ".join(f"{{ input = {json.dumps(i)}, output = {json.dumps(o)} }}" for i, o in examples)
    return (f"[suite]\nname = 'reviews'\ntemplate = 'plain'\nexample_format = \"Review: {{input}}\\nSentiment: {{output}}\"\n"
            f"instruction = 'Classify the sentiment.'\nmax_tokens = 3\nexamples = [{shown}]\n" + CASES)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pool():
    pool = EnginePool(EngineChoice(n_ctx=1024, n_threads=1))
    yield pool
    pool.close()


def test_shot_variants_take_the_first_n_examples(tmp_path):
    suite = load_suite(write(tmp_path, "s.toml", suite_text(EXAMPLES)))
    variants = shot_variants(default_variants(suite)[0])
    assert [v.name for v in variants] == ["0-shot", "1-shot", "2-shot", "3-shot"]
    assert [v.prompt.examples for v in variants] == [tuple(EXAMPLES[:n]) for n in range(4)]
    assert {v.prompt.instruction for v in variants} == {"Classify the sentiment."}
    with pytest.raises(SuiteError, match="has no examples to ablate"):
        shot_variants(default_variants(load_suite(write(tmp_path, "z.toml", CASES)))[0])


def test_each_count_scores_as_a_suite_with_that_many_examples(pool, tmp_path):
    suite = load_suite(write(tmp_path, "s.toml", suite_text(EXAMPLES)))
    base = GenerationRequest("", SamplerParams(temperature=0.0), max_tokens=3)
    ablated = list(Evaluation(suite, shot_variants(default_variants(suite)[0]), pool, base).cells())
    assert [c.variant for c in ablated] == [f"{n}-shot" for n in range(4) for _ in range(2)]
    for n in range(4):
        alone = load_suite(write(tmp_path, f"s{n}.toml", suite_text(EXAMPLES[:n])))
        reference = list(Evaluation(alone, default_variants(alone), pool, base).cells())
        mine = [c for c in ablated if c.variant == f"{n}-shot"]
        assert [c.prompt_tokens for c in mine] == [c.prompt_tokens for c in reference]
        assert [c.choices.probs for c in mine] == [c.choices.probs for c in reference]
        assert [c.output for c in mine] == [c.output for c in reference]
    lengths = [len(c.prompt_tokens) for c in ablated if c.case.index == 0]
    assert lengths == sorted(lengths) and len(set(lengths)) == 4  # each example adds tokens


def test_cli_ablation_reports_each_count(tmp_path):
    path = write(tmp_path, "s.toml", suite_text(EXAMPLES[:2]))
    env = subprocess_env(tmp_path)
    proc = subprocess.run([*playground_cmd(), "eval", str(path), "--ablate-shots", "--score-only", "--json", "-t", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = lines[-1]["variants"]
    assert list(summary) == ["0-shot", "1-shot", "2-shot"]
    for name, row in summary.items():
        cells = [c for c in lines[:-1] if c["variant"] == name]
        assert row["n"] == 2 and row["choice_accuracy"] == sum(c["correct"] for c in cells) / 2
    text = subprocess.run([*playground_cmd(), "eval", str(path), "--ablate-shots", "--score-only", "-t", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    table = text.stdout.split("== few-shot ablation\n", 1)[1].splitlines()
    assert table[0].split() == ["shots", "pass", "rate", "choice", "acc", "mean", "answer", "logprob"]
    assert [row.split()[0] for row in table[1:]] == ["0", "1", "2"]
    for row, name in zip(table[1:], summary):
        assert row.split()[-1] == format(summary[name]["mean_answer_logprob"], ".3f")
    bad = subprocess.run([*playground_cmd(), "eval", "sessions/suites/capitals.toml", "--ablate-shots"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert bad.returncode == 2 and "has no examples to ablate" in bad.stderr
