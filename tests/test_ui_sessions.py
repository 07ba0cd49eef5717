"""Sessions in the TUI, on the real embedded model: save/open round trip, history, replay, bad files.

Expected values come from the run being saved (or from the session file, read by the core's
loader), never from recorded model outputs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from playground.config import Config
from playground.events import TokenEvent
from playground.locations import example_sessions_dir
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import Example, PromptSpec, render
from playground.sampling import reshape
from playground.sessions import history
from playground.sessions.record import SessionRecorder
from playground.sessions.prompt import prompt_fields
from playground.sessions.replay import raw_distribution
from playground.sessions.store import load, save
from playground.ui.app import make_app
from playground.ui.screens.main import MainScreen
from playground.ui.screens.session_files import OpenSessionScreen, SaveSessionScreen
from playground.ui.pump import EventPump
from playground.ui.session_io import HISTORY_DIST
from playground.ui.settings import AppSettings
from playground.ui.text_cells import percent
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.sampler_panel import SamplerPanel
from tests.ui_harness import one_thread_engine, until

SIZE = (160, 48)
DIST = 64  # the head kept per token in these runs (the app's default is 512; smaller is faster)
SAMPLER = SamplerParams(temperature=0.9, top_k=30, top_p=0.9, min_p=0.02, seed=5)
SPEC = PromptSpec(instruction="Describe the country in one long sentence.", input="Spain",
                  examples=(Example("Italy", "A long peninsula with old cities, mountains and famous food."),
                            Example("Japan", "Islands.", enabled=False)),
                  example_format="Country: {input}\nDescription: {output}")


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


def settings(engine, tmp_path: Path, **kw) -> AppSettings:
    base = dict(engine=engine, sampler=SAMPLER, max_tokens=8, prompt=SPEC, dist_size=DIST, stop=("\n\n",),
                config=Config(history_dir=tmp_path / "history"))
    return AppSettings(**{**base, **kw})




async def generate(pilot, screen: MainScreen) -> None:
    await pilot.press("ctrl+g")
    await until(pilot, lambda: not screen.running and screen.record.finished, what="the run")


async def choose_file(pilot, path: Path) -> None:
    """In the open/save modal: type the path and press enter."""
    field = pilot.app.screen.query_one("Input")
    field.value = str(path)
    await pilot.press("enter")


def errors(app) -> list:
    return [n for n in app._notifications if n.severity == "error"]


def inspector_text(screen: MainScreen, index: int) -> str:
    screen._inspect(index)
    return str(screen.query_one(TokenInspector).render())


async def test_save_then_open_in_a_fresh_app_restores_prompt_sliders_and_the_run(engine, tmp_path):
    path = tmp_path / "saved.json"
    app = make_app(settings(engine, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await generate(pilot, screen)
        record = screen.record
        assert len(record.tokens) >= 2
        shown = [inspector_text(screen, i) for i in range(len(record.tokens))]
        dist = screen.query_one(DistributionView)
        shaped = [(screen._inspect(i), dist.shaped)[1] for i in range(len(record.tokens))]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveSessionScreen)
        assert Path(app.screen.query_one("Input").value).parent == tmp_path / "history"  # the default place
        await choose_file(pilot, path)
        await until(pilot, lambda: screen.last_saved == path, what="the save")

    # the file holds what the run produced (read by the core's loader, not by the UI)
    session = load(path).session
    (lane,) = session.lanes
    assert session.prompt.instruction == SPEC.instruction and session.examples == SPEC.examples
    assert session.example_format == SPEC.example_format and session.template_mode == "plain"
    assert lane.sampler == SAMPLER and lane.request.max_tokens == 8 and lane.request.stop == ("\n\n",)
    assert lane.receipt.prompt_text == render(SPEC).text and lane.receipt.seed == record.done.seed == 5
    assert lane.receipt.model_sha256 == engine.model.file.sha256
    assert [t.id for t in lane.tokens] == [t.id for t in record.tokens]
    assert all(t.dist is not None and len(t.dist.ids) == DIST for t in lane.tokens)

    other = settings(engine, tmp_path, prompt=PromptSpec(mode="freeform", text="unrelated", template="chat"),
                     sampler=SamplerParams(greedy=True), max_tokens=99, stop=())
    app = make_app(other)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OpenSessionScreen)
        await choose_file(pilot, path)
        await until(pilot, lambda: screen.record.source == "session" and screen.record.finished, what="the open")
        await pilot.pause(0.2)  # the sliders' Changed messages
        assert screen.current_spec() == SPEC
        panel = screen.query_one(SamplerPanel)
        assert panel.params == SAMPLER and panel.max_tokens == 8 and panel.stop == ("\n\n",)
        sliders = ("temperature", "top_k", "top_p", "min_p", "max_tokens")
        expected = {"temperature": 0.9, "top_k": 30, "top_p": 0.9, "min_p": 0.02, "max_tokens": 8}
        assert {f: screen.query_one(f"#s-{f}").value for f in sliders} == expected
        assert screen.query_one("#seed").value == "5" and screen.query_one("#stop").value == "\\n\\n"
        opened = screen.record.tokens
        assert [(t.id, t.text) for t in opened] == [(t.id, t.text) for t in record.tokens]
        for mine, theirs in zip(opened, record.tokens):
            assert mine.logprob == pytest.approx(theirs.logprob, abs=1e-6)
            assert mine.p_sampled == pytest.approx(theirs.p_sampled, abs=1e-7)
            assert mine.entropy == pytest.approx(theirs.entropy, abs=1e-6)
            assert [(a.id, a.text) for a in mine.top] == [(a.id, a.text) for a in theirs.top]
            assert np.array_equal(mine.dist.ids, theirs.dist.ids)
            assert np.allclose(mine.dist.logprobs, theirs.dist.logprobs, atol=1e-6)
        view = screen.query_one(CompletionView)
        assert [view.text_of(i) for i in range(view.token_count)] == [t.text for t in record.tokens]
        # the inspector and the distribution view say the same about every token as they did live
        dist = screen.query_one(DistributionView)
        for i in range(len(opened)):
            assert inspector_text(screen, i) == shown[i]
            assert np.array_equal(dist.shaped.ids, shaped[i].ids)
            assert np.allclose(dist.shaped.final_probs, shaped[i].final_probs, atol=1e-5)
        assert "session saved.json" in str(screen.query_one("#status").render())
        assert not errors(app)


async def test_every_finished_run_is_kept_in_the_history_and_opening_it_adds_none(engine, tmp_path):
    folder = tmp_path / "history"
    app = make_app(settings(engine, tmp_path, max_tokens=5))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await generate(pilot, screen)
        await until(pilot, lambda: screen.last_kept is not None, what="the history")
        record = screen.record
        (kept,) = history.history_files(folder)
        assert screen.last_kept == kept
        lane = load(kept).session.lanes[0]
        assert [t.id for t in lane.tokens] == [t.id for t in record.tokens]
        for mine, tok in zip(record.tokens, lane.tokens):
            assert tok.logprob == pytest.approx(mine.logprob, abs=1e-6)
            assert list(tok.dist.ids) == [int(i) for i in mine.dist.ids[:HISTORY_DIST]]
        assert lane.receipt.prompt_text == record.start.prompt and lane.receipt.seed == record.done.seed
        assert lane.finish_reason == record.done.finish_reason
        # a second run is a second file; opening one is not a run
        await generate(pilot, screen)
        await until(pilot, lambda: len(history.history_files(folder)) == 2, what="the second run")
        # ctrl+o lists the history, newest first: pick the first run (the older one) from the list
        await pilot.press("ctrl+o")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, OpenSessionScreen) and modal.query_one("Input").value == str(folder) + os.sep
        assert [p for p, _ in modal.recent[:2]] == history.history_files(folder)
        await pilot.press("tab", "down", "enter")  # the list starts at the newest run; down = the older one
        await until(pilot, lambda: screen.record.source == "session" and screen.record.finished, what="the open")
        assert f"session {kept.name}" in str(screen.query_one("#status").render())
        await pilot.pause(0.3)
        assert len(history.history_files(folder)) == 2
        assert [t.id for t in screen.record.tokens] == [t.id for t in lane.tokens]


def recorded_session(engine, tmp_path: Path, spread_s: float = 0.0) -> tuple[Path, object]:
    """A real run recorded by the core's recorder; ``spread_s`` re-times token i to i * spread_s."""
    request = GenerationRequest(render(SPEC).text, SAMPLER, max_tokens=10)
    recorder = SessionRecorder(keep_dist=DIST, **prompt_fields(SPEC))
    recorder.lane(0, request=request)
    for event in engine.stream(request, dist_size=DIST):
        recorder.feed(event)
    session = recorder.session()
    if spread_s:
        lane = session.lanes[0]
        tokens = tuple(dataclasses.replace(t, t=round(t.i * spread_s, 6)) for t in lane.tokens)
        metrics = dataclasses.replace(lane.metrics, elapsed_s=tokens[-1].t)
        session = dataclasses.replace(session, lanes=(dataclasses.replace(lane, tokens=tokens, metrics=metrics),))
    path = save(session, tmp_path / f"recorded-{spread_s}.json")
    return path, load(path).session


