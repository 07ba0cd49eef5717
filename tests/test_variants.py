"""Prompt variants: a two-variant compare (zero-shot vs 3-shot) equals two single runs of those
variants, and the headless command reports each lane's variant and rendered prompt."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import playground_cmd, subprocess_env
from helpers import collect
from playground.compare.variant import lane_label, load_variants, prompt_diff
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest
from playground.prompt_builder import chat_template_of
from test_lanes import split_lanes

VARIANTS = """\
[[variant]]
name = "zero-shot"
instruction = "Classify the sentiment of the review as positive or negative."
input = "The battery died after two days."
temp = 0

[[variant]]
name = "3-shot"
instruction = "Classify the sentiment of the review as positive or negative."
input = "The battery died after two days."
examples = [{ input = "Broke the first time I used it.", output = "negative" },
            { input = "Works great, very happy.", output = "positive" },
            { input = "Arrived late and scratched.", output = "negative", enabled = true },
            { input = "Not shown.", output = "x", enabled = false }]
temp = 0.9
seed = 5
"""


@pytest.fixture
def variants_file(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(VARIANTS)
    return path


def numbers(tokens):
    return [(t.id, t.logprob, t.entropy, t.p_sampled) for t in tokens]


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_two_variant_compare_equals_two_single_runs(variants_file, template):
    variants = load_variants(variants_file, template)
    single = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    lanes_engine = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(2))
    runner = LaneRunner(lanes_engine)
    try:
        base = GenerationRequest("", max_tokens=16, top_n=3)
        requests = [v.request(base, chat_template_of(lanes_engine)) for v in variants]
        assert requests[0].prompt != requests[1].prompt and "Arrived late" in requests[1].prompt and "Not shown" not in requests[1].prompt
        lanes, batch = split_lanes(runner.stream(requests), 2)
        assert batch.n_prompts == 2
        for lane, request in zip(lanes, requests):
            _, tokens, end = collect(single.stream(request))
            assert numbers(lane.tokens) == numbers(tokens)  # ids and logprobs exactly
            assert lane.text == "".join(t.text for t in tokens) + end.tail
    finally:
        runner.close()
        lanes_engine.close()
        single.close()


def test_labels_and_diff(variants_file):
    zero, three = load_variants(variants_file)
    assert lane_label(zero, zero) == "same"
    assert lane_label(three, zero) == "3-shot, T=0.9, seed=5"
    diff = prompt_diff(zero.rendered(None).text, three.rendered(None).text)
    assert "+Input: Broke the first time I used it." in diff and "Not shown" not in diff


@pytest.mark.parametrize("text, needle", [
    ("[[variant]]\nname='a'\nwarmth=2", "'warmth' is not a variant field"),
    ("[[variant]]\nname='a'\n[[variant]]\nname='a'", "used twice"),
    ("[[variant]]\nname='a'\ntemp='hot'", "number"),
    ("[[variant]]\nname='a'\nturns=[{role='system', content='x'}]", "'turns'"),
    ("name='x'", "[[variant]] tables only"),
])
def test_bad_variants_files(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidParameterError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_variants(path)


def test_compare_variants_cli_json(variants_file, tmp_path):
    out = subprocess.run(playground_cmd() + ["compare", "--variants", str(variants_file), "-n", "6", "-t", "1", "--json"],
                         capture_output=True, text=True, timeout=300, env=subprocess_env(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    starts = [e for e in lines if e["event"] == "start"]
    assert [s["variant"] for s in starts] == ["zero-shot", "3-shot"] and [s["lane"] for s in starts] == [0, 1]
    expected = [v.rendered(None).text for v in load_variants(variants_file)]
    assert [s["prompt"] for s in starts] == expected
    assert all("lane" in e for e in lines if e["event"] in ("token", "done"))
    batch = next(e for e in lines if e["event"] == "batch")
    assert batch["n_prompts"] == 2
