"""The compare layer: lane specs, extractors, voting, divergence, and ``playground compare`` end to end."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env
from helpers import CHAT
from playground.compare.divergence import divergences, first_divergence
from playground.compare.extract import json_field_extractor, last_number, make_extractor, regex_extractor
from playground.compare.lane_spec import format_lane_spec, parse_lane_spec
from playground.compare.vote import tally
from playground.errors import InvalidParameterError
from playground.events import TokenEvent
from playground.params import SamplerParams


def run_cli(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(playground_cmd() + ["compare", *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(tmp_path))


# --- lane specs ---------------------------------------------------------------------------------

def test_lane_spec_overrides_the_base():
    base = SamplerParams(temperature=0.7, top_k=20, seed=9)
    lane = parse_lane_spec("temp=1.0, top-k=40,seed=3,min_p=0.1,top_p=0.9,repeat_penalty=1.2,repeat_last_n=32", base)
    assert lane == base.replace(temperature=1.0, top_k=40, seed=3, min_p=0.1, top_p=0.9, repeat_penalty=1.2, repeat_last_n=32)
    assert parse_lane_spec("", base) == base
    assert parse_lane_spec("greedy", base).is_greedy
    assert not parse_lane_spec("greedy=false", base).greedy
    assert parse_lane_spec("temp=0", base).is_greedy


@pytest.mark.parametrize(
    "spec, needle",
    [("temperature=hot", "number"), ("top_k=1.5", "integer"), ("warmth=2", "unknown"), ("temp=1,temp=2", "twice"),
     ("top_p=0", "top-p"), ("seed", "needs a value"), ("greedy=maybe", "true or false")],
)
def test_bad_lane_spec(spec, needle):
    with pytest.raises(InvalidParameterError, match=needle):
        parse_lane_spec(spec)


def test_format_lane_spec_round_trips():
    for spec in ("temp=1,top_k=40,seed=3", "temp=0.7,top_k=40,top_p=0.9,min_p=0.05,repeat_penalty=1.3,seed=1"):
        params = parse_lane_spec(spec)
        assert parse_lane_spec(format_lane_spec(params)) == params
    assert format_lane_spec(parse_lane_spec("temp=0")) == "greedy"


# --- extractors and the vote --------------------------------------------------------------------

def test_regex_extractor_group_or_whole_match():
    assert regex_extractor(r"answer is (\w+)")("so the answer is B, not C") == "B"
    assert regex_extractor(r"[A-D]\)")("pick C) then D)") == "C)"
    assert regex_extractor(r"answer: (\d+)")("no answer here") is None
    with pytest.raises(InvalidParameterError):
        regex_extractor("(unclosed")


@pytest.mark.parametrize(
    "text, expected",
    [("17 * 23 = 391.", "391"), ("x2 is not, but -3 is", "-3"), ("total: 1,234.50", "1234.5"),
     ("4.0 and then 4", "4"), ("no digits", None), ("v2", None)],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_json_field_extractor():
    extract = json_field_extractor("result.value")
    text = 'Thinking {not json} then {"result": {"value": 42}, "x": 1} and {"result": {"value": 7}}'
    assert extract(text) == "42"
    assert json_field_extractor("name")('```json\n{"name": "Ada"}\n```') == "Ada"
    assert json_field_extractor("items.1")('{"items": ["a", "b"]}') == "b"
    assert json_field_extractor("missing")('{"a": 1}') is None
    with pytest.raises(InvalidParameterError):
        json_field_extractor("a..b")


def test_only_one_extractor():
    with pytest.raises(InvalidParameterError):
        make_extractor(regex="x", last_num=True)
    assert make_extractor()[1]("  hi \n") == "hi"


def test_tally_counts_majority_agreement_and_ties():
    answers = ["7", None, "5", "7", "5", "7", None]
    vote = tally(answers)
    assert vote.answers == dict(Counter(a for a in answers if a is not None).most_common())
    assert vote.majority == "7" and vote.agreement == pytest.approx(3 / 7)
    assert vote.no_answer == 2 and vote.n_samples == 7 and vote.tied == ()
    tie = tally(["b", "a", "a", "b"])
    assert tie.majority == "b" and tie.tied == ("b", "a") and tie.agreement == 0.5
    empty = tally([None, None])
    assert empty.majority is None and empty.agreement == 0.0 and empty.answers == {}
    assert empty.to_dict()["event"] == "vote"


# --- divergence (pure: ids built here) ------------------------------------------------------------

def _tokens(ids: list[int]) -> list[TokenEvent]:
    return [TokenEvent(i=k, id=t, text=f"<{t}>", logprob=-0.1 * (t % 7), p_sampled=0.5, top=(), t=0.0) for k, t in enumerate(ids)]


def test_first_divergence_cases():
    ref = _tokens([1, 2, 3, 4])
    other = _tokens([1, 2, 9, 4])
    div = first_divergence(other, ref, lane=2)
    assert (div.lane, div.reference, div.index, div.token.id, div.reference_token.id) == (2, 0, 2, 9, 3)
    assert (div.token.logprob, div.reference_token.logprob) == (other[2].logprob, ref[2].logprob)
    assert first_divergence(_tokens([1, 2, 3, 4]), ref, lane=1).index is None
    prefix = first_divergence(_tokens([1, 2]), ref, lane=1)
    assert prefix.index == 2 and prefix.token is None and prefix.reference_token.id == 3
    assert first_divergence(_tokens([5]), ref, lane=1).index == 0
    assert [d.lane for d in divergences([ref, _tokens([1]), _tokens([1, 2, 3, 4])])] == [1, 2]


# --- the command, end to end ------------------------------------------------------------------------

def _lines(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _lane_texts(lines: list[dict], n: int) -> list[str]:
    texts = ["" for _ in range(n)]
    for obj in lines:
        if obj["event"] == "token":
            texts[obj["lane"]] += obj["text"]
        elif obj["event"] == "done":
            texts[obj["lane"]] += obj.get("tail", "")
    return texts


def test_headless_lanes_json_shape(tmp_path):
    specs = ["temp=0", "temp=1.0,top_k=40,seed=3", "temp=1.3,top_p=0.9,min_p=0,seed=11"]
    args = [CHAT.format("Name three fruits."), "-n", "12", "--top-n", "2", "--json"]
    for spec in specs:
        args += ["--lane", spec]
    lines = _lines(run_cli(args, tmp_path))
    kinds = [obj["event"] for obj in lines]
    starts = [obj for obj in lines if obj["event"] == "start"]
    assert kinds[: len(specs)] == ["start"] * len(specs)  # every lane's settings come first
    assert [s["lane"] for s in starts] == [0, 1, 2]
    assert starts[0]["params"]["temperature"] == 0.0
    assert (starts[1]["params"]["temperature"], starts[1]["params"]["top_k"], starts[1]["params"]["seed"]) == (1.0, 40, 3)
    assert (starts[2]["params"]["top_p"], starts[2]["params"]["min_p"], starts[2]["params"]["seed"]) == (0.9, 0.0, 11)
    assert all(s["prompt_tokens"] == starts[0]["prompt_tokens"] for s in starts)
    tokens = [obj for obj in lines if obj["event"] == "token"]
    dones = {obj["lane"]: obj for obj in lines if obj["event"] == "done"}
    assert sorted(dones) == [0, 1, 2]
    for lane in range(3):
        mine = [t for t in tokens if t["lane"] == lane]
        assert [t["i"] for t in mine] == list(range(len(mine))) == list(range(dones[lane]["n_tokens"]))
        assert all(len(t["top"]) == 2 and t["logprob"] <= 0 for t in mine)
        assert dones[lane]["seed"] == starts[lane]["params"]["seed"]
    assert all(t["id"] == t["top"][0]["id"] for t in tokens if t["lane"] == 0)  # greedy lane
    # after every lane ended: the batch summary, then one divergence per lane after lane 0
    batch_at = kinds.index("batch")
    assert batch_at > max(i for i, k in enumerate(kinds) if k in ("token", "done"))
    batch = lines[batch_at]
    assert batch["n_lanes"] == 3 and batch["n_tokens"] == len(tokens)
    assert batch["prompt_tokens_evaluated"] == len(starts[0]["prompt_tokens"])  # once, not three times
    divs = lines[batch_at + 1 :]
    assert [d["event"] for d in divs] == ["divergence", "divergence"] and [d["lane"] for d in divs] == [1, 2]
    ids = [[t["id"] for t in tokens if t["lane"] == lane] for lane in range(3)]
    for d in divs:
        a, ref = ids[d["lane"]], ids[0]
        expected = next((i for i in range(min(len(a), len(ref))) if a[i] != ref[i]), None)
        if expected is None and len(a) != len(ref):
            expected = min(len(a), len(ref))
        assert d["index"] == expected and d["reference"] == 0
        if expected is not None and expected < len(a):
            assert d["token"]["id"] == a[expected]
            assert d["token"]["prob"] == pytest.approx(2.718281828 ** d["token"]["logprob"], rel=1e-5)


def test_headless_vote_matches_independent_extraction(tmp_path):
    n = 6
    prompt = CHAT.format("Pick a random number between 1 and 5. Reply with just the number.")
    lines = _lines(run_cli([prompt, "--samples", str(n), "--temp", "1.2", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                            "-s", "40", "-n", "8", "--top-n", "0", "--extract", r"(\d)", "--json"], tmp_path))
    assert lines[-1]["event"] == "vote"
    assert [obj["params"]["seed"] for obj in lines if obj["event"] == "start"] == list(range(40, 40 + n))
    # the answers, extracted here from the streamed text with re itself
    answers = []
    for text in _lane_texts(lines, n):
        match = re.search(r"(\d)", text)
        answers.append(match.group(1) if match else None)
    counts = Counter(a for a in answers if a is not None)
    vote = lines[-1]
    assert vote["by_lane"] == answers
    assert vote["answers"] == dict(counts)
    assert vote["n_samples"] == n and vote["no_answer"] == answers.count(None)
    top = max(counts.values()) if counts else 0
    assert vote["agreement"] == pytest.approx(top / n, abs=1e-6)
    assert vote["majority"] in [a for a, c in counts.items() if c == top] or (not counts and vote["majority"] is None)
    assert not any(obj["event"] == "divergence" for obj in lines)


def test_text_layout(tmp_path):
    proc = run_cli([CHAT.format("Say hello."), "-n", "6", "--lane", "temp=0", "--lane", "temp=1,seed=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "── lane 0 · greedy" in proc.stdout and "── lane 1 · temp=1" in proc.stdout
    assert "2 lanes: prompt" in proc.stdout and "lane 1" in proc.stdout.splitlines()[-1]
    proc = run_cli([CHAT.format("What is 2+2?"), "-n", "6", "--samples", "3", "-s", "1", "--extract-last-number"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "majority:" in proc.stdout and "agreement" in proc.stdout and proc.stdout.count("\n#") == 2


@pytest.mark.parametrize(
    "args, needle",
    [(["hi", "--lane", "warmth=1"], "unknown lane setting"),
     (["hi", "--lane", "temp=1", "--extract", "x"], "need --samples"),
     (["hi", "--samples", "33"], "between 1 and 32"),
     (["hi"], "nothing to compare"),
     (["hi", "--samples", "2", "--lane", "temp=1", "--lane", "temp=0"], "at most one --lane"),
     (["hi", "--samples", "2", "--extract", "(x"], "regular expression")],
)
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