async def test_replay_at_speed_zero_shows_every_token_and_the_inspector_works_on_them(engine, tmp_path):
    path, session = recorded_session(engine, tmp_path)
    lane = session.lanes[0]
    app = make_app(settings(engine, tmp_path, session=load(path), replay_speed=0.0))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.record.source == "replay" and screen.record.finished, what="the replay")
        assert [t.id for t in screen.record.tokens] == [t.id for t in lane.tokens]
        view = screen.query_one(CompletionView)
        assert view.token_count == len(lane.tokens)
        assert "replay · done" in str(view.border_subtitle)
        view.focus()
        await pilot.press("home", "right")
        await pilot.pause()
        tok = lane.tokens[1]
        inspector = screen.query_one(TokenInspector)
        assert inspector.event.id == tok.id
        text = str(inspector.render())
        assert percent(math.exp(tok.logprob)) in text and percent(tok.p_sampled) in text and f"{tok.entropy:.3f}" in text
        # the distribution view reshapes the recorded head, as the core computes it independently
        dist = screen.query_one(DistributionView)
        history_ids = list(lane.receipt.prompt_tokens) + [lane.tokens[0].id]
        expected = reshape(raw_distribution(tok, lane.receipt.n_vocab), SAMPLER, history_ids)
        assert dist.position == 1 and np.array_equal(dist.shaped.ids, expected.ids)
        assert np.allclose(dist.shaped.final_probs, expected.final_probs)
        assert not list(history.history_files(tmp_path / "history"))  # a replay is not a run


