"""What a comparison teaches: confidence gaps on shared tokens, and one summary line per lane."""

from __future__ import annotations

import json
import math
import subprocess

from conftest import playground_cmd, subprocess_env
from playground.compare.lessons import confidence_gaps, gap_line, lane_summary, strongest_gap
from playground.compare.variant import load_variants
from playground.events import DoneEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams
from tests.helpers import collect

VARIANTS = """
[[variant]]
name = "zero-shot"
instruction = "Continue the count."
input = "one, two, three,"
temp = 0

[[variant]]
name = "1-shot"
instruction = "Continue the count."
input = "one, two, three,"
examples = [{ input = "a, b, c,", output = "d, e" }]
temp = 0
"""


def tok(i: int, id: int, lp: float | None, text: str = "x", forced: bool = False) -> TokenEvent:
    return TokenEvent(i=i, id=id, text=text, logprob=lp, p_sampled=None, top=(), t=0.0, forced=forced)


def test_gaps_stop_at_the_first_different_token_and_skip_missing_logprobs():
    mine = [tok(0, 5, -0.1), tok(1, 6, None), tok(2, 7, -2.0), tok(3, 9, -0.5)]
    ref = [tok(0, 5, -1.2), tok(1, 6, -0.3), tok(2, 7, -1.0), tok(3, 8, -0.5)]
    gaps = confidence_gaps(mine, ref)
    assert [g.index for g in gaps] == [0, 2]
    assert math.isclose(gaps[0].ratio, math.exp(1.1)) and strongest_gap(gaps).index == 0
    assert "3.0x more likely" in gap_line(gaps[0]) and "2.7x less likely" in gap_line(gaps[1])


def test_summary_counts_generated_tokens_only():
    tokens = [tok(0, 1, -9.0, forced=True), tok(1, 2, -0.5), tok(2, 3, -1.5)]
    s = lane_summary(tokens, DoneEvent("stop", 3, 0.25, None, None))
    assert s.n_tokens == 2 and math.isclose(s.mean_logprob, -1.0) and math.isclose(s.perplexity, math.e)
    assert "TTFT 250 ms" in s.line() and lane_summary([tok(0, 1, None)]).perplexity is None


def test_compare_reports_the_logprob_differences_of_the_shared_answer(engine, tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(VARIANTS)
    base = playground_cmd() + ["compare", "--variants", str(path), "-n", "3", "-t", "1"]
    out = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=300, env=subprocess_env(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    div = next(e for e in lines if e["event"] == "divergence")
    # independently: each variant's single run on the test engine, then the differences
    singles = []
    for variant in load_variants(path):
        rendered = variant.rendered(None)
        request = GenerationRequest(prompt=rendered.text, sampler=SamplerParams(greedy=True), max_tokens=3,
                                    add_special=rendered.add_special)
        singles.append(collect(engine.stream(request))[1])
    expected = [g.delta for g in confidence_gaps(singles[1], singles[0])]
    assert expected, "the two variants should start with the same token for this lesson"
    assert len(div["logprob_deltas"]) == len(expected)
    assert all(abs(a - b) < 1e-4 for a, b in zip(div["logprob_deltas"], expected))
    text = subprocess.run(base, capture_output=True, text=True, timeout=300, env=subprocess_env(tmp_path)).stdout
    assert "mean logprob" in text and "ppl" in text and "shared tokens" in text
