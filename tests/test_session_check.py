"""``replay --check``: re-run each lane on the recorded model and compare, on the real embedded model."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env
from helpers import CHAT
from playground.engine_options import EngineChoice
from playground.events import TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.sessions.check import check_session, first_divergence
from playground.sessions.record import SessionRecorder
from playground.sessions.schema import BackendSpec, Session, TokenRecord
from playground.sessions.store import load, save

ROOT = Path(__file__).resolve().parent.parent
LANES = [SamplerParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, seed=42), SamplerParams(temperature=0.0)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A fresh two-lane recording (sampled and greedy), saved."""
    engine = EngineChoice(n_ctx=512, n_threads=1).load(reuse_prefix=False)
    rec = SessionRecorder(kind="compare")
    try:
        for k, sampler in enumerate(LANES):
            request = GenerationRequest(CHAT.format("Write one sentence about the sea."), sampler, max_tokens=16,
                                        add_special=False)
            rec.lane(k, request=request)
            for event in engine.stream(request, dist_size=request.top_n):
                rec.feed(event, k)
    finally:
        engine.close()
    return save(rec.session(), tmp_path_factory.mktemp("rec") / "two.json")


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(playground_cmd() + args, capture_output=True, text=True, timeout=120, env=subprocess_env(tmp_path))


def edit_lane(session: Session, k: int, **changes) -> Session:
    lanes = list(session.lanes)
    lanes[k] = dataclasses.replace(lanes[k], **changes)
    return dataclasses.replace(session, lanes=tuple(lanes))


def test_fresh_recording_is_identical(recorded):
    session = load(recorded).session
    report = check_session(session)
    assert report.exit_code == 0, report
    for lane, result in zip(session.lanes, report.lanes):
        assert result.status == "identical"
        assert result.n_recorded == result.n_rerun == len(lane.tokens) > 0
        assert result.max_logprob_delta is not None and result.max_logprob_delta < 1e-4


def test_hand_modified_token_diverges_there(recorded):
    session = load(recorded).session
    lane = session.lanes[0]
    j = 3
    original = lane.tokens[j]
    other = next(alt for alt in original.top if alt.id != original.id)
    tokens = list(lane.tokens)
    tokens[j] = dataclasses.replace(original, id=other.id, text=other.text, logprob=other.logprob)
    report = check_session(edit_lane(session, 0, tokens=tuple(tokens)))
    assert report.exit_code == 1
    first, second = report.lanes
    assert first.status == "diverged" and second.status == "identical"
    d = first.divergence
    assert d.index == j
    assert (d.recorded.id, d.recorded.text) == (other.id, other.text)
    assert d.rerun.id == original.id and d.rerun.text == original.text  # the run reproduces the real token
    assert d.rerun.logprob == pytest.approx(original.logprob, abs=1e-4)
    assert d.rerun.p_sampled == pytest.approx(original.p_sampled, abs=1e-5)