async def test_replay_keeps_the_recorded_timing_and_escape_stops_it(engine, tmp_path, monkeypatch):
    path, session = recorded_session(engine, tmp_path, spread_s=0.1)
    tokens = session.lanes[0].tokens
    put_at: list[tuple[float, object]] = []  # when the replay worker hands each event to the screen
    original = EventPump.put
    monkeypatch.setattr(EventPump, "put", lambda pump, event: (put_at.append((time.monotonic(), event)),
                                                                original(pump, event)))
    app = make_app(settings(engine, tmp_path, session=load(path), replay_speed=1.5))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.record.finished, what="the replay")
        assert [t.id for t in screen.record.tokens] == [t.id for t in tokens]
    times = [t for t, event in put_at if isinstance(event, TokenEvent)]
    for when, tok in zip(times, tokens):  # each token at its recorded time / speed, never early
        assert when - times[0] >= (tok.t - tokens[0].t) / 1.5 - 0.01
    assert times[-1] - times[0] <= (tokens[-1].t - tokens[0].t) / 1.5 + 1.0  # nor very late
    monkeypatch.undo()
    app = make_app(settings(engine, tmp_path, session=load(path), replay_speed=0.05))  # 2 s between tokens
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: len(screen.record.tokens) >= 1, what="the first token")
        await pilot.press("escape")
        await until(pilot, lambda: not screen.running, timeout=2.0, what="the stop")
        assert 1 <= len(screen.record.tokens) < len(session.lanes[0].tokens)
        view = screen.query_one(CompletionView)
        assert any("[replay stopped]" in c.text for row in view.layout.rows for c in row)
        assert "stopped after" in str(view.border_subtitle)


BAD_FILES = [  # (content, what the message must say); None: no file at all
    ('{"schema_version": 1, "lanes": [', "truncated"),
    ('{"schema_version": 99}', "version"),
    ("\xff\xfe not text", "not UTF-8"),
    (None, "no such file"),
]


async def test_a_bad_file_is_one_notification_and_nothing_is_lost(engine, tmp_path):
    app = make_app(settings(engine, tmp_path, max_tokens=3))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await generate(pilot, screen)
        before = screen.record
        for n, (content, problem) in enumerate(BAD_FILES):
            bad = tmp_path / f"bad{n}.json"
            if content is not None:
                bad.write_bytes(content.encode("latin-1"))
            await pilot.press("ctrl+o")
            await pilot.pause()
            await choose_file(pilot, bad)
            await until(pilot, lambda: len(errors(app)) == n + 1, what="the notification")
            await pilot.pause(0.1)
            error = errors(app)[-1]
            assert len(errors(app)) == n + 1  # one notification per bad file
            assert error.title == "Session file" and str(bad) in error.message and problem in error.message
            assert app.screen is screen and screen.record is before  # the run on screen is untouched
            assert content is None or bad.read_bytes() == content.encode("latin-1")  # never modified
        await generate(pilot, screen)  # still working
        assert screen.record is not before and screen.record.tokens


