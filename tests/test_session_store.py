"""Session files: round trips, a strict loader that never crashes nor writes, atomic saves."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.errors import SessionFileError
from playground.events import Alternative
from playground.model_file import EMBEDDED_SHA256
from playground.sessions import codec
from playground.sessions.schema import SCHEMA_VERSION, BackendSpec, Lane, LaneError, Receipt, Session, TokenRecord
from playground.sessions.store import dumps, load, parse, save
from session_strategies import sessions

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def sample_session(n_tokens: int = 3) -> Session:
    tokens = tuple(
        TokenRecord(i=i, id=100 + i, text=f" w{i}", logprob=-0.5, p_sampled=0.7,
                    top=(Alternative(100 + i, f" w{i}", -0.5), Alternative(7, " x", -1.25)), t=0.01 * (i + 1))
        for i in range(n_tokens)
    )
    lane = Lane(receipt=Receipt(model_name="m.gguf", model_sha256=EMBEDDED_SHA256, seed=7, prompt_text="hi",
                                prompt_tokens=(1, 2)), tokens=tokens, finish_reason="length")
    return Session(created="2025-01-01T00:00:00Z", lanes=(lane,))


# --- round trips ------------------------------------------------------------------------------------
@FAST
@given(sessions())
def test_round_trip(session):
    text = dumps(session)
    loaded = parse(text.encode("utf-8"))
    assert loaded.session == session
    assert loaded.file_version == SCHEMA_VERSION
    assert dumps(loaded.session) == text  # stable: writing again gives the same bytes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sessions())
def test_round_trip_through_a_file(tmp_path, session):
    path = save(session, tmp_path / "s.json")
    assert load(path).session == session
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind


def test_file_shape_is_diffable():
    text = dumps(sample_session())
    data = json.loads(text)
    assert list(data) == ["schema_version", "created", "example_format", "template_mode", "lanes"]
    lane = data["lanes"][0]
    assert list(lane)[:4] == ["sampler", "request", "receipt", "tokens"]
    # sampler settings are written in full (a code default may change; a recording must not)
    assert set(lane["sampler"]) == {f.name for f in dataclasses.fields(lane_sampler_type())}
    # one token per line, alternatives as [id, text, logprob]
    token_lines = [line for line in text.splitlines() if line.strip().startswith('{"i":')]
    assert len(token_lines) == 3
    assert json.loads(token_lines[0].rstrip(","))["top"][1] == [7, " x", -1.25]
    assert "metrics" not in lane and "label" not in lane and "backend" not in lane  # defaults omitted


def lane_sampler_type():
    from playground.params import SamplerParams

    return SamplerParams


def test_lone_surrogate_falls_back_to_escapes():
    session = dataclasses.replace(sample_session(), title="bad \ud800 half")
    text = dumps(session)
    text.encode("utf-8")
    assert parse(text.encode()).session.title == "bad \ud800 half"
    korean = dataclasses.replace(sample_session(), title="한국어")
    assert "한국어" in dumps(korean)  # readable when possible


# --- the loader never crashes, never writes ---------------------------------------------------------
def assert_rejected_unchanged(path: Path, needle: str | None = None) -> SessionFileError:
    before = snapshot(path)
    with pytest.raises(SessionFileError) as info:
        load(path)
    assert snapshot(path) == before
    assert str(path) in info.value.message
    if needle:
        assert needle in info.value.message
    return info.value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes(tmp_path, data):
    path = tmp_path / "random.json"
    path.write_bytes(data)
    before = snapshot(path)
    try:
        load(path)
    except SessionFileError as exc:
        assert str(path) in exc.message
    assert snapshot(path) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_truncated_files(tmp_path, data):
    text = dumps(sample_session()).encode()
    cut = data.draw(st.integers(0, len(text.rstrip()) - 1))
    path = tmp_path / "cut.json"
    path.write_bytes(text[:cut])
    assert_rejected_unchanged(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, prefix + (i,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_hand_edits_of_any_field(tmp_path, data):
    """Replace, delete or add a value anywhere: a session or a SessionFileError, nothing else."""
    base = codec.encode(sample_session())
    path_choice = data.draw(st.sampled_from([p for p in paths_of(base) if p]))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    parent = base
    for key in path_choice[:-1]:
        parent = parent[key]
    last = path_choice[-1]
    if action == "replace":
        parent[last] = data.draw(json_values)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=6))] = data.draw(json_values)
    else:
        parent.append(data.draw(json_values))
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(base))
    before = snapshot(path)
    try:
        load(path)
    except SessionFileError as exc:
        assert str(path) in exc.message
    assert snapshot(path) == before


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda d: d["lanes"][0]["tokens"][1].update(id="abc"), "lanes[0].tokens[1].id: expected an integer"),
        (lambda d: d["lanes"][0]["tokens"][1].update(i=5), "lanes[0].tokens[1].i"),
        (lambda d: d["lanes"][0].update(temprature=1), "lanes[0].temprature: unknown field"),
        (lambda d: d["lanes"][0]["sampler"].update(top_p=7.0), "lanes[0].sampler: top-p"),
        (lambda d: d["lanes"][0]["receipt"].update(model_sha256="xyz"), "model_sha256"),
        (lambda d: d["lanes"][0].update(backend={"kind": "openai", "api_key_env": "sk-live-123"}), "api_key_env"),
        (lambda d: d["lanes"][0].update(finish_reason="exploded"), "finish_reason: must be one of"),
        (lambda d: d.update(schema_version=99), "99 is newer"),
        (lambda d: d.update(schema_version="1"), "schema_version: expected an integer"),
        (lambda d: d.pop("schema_version"), "schema_version: missing"),
        (lambda d: d.update(schema_version=-3), "not a known version"),
    ],
)
def test_named_problems(tmp_path, edit, needle):
    data = codec.encode(sample_session())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    assert_rejected_unchanged(path, needle)


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty file"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema_version": 1, "created": NaN}', "not valid JSON"),
        (b'{"schema_version": 1, "created": "x"', "truncated"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"schema_version": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
    ids=["empty", "not-utf8", "array", "nan", "truncated", "deep", "huge-int"],
)
def test_corrupt_content(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert_rejected_unchanged(path, needle)


def test_huge_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 10)  # sparse: costs no disk
    t0 = time.perf_counter()
    error = assert_rejected_unchanged(path, "larger than 64 MiB")
    assert time.perf_counter() - t0 < 5
    small = tmp_path / "small.json"
    small.write_text(dumps(sample_session()))
    with pytest.raises(SessionFileError, match="larger than"):
        load(small, max_bytes=100)
    assert error.title == "Session file"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SessionFileError, match="no such file"):
        load(tmp_path / "nope.json")
    with pytest.raises(SessionFileError, match="directory"):
        load(tmp_path)


# --- older versions ---------------------------------------------------------------------------------
def test_v0_fixture_is_upgraded_in_memory_only():
    path = ROOT / "tests" / "data" / "session_v0.json"
    before = snapshot(path)
    loaded = load(path)
    assert snapshot(path) == before
    raw = json.loads(path.read_text())
    assert loaded.file_version == 0 and loaded.upgraded
    (lane,) = loaded.session.lanes
    assert lane.receipt.prompt_text == raw["prompt"]
    assert lane.receipt.prompt_tokens == tuple(raw["prompt_tokens"])
    assert lane.receipt.seed == raw["settings"]["seed"]
    assert lane.sampler.temperature == raw["settings"]["temperature"]
    assert lane.backend.model_path is None  # the embedded model, found again by its hash
    assert [t.id for t in lane.tokens] == [t["id"] for t in raw["tokens"]]
    assert [t.i for t in lane.tokens] == list(range(len(raw["tokens"])))
    assert lane.text == "".join(t["text"] for t in raw["tokens"])
    # and it writes as the current version
    assert json.loads(dumps(loaded.session))["schema_version"] == SCHEMA_VERSION


def test_broken_v0_file_is_a_session_error(tmp_path):
    raw = json.loads((ROOT / "tests" / "data" / "session_v0.json").read_text())
    raw["tokens"] = "oops"
    path = tmp_path / "v0.json"
    path.write_text(json.dumps(raw))
    assert_rejected_unchanged(path, "tokens: expected an array")


# --- atomic writes ----------------------------------------------------------------------------------
def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    """os.replace is the commit point: if it fails, the old file and nothing else is there."""
    path = save(sample_session(2), tmp_path / "s.json")
    before = snapshot(path)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SessionFileError, match="cannot write"):
        save(sample_session(5), path)
    assert snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_interrupt_during_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save(sample_session(2), tmp_path / "s.json")
    before = snapshot(path)

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save(sample_session(5), path)
    assert snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


KILL_CHILD = textwrap.dedent(
    """
    import os, stat, sys, time
    from playground.sessions.schema import Lane, Session, TokenRecord
    from playground.sessions.store import save
    real_fsync = os.fsync
    def slow_fsync(fd):  # widen the window between writing the temp file and renaming it
        if stat.S_ISREG(os.fstat(fd).st_mode):  # the temp file's fsync, not the directory's
            time.sleep(0.2)
        real_fsync(fd)
    os.fsync = slow_fsync
    def session(n):
        tokens = tuple(TokenRecord(i=i, id=i, text=f" w{i}", logprob=-0.5, t=0.01 * i) for i in range(n))
        return Session(lanes=(Lane(tokens=tokens),))
    versions = [session(400), session(900)]
    n = 0
    print("ready", flush=True)
    while True:
        save(versions[n % 2], sys.argv[1])
        n += 1
    """
)


def test_kill_during_save_never_leaves_a_broken_file(tmp_path):
    """SIGKILL a process that saves in a loop, at random moments: the file always loads whole."""
    target = tmp_path / "s.json"
    save(sample_session(400), target)
    rng = random.Random(1)
    seen_temp = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(target)],
                                 stdout=subprocess.PIPE, cwd=ROOT)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        session = load(target).session  # never half-written
        assert len(session.lanes[0].tokens) in (400, 900)
        temps = [p for p in tmp_path.iterdir() if p.name != "s.json"]
        seen_temp += bool(temps)
        for p in temps:
            p.unlink()
    assert seen_temp >= 1  # at least one kill landed mid-save (a temp file was being written)


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(SessionFileError, match="does not exist"):
        save(sample_session(), tmp_path / "no" / "s.json")


# --- secrets ----------------------------------------------------------------------------------------
def test_api_key_never_written(tmp_path, monkeypatch):
    secret = "sk-test-9f8e7d6c5b4a39281706"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    lane = Lane(backend=BackendSpec(kind="openai", model="m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_SERVER_KEY"))
    path = save(Session(lanes=(lane,)), tmp_path / "s.json")
    text = path.read_text()
    assert "MY_SERVER_KEY" in text and secret not in text
    # a key that slipped into free text (an echoed header in an error) is refused, nothing written
    leaky = dataclasses.replace(lane, error=LaneError("HTTP 401", f"Authorization: Bearer {secret} rejected"))
    with pytest.raises(SessionFileError, match="API key"):
        save(Session(lanes=(leaky,)), tmp_path / "leak.json")
    assert not (tmp_path / "leak.json").exists()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other-0123456789abcdef")
    with pytest.raises(SessionFileError, match="API key"):
        save(Session(title="key sk-other-0123456789abcdef"), tmp_path / "t.json")