def test_cli_check_exit_codes(recorded, tmp_path):
    ok = run_cli(["replay", str(recorded), "--check"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "lane 0: identical" in ok.stdout and "lane 1: identical" in ok.stdout

    data = json.loads(recorded.read_text())
    token = data["lanes"][1]["tokens"][5]
    token["id"] = next(alt[0] for alt in token["top"] if alt[0] != token["id"])  # edit the file by hand
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    bad = run_cli(["replay", str(edited), "--check", "--json"], tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    assert report["exit_code"] == 1
    assert [lane["status"] for lane in report["lanes"]] == ["identical", "diverged"]
    divergence = report["lanes"][1]["divergence"]
    assert divergence["index"] == 5 and divergence["recorded"]["id"] == token["id"]
    assert divergence["rerun"]["id"] == json.loads(recorded.read_text())["lanes"][1]["tokens"][5]["id"]


def test_model_hash_mismatch_cannot_run(recorded, tmp_path):
    session = load(recorded).session
    wrong = edit_lane(session, 0, receipt=dataclasses.replace(session.lanes[0].receipt, model_sha256="0" * 64))
    report = check_session(wrong)
    assert report.exit_code == 2
    assert report.lanes[0].status == "cannot_run" and "model hash differs" in report.lanes[0].reason
    path = save(wrong, tmp_path / "wrong.json")
    proc = run_cli(["replay", str(path), "--check"], tmp_path)
    assert proc.returncode == 2 and "model hash differs" in proc.stdout and "Traceback" not in proc.stderr


def test_a_different_model_file_is_refused(recorded, tmp_path, embedded_path):
    """A real different file (one byte changed in the weights) is caught by its sha256."""
    copy = tmp_path / "changed.gguf"
    shutil.copyfile(embedded_path, copy)
    with copy.open("r+b") as handle:
        handle.seek(-100, 2)
        byte = handle.read(1)
        handle.seek(-100, 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    proc = run_cli(["replay", str(recorded), "--check", "--model", str(copy)], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model hash differs" in proc.stdout and str(copy) in proc.stdout


def test_interrupted_lane_is_checked_as_far_as_it_went(recorded):
    session = load(recorded).session
    lane = session.lanes[0]
    cut = edit_lane(session, 0, tokens=lane.tokens[:7], finish_reason="cancelled")
    result = check_session(cut).lanes[0]
    assert result.status == "identical" and result.n_recorded == result.n_rerun == 7


def test_remote_lane_cannot_run(recorded):
    session = load(recorded).session
    remote = edit_lane(session, 1, backend=BackendSpec(kind="openai", model="x", base_url="http://127.0.0.1:9/v1"))
    report = check_session(remote)
    assert report.exit_code == 2
    assert report.lanes[0].status == "identical" and report.lanes[1].status == "cannot_run"
    assert "remote" in report.lanes[1].reason


def test_first_divergence_on_lengths():
    a = [TokenRecord(i, 5 + i, "x", logprob=-0.1) for i in range(3)]
    b = [TokenEvent(i, 5 + i, "x", -0.1, 1.0, (), 0.0) for i in range(4)]
    d, delta = first_divergence(a, b, "stop", "length")
    assert d.index == 3 and d.recorded is None and d.recorded_end == "stop" and d.rerun.id == 8
    assert delta == 0.0
    assert first_divergence(a, b[:3], "stop", "stop") == (None, 0.0)


def test_upgraded_v0_session_passes_check():
    """The v0 fixture was recorded on the embedded model; upgraded, it must still reproduce."""
    loaded = load(ROOT / "tests" / "data" / "session_v0.json")
    assert loaded.upgraded
    assert check_session(loaded.session).exit_code == 0


def test_generate_save_open_sessions_replay(tmp_path):
    """The whole headless flow on a fresh run: save, history, open, replay, check."""
    path = tmp_path / "run.json"
    gen = run_cli(["generate", "--temp", "0.8", "--seed", "3", "-n", "16", "-c", "512", "-t", "1", "--save", str(path),
                   "Once upon a time"], tmp_path)
    assert gen.returncode == 0, gen.stderr
    session = load(path).session
    (lane,) = session.lanes
    assert lane.receipt.seed == 3 and lane.receipt.n_ctx == 512 and lane.tokens
    assert lane.tokens[0].log_z is not None and lane.receipt.n_vocab  # kept for the distribution view
    assert gen.stdout == lane.text + "\n"

    listed = run_cli(["sessions", "--json"], tmp_path)
    (entry,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["tokens"] == len(lane.tokens) and entry["prompt"] == "Once upon a time"
    assert load(entry["path"]).session.lanes[0].tokens == lane.tokens  # the history holds the same run

    opened = run_cli(["open", str(path)], tmp_path)
    assert opened.returncode == 0 and "lane 0: local SmolLM2" in opened.stdout and "seed=3" in opened.stdout

    replayed = run_cli(["replay", str(path), "--speed", "0"], tmp_path)
    assert replayed.returncode == 0 and replayed.stdout == gen.stdout
    lines = [json.loads(x) for x in run_cli(["replay", str(path), "--speed", "0", "--json"], tmp_path).stdout.splitlines()]
    assert [x["event"] for x in lines] == ["start"] + ["token"] * len(lane.tokens) + ["done"]
    assert [x["id"] for x in lines[1:-1]] == [t.id for t in lane.tokens]
    assert run_cli(["replay", str(path), "--check"], tmp_path).returncode == 0

    no_hist = run_cli(["generate", "-n", "2", "-t", "1", "-c", "256", "--no-history", "hi"], tmp_path)
    assert no_hist.returncode == 0
    assert len(run_cli(["sessions", "--json"], tmp_path).stdout.splitlines()) == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["open", "/nonexistent/s.json"], "no such file"),
        (["replay", "/nonexistent/s.json", "--check"], "no such file"),
        (["generate", "--save", "/nonexistent/dir/s.json", "hi"], "does not exist"),
    ],
)
def test_bad_files_one_line_exit_2(tmp_path, args, needle):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Session file" in lines[0]


def test_replay_bad_speed_and_corrupt_file(tmp_path):
    good = tmp_path / "s.json"
    save(Session(), good)
    proc = run_cli(["replay", str(good), "--speed", "-2"], tmp_path)
    assert proc.returncode == 2 and "speed" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "lanes": [')
    before = bad.read_bytes()
    proc = run_cli(["open", str(bad)], tmp_path)
    assert proc.returncode == 2 and "truncated" in proc.stderr and str(bad) in proc.stderr
    assert bad.read_bytes() == before


def test_a_recording_that_reused_a_prefix_checks_identical_without_a_note(tmp_path):
    """Recorded on an engine that reused whole prompt chunks of the run before: the cold re-run
    of the check reproduces it exactly, and there is no "reused a cached prefix" excuse."""
    engine = EngineChoice(n_ctx=1024, n_threads=1).load()
    rec = SessionRecorder(kind="generate")
    try:
        story = " ".join(f"Day {n}: the keeper lit the lamp and logged the wind." for n in range(30))
        first = GenerationRequest(CHAT.format(story + " Continue the log."), LANES[0], max_tokens=8, add_special=False)
        list(engine.stream(first))
        request = dataclasses.replace(first, prompt=CHAT.format(story + " Summarise the log."))
        rec.lane(0, request=request)
        for event in engine.stream(request, dist_size=request.top_n):
            rec.feed(event, 0)
    finally:
        engine.close()
    session = load(save(rec.session(), tmp_path / "reused.json")).session
    (lane,) = session.lanes
    assert lane.receipt.prefill_chunk is not None and lane.receipt.prefill_chunk > 0
    assert 0 < lane.metrics.prompt_tokens_evaluated < len(lane.receipt.prompt_tokens)
    (result,) = check_session(session).lanes
    assert result.status == "identical" and result.note == ""
    assert result.max_logprob_delta <= 5.0000001e-7  # the file keeps 6 decimals: equal up to that rounding