async def test_a_multi_lane_session_shows_lane_one_with_a_note(engine, tmp_path):
    path = example_sessions_dir() / "temperature-comparison.json"
    session = load(path).session
    assert len(session.lanes) > 1
    app = make_app(settings(engine, tmp_path, session=load(path)))
    async with app.run_test(size=SIZE) as pilot:
        # the compare screen may already be on top: the main screen is the one beneath it
        screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        await until(pilot, lambda: screen.record.source == "session" and screen.record.finished, what="the open")
        assert [t.id for t in screen.record.tokens] == [t.id for t in session.lanes[0].tokens]
        note = f"{len(session.lanes)} lanes — all on the compare screen (ctrl+l)"
        assert note in str(screen.query_one("#status").render())
        assert any(note in n.message for n in app._notifications)


async def test_saving_an_opened_session_keeps_all_its_lanes(engine, tmp_path):
    source = example_sessions_dir() / "temperature-comparison.json"
    original = load(source).session
    out = tmp_path / "copy.json"
    app = make_app(settings(engine, tmp_path, session=load(source)))
    async with app.run_test(size=SIZE) as pilot:
        # the compare screen may already be on top: the main screen (beneath it) saves the whole session
        screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        await until(pilot, lambda: screen.record.finished, what="the open")
        screen.action_save_session()  # what ctrl+s does there
        await pilot.pause()
        await choose_file(pilot, out)
        await until(pilot, lambda: screen.last_saved == out, what="the save")
    copy = load(out).session
    assert copy.lanes == original.lanes and copy.kind == original.kind and copy.prompt == original.prompt


def test_open_and_replay_commands_hand_the_session_to_the_app(tmp_path, engine):
    from playground.cli import build_parser
    from playground.commands.tui import settings_from_args

    path = example_sessions_dir() / "few-shot-classification.json"
    args = build_parser(only="open").parse_args(["open", str(path), "--theme", "playground-light"])
    loaded = load(args.file)
    s = settings_from_args(args, Config(), [], session=loaded)
    assert s.session is loaded and s.replay_speed is None and s.theme == "playground-light" and s.endpoint is None
    args = build_parser(only="replay").parse_args(["replay", str(path), "--speed", "4"])
    s = settings_from_args(args, Config(), [], session=loaded, replay_speed=args.speed)
    assert s.replay_speed == 4.0


def test_open_summary_and_replay_print_stay_for_scripts(tmp_path):
    import subprocess

    from tests.conftest import playground_cmd, subprocess_env

    path = example_sessions_dir() / "few-shot-classification.json"
    lane = load(path).session.lanes[0]
    opened = subprocess.run(playground_cmd() + ["open", str(path), "--summary"], capture_output=True, text=True,
                            timeout=60, env=subprocess_env(tmp_path))
    assert opened.returncode == 0 and ": local SmolLM2" in opened.stdout and "1 lane(s)" in opened.stdout
    printed = subprocess.run(playground_cmd() + ["replay", str(path), "--print", "--speed", "0"], capture_output=True,
                             text=True, timeout=60, env=subprocess_env(tmp_path))
    assert printed.returncode == 0 and printed.stdout == lane.text + "\n"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_playground_open_in_a_real_terminal(tmp_path):
    """``playground open FILE`` end to end: the real program in tmux, the screen read back."""
    import sys

    from tests.conftest import subprocess_env
    from tests.test_tmux_e2e import Terminal

    path = example_sessions_dir() / "few-shot-classification.json"
    session = load(path).session
    last = session.lanes[0].tokens[-1]
    term = Terminal([sys.executable, "-m", "playground", "open", str(path), "-c", "2048", "-t", "1"], subprocess_env(tmp_path))
    try:
        screen = term.wait_for("session · done", timeout=60)
        assert "session few-shot-classification.json" in screen
        assert session.lanes[0].text.strip() in screen and session.prompt.input in screen
        assert f"Examples · {len(session.examples)}-shot" in screen
        assert "raw p" in screen and percent(math.exp(last.logprob)) in screen  # the inspector on the last token
        assert "raw (T = 1)" in screen  # the distribution view
    finally:
        term.close()
