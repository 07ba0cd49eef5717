"""``playground compare --save`` and the history: lanes and votes recorded, then replayed and checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import playground_cmd, subprocess_env
from playground.compare.lane_spec import parse_lane_spec
from playground.params import SamplerParams
from playground.sessions.store import load

PROMPT = "The three primary colours are"
LANES = ["temp=0", "temp=1.0,top_k=40,seed=3", "temp=0.8,top_p=0.9,min_p=0.05,seed=11"]


def run_cli(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(playground_cmd() + args, capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(tmp_path))


def history_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "playground" / "sessions").glob("*.json"))


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_compare_save_holds_every_lane_and_passes_check(tmp_path):
    path = tmp_path / "cmp.json"
    args = ["compare", PROMPT, "-n", "12", "-t", "1", "--top-n", "3", "--json", "--save", str(path)]
    for spec in LANES:
        args += ["--lane", spec]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = json_lines(proc.stdout)
    session = load(path).session
    assert session.kind == "compare" and len(session.lanes) == len(LANES)
    for k, (spec, lane) in enumerate(zip(LANES, session.lanes)):
        assert lane.sampler == parse_lane_spec(spec, SamplerParams())  # the lane's own settings
        streamed = [e for e in events if e["event"] == "token" and e["lane"] == k]
        assert [t.id for t in lane.tokens] == [e["id"] for e in streamed] and len(streamed) > 0
        assert [t.text for t in lane.tokens] == [e["text"] for e in streamed]
        assert [t.logprob for t in lane.tokens] == [e["logprob"] for e in streamed]
        start = next(e for e in events if e["event"] == "start" and e["lane"] == k)
        assert lane.receipt.seed == start["params"]["seed"]
        assert lane.receipt.prompt_tokens == tuple(start["prompt_tokens"])
        assert lane.finish_reason is not None and lane.tokens[0].top  # alternatives were kept
    assert len(history_files(tmp_path)) == 1  # kept in the history too

    check = run_cli(["replay", str(path), "--check", "--json"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert [lane["status"] for lane in report["lanes"]] == ["identical"] * len(LANES)


def test_vote_is_saved_with_its_extractor_and_checks(tmp_path):
    path = tmp_path / "vote.json"
    args = ["compare", "Question: 2 + 3 = ? Answer:", "--samples", "3", "--temp", "0.9", "--seed", "5", "-n", "8",
            "-t", "1", "--extract", r"(\d+)", "--json", "--save", str(path), "--no-history"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    vote = json_lines(proc.stdout)[-1]
    assert vote["event"] == "vote"
    session = load(path).session
    assert session.kind == "vote" and len(session.lanes) == 3
    assert session.vote is not None
    assert (session.vote.extractor, session.vote.pattern) == ("regex", r"(\d+)")
    assert list(session.vote.answers) == vote["by_lane"] and session.vote.majority == vote["majority"]
    assert [lane.receipt.seed for lane in session.lanes] == [5, 6, 7]
    assert history_files(tmp_path) == []  # --no-history
    check = run_cli(["replay", str(path), "--check"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_save_into_a_missing_directory_fails_before_running(tmp_path):
    proc = run_cli(["compare", "Hi", "--lane", "temp=0", "--save", str(tmp_path / "nope" / "x.json")], tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert proc.stdout == "" and history_files(tmp_path) == []
