"""``playground eval`` end to end in a subprocess: JSON lines, scores anyone can recompute, exit codes."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from playground.events import round_logprob

from conftest import ROOT, playground_cmd, subprocess_env


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*playground_cmd(), *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=subprocess_env(tmp_path))


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_example_suite_runs_end_to_end(tmp_path):
    proc = run_cli(tmp_path, "eval", "sessions/suites/review-sentiment.toml", "--json", "-t", "1")
    assert proc.returncode == 0, proc.stderr
    events = lines(proc.stdout)
    cases, summary = events[:-1], events[-1]
    assert [e["event"] for e in cases] == ["case"] * 4 and summary["event"] == "summary"
    for e in cases:
        probs = e["choice_probs"]
        assert set(probs) == {"positive", "negative", "neutral"} and math.fsum(probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert e["predicted"] == max(probs, key=probs.get)
        assert e["answer_logprob"] == math.fsum(e["answer_token_logprobs"])
        assert e["answer_tokens"] == e["choice_tokens"][e["expected"]]
        assert e["correct"] == (e["predicted"] == e["expected"])
        assert e["pass"] == all(a["pass"] for a in e["asserts"]) and e["output"] is not None
    row = summary["variants"]["review sentiment"]
    assert row["n"] == 4 and row["choice_accuracy"] == sum(e["correct"] for e in cases) / 4
    assert row["pass_rate"] == sum(e["pass"] for e in cases) / 4
    assert row["mean_answer_logprob"] == pytest.approx(sum(e["answer_logprob"] for e in cases) / 4)
    assert summary["receipt"]["prefill_chunk"] >= 1 and summary["receipt"]["sha256"]


def test_answer_logprob_equals_what_generate_showed(tmp_path):
    """The expected answer set to what a greedy `generate --chat` produced scores exactly its logprobs."""
    question = "What is the capital of France?"
    gen = run_cli(tmp_path, "generate", "--chat", "--temp", "0", "-n", "8", "--json", "-t", "1", question)
    assert gen.returncode == 0, gen.stderr
    events = lines(gen.stdout)
    tokens = [e for e in events if e["event"] == "token"]
    answer = "".join(t["text"] for t in tokens)
    suite = tmp_path / "s.toml"
    suite.write_text(f"[suite]\nmax_tokens = 8\n[[case]]\ninput = {json.dumps(question)}\nexpected = {json.dumps(answer)}\n"
                     "assert = [{ type = \"equals\" }]\n", encoding="utf-8")
    proc = run_cli(tmp_path, "eval", str(suite), "--json", "-t", "1")
    assert proc.returncode == 0, proc.stderr
    cell = lines(proc.stdout)[0]
    assert cell["prompt_tokens"] == events[0]["prompt_tokens"]
    assert cell["answer_tokens"] == [t["id"] for t in tokens]
    # generate --json prints logprobs rounded (events.round_logprob); eval keeps full precision,
    # so that answer_logprob is exactly their sum. Rounded, they are the very values generate showed.
    assert [round_logprob(lp) for lp in cell["answer_token_logprobs"]] == [t["logprob"] for t in tokens]
    assert cell["output"] == answer and cell["pass"] is (answer.strip() == answer)


def test_threshold_and_bad_input_exit_codes(tmp_path):
    proc = run_cli(tmp_path, "eval", "sessions/suites/capitals.toml", "--score-only", "--min-pass-rate", "0.5",
                   "--min-choice-accuracy", "1", "-t", "1")
    # score-only: no assertions ran (no pass rate) and there are no choices: both thresholds are missed
    assert proc.returncode == 1, proc.stderr
    assert "pass rate n/a is below 0.5" in proc.stderr and "mean answer logprob -" in proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[case]]\ninput = 'x'\nchoices = ['a']\n", encoding="utf-8")
    proc = run_cli(tmp_path, "eval", str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["playground: Suite file: bad.toml: case 0: 'choices' must be a list "
                                                "of at least two non-empty strings"]
