"""Hostile and damaged session files, and damaged runs being saved.

The loader either gives a session that replay, the summary and ``open --json`` then handle, or a
SessionFileError naming the file; never another exception, never a write to the file. The writer
stores whatever a run produced (NaN from a damaged model, absurd ids or times from a broken
server, a 50 MB token) in a file the reader accepts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import playground_cmd, subprocess_env
from playground import jsonlines
from playground.errors import SessionFileError
from playground.events import Alternative, DoneEvent, RawDistribution, StartEvent, TokenEvent
from playground.params import SamplerParams
from playground.sampling import reshape
from playground.sessions import codec, limits
from playground.sessions.record import record
from playground.sessions.replay import MAX_WAIT_S, replay, timeline
from playground.sessions.schema import Lane, Session, TokenRecord
from playground.sessions.store import STALE_TEMP_S, clean_stale_temps, dumps, load, parse, prepare, save, write
from playground.sessions.summary import session_summary
from session_strategies import sessions

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def sample_session(n_tokens: int = 4) -> Session:
    from playground.sessions.schema import DistHead, Receipt

    tokens = tuple(
        TokenRecord(i=i, id=100 + i, text=f" w{i}", logprob=-0.5, p_sampled=0.7, t=0.01 * (i + 1), log_z=3.0,
                    top=(Alternative(100 + i, f" w{i}", -0.5), Alternative(7, " x", -1.25)),
                    dist=DistHead((100 + i, 7, 9), (-0.5, -1.25, -3.0)))
        for i in range(n_tokens)
    )
    receipt = Receipt(model_name="m.gguf", seed=7, prompt_text="hi", prompt_tokens=(1, 2), n_vocab=49152)
    return Session(created="2025-01-01T00:00:00Z", lanes=(Lane(receipt=receipt, tokens=tokens, finish_reason="length"),))


def use_everything(session: Session) -> None:
    """What replay, replay --json, open --summary, open --json and the distribution view do."""
    for item in replay(session, 0):
        jsonlines.dumps(item.event, lane=item.lane)
        event = item.event
        if isinstance(event, TokenEvent) and event.dist is not None and event.dist.ids.size:
            with np.errstate(all="ignore"):  # extreme but valid numbers may overflow: no crash is the point
                reshape(event.dist, SamplerParams(temperature=0.7, repeat_penalty=1.3), history=[1, 2])
    session_summary(session, source="x.json")
    jsonlines.dumps_obj(codec.encode(session))


def load_or_refuse(path: Path) -> Session | None:
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    try:
        session = load(path).session
    except SessionFileError as exc:
        assert str(path) in exc.message
        session = None
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # the file is never modified
    if session is not None:
        use_everything(session)
    return session


# --- the reader ----------------------------------------------------------------------------------
hostile_scalars = (
    st.none() | st.booleans()
    | st.integers() | st.sampled_from([2**31, 2**31 - 1, -2, -1, 2**63, -(2**63) - 1, 10**300])
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e300, -1e300, 3.2e7, 1e-300, -0.0])
    | st.text(st.characters(exclude_categories=()), max_size=6)  # lone surrogates included
)
hostile_json = st.recursive(hostile_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=10)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, prefix + (i,))


def deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


V0_FIXTURE = Path(__file__).resolve().parent / "data" / "session_v0.json"


@FUZZ
@given(st.data(), st.sampled_from(["current", "v0"]))
def test_any_value_replaced_anywhere(tmp_path, data, version):
    """Replace any value with hostile JSON (huge ints, surrogates, deep nesting, absurd times),
    in a current file or in an old one that is upgraded on load."""
    base = codec.encode(sample_session()) if version == "current" else json.loads(V0_FIXTURE.read_text())
    candidates = [p for p in paths_of(base) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(candidates))
        value = data.draw(hostile_json | st.builds(deep, st.integers(1, 3000)))
        try:
            parent = base
            for key in where[:-1]:
                parent = parent[key]
            parent[where[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit replaced what this path went through
    path = tmp_path / "edited.json"
    try:
        text = json.dumps(base)
    except RecursionError:
        return  # the generator nested deeper than json.dumps can write
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_or_refuse(path)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(tmp_path, data):
    path = tmp_path / "random.json"
    path.write_bytes(data)
    load_or_refuse(path)


def test_every_truncation_is_refused(tmp_path):
    data = dumps(sample_session(2)).encode()
    path = tmp_path / "cut.json"
    for cut in range(len(data.rstrip())):
        path.write_bytes(data[:cut])
        assert load_or_refuse(path) is None, cut


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, "1" * 5000]
)
def test_non_finite_and_huge_numbers_in_a_file(tmp_path, literal):
    text = dumps(sample_session()).replace('"logprob": -0.5', f'"logprob": {literal}', 1)
    assert literal in text
    path = tmp_path / "n.json"
    path.write_text(text)
    assert load_or_refuse(path) is None


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda d: d["lanes"][0]["tokens"][1].update(id=2**31), "lanes[0].tokens[1].id"),
        (lambda d: d["lanes"][0]["tokens"][1].update(id=-7), "lanes[0].tokens[1].id"),
        (lambda d: d["lanes"][0]["tokens"][1]["top"][0].__setitem__(0, 2**40), "lanes[0].tokens[1].top[0][0]"),
        (lambda d: d["lanes"][0]["tokens"][1]["dist"]["ids"].__setitem__(1, 2**32), "lanes[0].tokens[1].dist.ids[1]"),
        (lambda d: d["lanes"][0]["receipt"].update(prompt_tokens=[1, 2**33]), "lanes[0].receipt.prompt_tokens"),
        (lambda d: d["lanes"][0]["receipt"].update(n_vocab=10**30), "lanes[0].receipt.n_vocab"),
        (lambda d: d["lanes"][0]["receipt"].update(n_ctx=2**40), "lanes[0].receipt.n_ctx"),
        (lambda d: d["lanes"][0]["tokens"][3].update(t=1e300), "lanes[0].tokens[3].t"),
        (lambda d: d["lanes"][0]["tokens"][3].update(t=366 * 86400.0), "lanes[0].tokens[3].t"),
        (lambda d: d["lanes"][0].update(offset_s=366 * 86400.0), "lanes[0].offset_s"),
        (lambda d: d["lanes"][0].update(metrics={"elapsed_s": 1e300}), "lanes[0].metrics.elapsed_s"),
        (lambda d: d["lanes"][0].update(metrics={"ttft_s": -1.0}), "lanes[0].metrics.ttft_s"),
        (lambda d: d["lanes"][0]["tokens"][0].update(log_z=1e300), "lanes[0].tokens[0].log_z"),
        (lambda d: d["lanes"][0]["tokens"][0].update(logprob=-1e300), "lanes[0].tokens[0].logprob"),
        (lambda d: d["lanes"][0]["tokens"][0].update(logprob=-(10**400)), "lanes[0].tokens[0].logprob"),
        (lambda d: d["lanes"][0]["tokens"][0].update(top=[[1, "a", -1.0]] * 101), "lanes[0].tokens[0].top"),
        (lambda d: d["lanes"][0]["tokens"][0].update(top=[[[[1]]]]), "lanes[0].tokens[0].top[0]"),
        (lambda d: d["lanes"][0]["tokens"][0].update(n_candidates=-1), "lanes[0].tokens[0].n_candidates"),
        (lambda d: d["lanes"][0]["sampler"].update(top_k=2**40), "lanes[0].sampler"),
        (lambda d: d["lanes"][0]["request"].update(max_tokens=2**40), "lanes[0].request.max_tokens"),
        (lambda d: d["lanes"][0].update(tokens={"0": {}}), "lanes[0].tokens: expected an array"),
        (lambda d: d.update(lanes=[[d["lanes"][0]]]), "lanes[0]: expected an object"),
    ],
)
def test_impossible_values_are_named(tmp_path, edit, needle):
    data = codec.encode(sample_session())
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SessionFileError) as info:
        load(path)
    assert str(path) in info.value.message and needle in info.value.message


def test_surrogates_and_controls_in_a_file_replay_and_summarise_through_the_cli(tmp_path):
    session = dataclasses.replace(sample_session(), title="half \ud800 and \x1b]0;title\x07")
    lane = session.lanes[0]
    tokens = (dataclasses.replace(lane.tokens[0], text="\udfff\x1b[2J"), *lane.tokens[1:])
    session = dataclasses.replace(session, lanes=(dataclasses.replace(lane, tokens=tokens),))
    path = save(session, tmp_path / "s.json")
    assert load(path).session == session
    for args in (["replay", str(path), "--print", "--speed", "0"], ["replay", str(path), "--json", "--speed", "0"],
                 ["open", str(path), "--summary"], ["open", str(path), "--json"]):
        proc = subprocess.run(playground_cmd() + args, capture_output=True, timeout=120, env=subprocess_env(tmp_path))
        assert proc.returncode == 0, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr and b"\x1b" not in proc.stdout


# --- replay waits ---------------------------------------------------------------------------------
def gap_session(gap: float) -> Session:
    lane = sample_session().lanes[0]
    tokens = tuple(dataclasses.replace(t, t=t.t + (gap if i >= 2 else 0.0)) for i, t in enumerate(lane.tokens))
    return Session(lanes=(dataclasses.replace(lane, tokens=tokens),))


@pytest.mark.parametrize("speed", [1.0, 4.0, 1e-3, 1e-300])
def test_a_long_recorded_pause_is_cut_short_and_reported(speed):
    session = gap_session(6 * 86400.0)  # six days: a valid file, but nobody waits that long
    now = [0.0]
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    items = list(replay(session, speed, sleep=sleep, clock=lambda: now[0]))
    assert len(items) == len(timeline(session))
    assert waits and max(waits) <= MAX_WAIT_S and all(math.isfinite(w) for w in waits)
    skipped = [item for item in items if item.skipped_s > 0]
    assert skipped and all(math.isfinite(i.skipped_s) for i in items)
    if speed >= 1.0:  # the pause itself is skipped, the tokens around it keep their spacing
        assert skipped[0].event.i == 2 and skipped[0].skipped_s == pytest.approx(6 * 86400.0 - MAX_WAIT_S * speed)
        assert sum(waits) == pytest.approx((session.lanes[0].tokens[-1].t - skipped[0].skipped_s) / speed)


def test_cli_replay_says_it_skipped_a_pause(tmp_path):
    path = save(gap_session(7.0 + MAX_WAIT_S), tmp_path / "gap.json")
    t0 = time.monotonic()
    proc = subprocess.run(playground_cmd() + ["replay", str(path), "--print"], capture_output=True, timeout=120,
                          env=subprocess_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 7.0 + MAX_WAIT_S
    assert b"skipped 7.0 s" in proc.stderr


# --- the writer -----------------------------------------------------------------------------------
wild_floats = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 0.5, -0.0])
wild_ids = st.integers(-(2**40), 2**40) | st.sampled_from([-1, 0, 2**31 - 1, 2**31])


@st.composite
def damaged_runs(draw: st.DrawFn) -> list:
    start = StartEvent(model={"name": "m.gguf", "sha256": "ab" * 32}, prompt="Hi", prompt_tokens=(1, 2),
                       params={**SamplerParams().to_dict(), "seed": 3, "max_tokens": 9, "stop": [], "top_n": 2})
    events: list = [start]
    for i in range(draw(st.integers(0, 5))):
        n = draw(st.integers(0, 3))
        ids = np.asarray([draw(st.integers(-1, 2**31 - 1)) for _ in range(n)], dtype=np.int64)
        dist = draw(st.none() | st.just(RawDistribution(ids, np.asarray([draw(wild_floats) for _ in range(n)]),
                                                        49152, draw(wild_floats))))
        events.append(TokenEvent(
            i=draw(st.sampled_from([i, i + 3])), id=draw(wild_ids),
            text=draw(st.text(st.characters(exclude_categories=()), max_size=4)),
            logprob=draw(st.none() | wild_floats), p_sampled=draw(st.none() | wild_floats),
            top=tuple(Alternative(draw(wild_ids), "a", draw(wild_floats)) for _ in range(draw(st.integers(0, 3)))),
            t=draw(wild_floats), n_candidates=draw(st.none() | wild_ids), entropy=draw(st.none() | wild_floats),
            dist=dist,
        ))
    events.append(DoneEvent("length", len(events) - 1, draw(st.none() | wild_floats), draw(st.none() | wild_floats),
                            draw(st.none() | wild_floats)))
    return events


@FUZZ
@given(damaged_runs())
def test_a_damaged_run_is_saved_and_loads_again(tmp_path, events):
    """NaN, infinities, ids past int32, times going backwards: saved, marked, read back."""
    session = record(events, keep_dist=8)
    saved = write(session, tmp_path / "run.json")
    loaded = load(saved.path).session
    assert dumps(loaded).encode() == saved.path.read_bytes()  # what was written is what loads
    tokens = loaded.lanes[0].tokens
    assert len(tokens) == len(events) - 2  # every token is kept
    for tok, event in zip(tokens, events[1:-1]):
        assert tok.text == event.text
        if event.logprob is not None and math.isnan(event.logprob):
            assert tok.logprob is None and "logprob" in tok.bad_values
        if event.p_sampled is not None and not math.isfinite(event.p_sampled):
            assert tok.p_sampled is None and "p_sampled" in tok.bad_values
        if not math.isfinite(event.t):
            assert "t" in tok.bad_values
        if not limits.MIN_TOKEN_ID <= event.id <= limits.MAX_TOKEN_ID:
            assert tok.id == -1 and "id" in tok.bad_values
    if any(t.bad_values for t in tokens):
        assert any("bad_values" in note for note in saved.trimmed)
    use_everything(loaded)


@FUZZ
@given(sessions())
def test_valid_sessions_are_written_unchanged(session):
    """The writer changes nothing in a session that is already within the limits."""
    prepared = prepare(session)
    assert prepared.session == session and prepared.trimmed == session.trimmed  # nothing new trimmed
    assert parse(prepared.data).session == session


def test_nan_logprob_is_null_in_the_file_and_none_when_read(tmp_path):
    tok = TokenRecord(i=0, id=5, text=" x", logprob=math.nan, p_sampled=0.5, t=0.1,
                      top=(Alternative(5, " x", math.nan), Alternative(6, " y", -1.0)), entropy=math.inf)
    path = save(Session(lanes=(Lane(tokens=(tok,)),)), tmp_path / "nan.json")
    raw = json.loads(path.read_text())["lanes"][0]["tokens"][0]
    assert raw.get("logprob") is None  # null (absent: None is the default and defaults are omitted)
    assert raw["bad_values"] == ["logprob", "top", "entropy"] and raw["top"] == [[6, " y", -1.0]]
    back = load(path).session.lanes[0].tokens[0]
    assert back.logprob is None and back.entropy is None and back.text == " x" and back.p_sampled == 0.5


def test_a_50_mb_token_is_cut_and_the_file_loads(tmp_path):
    big = "x" * (50 * 1024 * 1024)
    lane = sample_session().lanes[0]
    tokens = (*lane.tokens[:2], dataclasses.replace(lane.tokens[2], text=big), *lane.tokens[3:])
    session = Session(lanes=(dataclasses.replace(lane, tokens=tokens),))
    del big
    saved = write(session, tmp_path / "big.json")
    assert saved.path.stat().st_size <= limits.MAX_SESSION_BYTES
    loaded = load(saved.path).session
    tok = loaded.lanes[0].tokens[2]
    assert len(tok.text) == limits.MAX_TEXT_CHARS and tok.text.endswith("[cut]") and "text" in tok.bad_values
    assert [t.text for t in loaded.lanes[0].tokens[3:]] == [t.text for t in lane.tokens[3:]]
    assert any("tokens" in note for note in loaded.trimmed)


def test_a_too_large_session_drops_distributions_then_alternatives():
    session = sample_session(200)
    full = len(prepare(session).data)
    without_dist = len(prepare(dataclasses.replace(session, lanes=tuple(
        dataclasses.replace(lane, tokens=tuple(dataclasses.replace(t, dist=None) for t in lane.tokens))
        for lane in session.lanes))).data)
    p = prepare(session, max_bytes=without_dist + 500)  # the notes make it a little longer
    assert len(p.data) <= without_dist + 500 < full
    assert all(t.dist is None and t.top for t in p.session.lanes[0].tokens)
    assert len(p.trimmed) == 1 and "dist" in p.trimmed[0]
    q = prepare(session, max_bytes=without_dist - 1)
    assert all(t.dist is None and not t.top for t in q.session.lanes[0].tokens)
    assert [t.text for t in q.session.lanes[0].tokens] == [t.text for t in session.lanes[0].tokens]
    assert parse(q.data).session == q.session
    with pytest.raises(SessionFileError, match="even without"):
        prepare(session, "x.json", max_bytes=1000)


def test_summary_says_what_was_trimmed(tmp_path):
    tok = TokenRecord(i=0, id=5, text=" x", logprob=math.nan, t=0.1)
    path = save(Session(lanes=(Lane(tokens=(tok,)),)), tmp_path / "s.json")
    text = session_summary(load(path).session)
    assert "1 token(s) had NaN" in text and "trimmed when saved" in text


# --- stale temporary files ------------------------------------------------------------------------
def test_stale_temp_files_are_cleaned_on_the_next_save(tmp_path):
    old = time.time() - STALE_TEMP_S - 5
    stale = tmp_path / ".run.json.abcd1234.tmp"
    stale.write_text('{\n  "schema_version": 1,\n  "lan')  # a save killed mid-write
    empty = tmp_path / ".other.json.zz_9zz99.tmp"
    empty.write_bytes(b"")
    fresh = tmp_path / ".run.json.fresh123.tmp"  # a save running right now in another process
    fresh.write_text("{")
    not_ours = tmp_path / ".notes.txt.abcdefgh.tmp"
    not_ours.write_text("my own notes")
    other_shape = tmp_path / ".cache.tmp"
    other_shape.write_text("{")
    for p in (stale, empty, not_ours, other_shape):
        os.utime(p, (old, old))
    save(sample_session(), tmp_path / "run.json")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([".cache.tmp", ".notes.txt.abcdefgh.tmp", ".run.json.fresh123.tmp", "run.json"])
    os.utime(fresh, (old, old))
    assert clean_stale_temps(tmp_path) == [fresh]


def test_history_directory_is_cleaned_too(tmp_path):
    from playground.sessions import history

    folder = tmp_path / "hist"
    folder.mkdir()
    stale = folder / ".20250101-000000-000000-generate-x.json.a1b2c3d4.tmp"
    stale.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    history.keep(sample_session(), folder)
    assert not stale.exists() and len(history.history_files(folder)) == 1


# --- the TUI on the most extreme file the reader accepts ------------------------------------------
def extreme_session(n_lanes: int = 2) -> Session:
    """Every value at the edge of the limits (valid, so it loads), with hostile text."""
    from playground.sessions.schema import DistHead, Receipt

    lo, hi = limits.MIN_LOGPROB, limits.LOGPROB_SLACK
    top = tuple(Alternative(limits.MAX_TOKEN_ID - a, f"\x1b]52;c;{a}\x07\ud800", lo if a else hi)
                for a in range(limits.MAX_ALTERNATIVES))
    tokens = tuple(
        TokenRecord(i=i, id=(limits.MAX_TOKEN_ID, -1, 0)[i % 3], text=("\x1b[2J", "\udfff", "[bold]x[/]")[i % 3],
                    logprob=(lo, hi, None)[i % 3], p_sampled=(1.0, 0.0, None)[i % 3], top=top,
                    t=(limits.MAX_SECONDS if i == 5 else 0.0), n_candidates=limits.MAX_INT32,
                    entropy=1e300, log_z=(limits.MAX_ABS_LOG_Z, -limits.MAX_ABS_LOG_Z)[i % 2],
                    dist=DistHead((limits.MAX_TOKEN_ID, 0, -1), (hi, -1.0, lo)), bad_values=("logprob",))
        for i in range(6)
    )
    receipt = Receipt(model_name="\x1b]0;t\x07", n_vocab=limits.MAX_INT32, n_ctx=limits.MAX_INT32,
                      prompt_text="\ud800", prompt_tokens=(limits.MAX_TOKEN_ID,))
    lane = Lane(label="[red]lane", receipt=receipt, tokens=tokens, offset_s=limits.MAX_SECONDS,
                finish_reason="length")
    return Session(title="\x1b[2J", lanes=(lane,) * n_lanes, trimmed=("[/]",))


def test_the_extreme_session_round_trips_and_everything_handles_it(tmp_path):
    session = extreme_session()
    path = save(session, tmp_path / "x.json")
    assert load(path).session == session
    use_everything(load(path).session)


async def test_the_tui_opens_and_replays_the_extreme_session(engine, tmp_path):
    from playground.ui.app import make_app
    from playground.ui.settings import AppSettings
    from tests.ui_harness import until

    path = save(extreme_session(1), tmp_path / "x.json")
    app = make_app(AppSettings(engine=engine, session=load(path), replay_speed=0.0))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.record.source == "replay" and screen.record.finished, what="the replay")
        assert len(screen.record.tokens) == 6
        await pilot.press("home", "right", "right", "right")
        await pilot.pause()
        assert app.return_code is None  # still running: nothing crashed


async def test_the_compare_screen_opens_the_extreme_session(engine, tmp_path):
    from playground.ui.app import make_app
    from playground.ui.settings import AppSettings

    path = save(extreme_session(3), tmp_path / "x.json")
    app = make_app(AppSettings(engine=engine, session=load(path), replay_speed=0.0))
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(10):
            await pilot.pause(0.05)
        assert type(app.screen).__name__ == "CompareScreen" and app.return_code is None
