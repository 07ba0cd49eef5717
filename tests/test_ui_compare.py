"""The compare screen on the real embedded model: lanes, divergence, add/remove/edit, votes, sessions."""

from __future__ import annotations

from collections import Counter

import pytest

from playground.compare.extract import last_number
from playground.compare.run import sample_requests
from playground.config import Config
from playground.engine.lanes import seq_max_for
from playground.engine_options import EngineChoice
from playground.locations import example_sessions_dir
from playground.compare.lane_spec import LaneSpec
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import PromptSpec
from playground.sessions import history
from playground.sessions.store import load
from playground.ui.app import make_app
from playground.ui.screens.compare import CompareScreen
from playground.ui.screens.compare_forms import LaneEditScreen, VoteSetupScreen
from playground.ui.screens.session_files import SaveSessionScreen
from playground.ui.settings import AppSettings
from tests.ui_harness import until
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.lane import LanePane
from tests.helpers import collect

SIZE = (160, 48)
PROMPT = "The three primary colours are"
LANES = [SamplerParams(greedy=True), SamplerParams(temperature=0.9, seed=3),
         SamplerParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=5)]


@pytest.fixture(scope="module")
def engines():
    """(lanes engine with room for 32 samples, single-lane reference engine without prefix reuse)."""
    lanes = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(32))
    ref = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield lanes, ref
    lanes.close()
    ref.close()


def make(engines, text: str = PROMPT, max_tokens: int = 12, **kw):
    lanes, ref = engines
    options = dict(engine=ref, max_tokens=max_tokens, keep_history=False, prompt=PromptSpec(mode="freeform", text=text))
    settings = AppSettings(**{**options, **kw})
    app = make_app(settings)
    app.compare_engine = lanes
    return app


def reference(engine, text: str, sampler: SamplerParams, max_tokens: int) -> list[int]:
    request = GenerationRequest(prompt=text, sampler=sampler, max_tokens=max_tokens)
    _, tokens, _ = collect(engine.stream(request))
    return [t.id for t in tokens]


def reference_text(engine, request: GenerationRequest) -> str:
    _, tokens, end = collect(engine.stream(request))
    return "".join(t.text for t in tokens) + end.tail


async def to_compare(pilot) -> CompareScreen:
    await pilot.press("ctrl+l")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    await screen.ready.wait()
    return screen


async def wait_idle(pilot, screen: CompareScreen, timeout: float = 90.0) -> None:
    await until(pilot, lambda: not screen.running, "the compare run to finish", timeout)


async def run_lanes(pilot, screen: CompareScreen, params: list[SamplerParams]) -> None:
    screen.lanes = [LaneSpec(p) for p in params]
    await screen.rebuild()
    await pilot.press("ctrl+g")
    await wait_idle(pilot, screen)


async def test_lanes_equal_single_lane_runs_and_mark_the_first_divergence(engines):
    app = make(engines)
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        await run_lanes(pilot, screen, LANES)
        panes = screen.panes()
        assert len(panes) == 3
        refs = [reference(engines[1], PROMPT, p, 12) for p in LANES]
        for pane, ref in zip(panes, refs):
            assert [t.id for t in pane.record.tokens] == ref
            assert pane.completion.token_count == len(ref)
            assert "tokens" in str(pane.query_one(".lane--metrics").render())
        # divergence against lane 1, computed independently from the reference runs
        firsts = []
        for k in (1, 2):
            a, b = refs[k], refs[0]
            index = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), None)
            if index is None and len(a) != len(b):
                index = min(len(a), len(b))
            assert screen.divergences[k].index == index
            expected_mark = index if index is not None and index < len(a) else None
            assert panes[k].completion.marked == expected_mark
            if index is not None:
                assert f"#{index}" in str(panes[k].query_one(".lane--head").render())
                firsts.append(index)
        if firsts and min(firsts) < len(refs[0]):
            assert panes[0].completion.marked == min(firsts)
        # the inspector follows the selected lane's token
        screen.action_select_lane(1)
        await pilot.pause()
        inspector = app.screen.query_one(TokenInspector)
        assert inspector.event is panes[1].record.tokens[-1]


async def test_add_remove_and_edit_lanes(engines):
    app = make(engines)
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        assert len(screen.panes()) == 2
        screen.panes()[0].completion.focus()
        await pilot.press("a")
        await pilot.pause()
        assert len(screen.panes()) == 3 and len(screen.lane_params) == 3
        await pilot.press("d")
        await pilot.pause()
        assert len(screen.panes()) == 2
        await pilot.press("d")  # two lanes is the least
        await pilot.pause()
        assert len(screen.panes()) == 2
        screen.panes()[1].completion.focus()
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, LaneEditScreen)
        field = app.screen.query_one("#lane-spec")
        field.value = "temp=0.5,top_k=7,seed=11"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert screen.lane_params[1] == SamplerParams(temperature=0.5, top_k=7, seed=11)
        assert "temp=0.5" in str(screen.panes()[1].query_one(".lane--head").render())
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#lane-spec").value = "temp=banana"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LaneEditScreen)  # bad input stays in the form, with the error
        assert "temperature" in str(app.screen.query_one(".form--error").render())
        await pilot.press("escape")
        await pilot.pause()
        # back to the main screen when idle
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_self_consistency_vote_counts_equal_an_independent_tally(engines):
    text = "Q: What is 12 + 9?\nA: The answer is"
    app = make(engines, text=text, max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        screen.lanes[1] = LaneSpec(SamplerParams(temperature=1.2, seed=4))
        screen.action_select_lane(1)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, VoteSetupScreen)
        app.screen.query_one("#vote-n").value = "6"
        await pilot.click("#apply")
        await wait_idle(pilot, screen)
        assert screen.mode == "vote" and screen.vote is not None
        base = GenerationRequest(prompt=text, sampler=SamplerParams(temperature=1.2, seed=4), max_tokens=8)
        texts = [reference_text(engines[1], r) for r in sample_requests(base, 6)]
        answers = [last_number(t) for t in texts]
        counts = Counter(a for a in answers if a is not None)
        assert screen.vote.answers == dict(counts)
        assert list(screen.vote.by_sample) == answers
        if counts:
            assert screen.vote.agreement == pytest.approx(max(counts.values()) / 6)
        # opening a sample shows its completion
        options = app.screen.query_one("#samples")
        options.highlighted = 4
        await pilot.pause()
        pane = screen.panes()[0]
        assert pane.record is screen.records[4]
        assert "".join(pane.completion.text_of(i) for i in range(pane.completion.token_count)) == \
            "".join(t.text for t in screen.records[4].tokens)


async def test_a_multi_lane_session_opens_on_the_compare_screen(engines):
    path = example_sessions_dir() / "temperature-comparison.json"
    loaded = load(path)
    app = make(engines, session=loaded)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and not app.screen.running
                    and bool(app.screen.records), "the session on the compare screen", 20)
        screen = app.screen
        panes = screen.query(LanePane)
        assert len(panes) == 3
        for pane, lane in zip(panes, loaded.session.lanes):
            assert [t.id for t in pane.record.tokens] == [t.id for t in lane.tokens]
            assert pane.completion.token_count == len(lane.tokens)


async def test_a_vote_session_opens_with_its_recorded_vote(engines):
    loaded = load(example_sessions_dir() / "self-consistency-vote.json")
    app = make(engines, session=loaded)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and not app.screen.running
                    and app.screen.vote is not None, "the vote on the compare screen", 20)
        screen = app.screen
        recorded = loaded.session.vote.answers
        assert screen.mode == "vote" and len(screen.records) == len(loaded.session.lanes)
        assert screen.vote.answers == dict(Counter(a for a in recorded if a is not None))
        assert screen.vote.majority == loaded.session.vote.majority




async def test_a_live_run_is_saved_with_every_lane_and_kept_in_the_history(engines, tmp_path):
    folder = tmp_path / "history"
    app = make(engines, keep_history=True, config=Config(history_dir=folder))
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        await pilot.press("ctrl+s")  # nothing ran yet: a warning, no modal
        await pilot.pause()
        assert app.screen is screen
        params = [LANES[0], LANES[2]]
        await run_lanes(pilot, screen, params)
        shown = [[t.id for t in pane.record.tokens] for pane in screen.panes()]
        await until(pilot, lambda: screen.last_kept is not None, "the history")
        assert history.history_files(folder) == [screen.last_kept]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveSessionScreen)
        path = tmp_path / "run.json"
        app.screen.query_one("Input").value = str(path)
        await pilot.press("enter")
        await until(pilot, lambda: screen.last_saved == path, "the save")
    saved = load(path).session
    kept = load(history.history_files(folder)[0]).session
    for session in (saved, kept):
        assert session.kind == "compare" and len(session.lanes) == 2
        assert [[t.id for t in lane.tokens] for lane in session.lanes] == shown
        assert [lane.sampler for lane in session.lanes] == params
        assert session.prompt.text == PROMPT
        for lane in session.lanes:
            assert lane.finish_reason is not None and lane.receipt.prompt_tokens
        assert saved.lanes[1].receipt.seed == params[1].seed
    assert not any(n.severity == "error" for n in app._notifications)


async def test_a_saved_vote_keeps_its_extractor_and_answers(engines, tmp_path):
    text = "Q: What is 12 + 9?\nA: The answer is"
    folder = tmp_path / "history"
    app = make(engines, text=text, max_tokens=6, keep_history=True, config=Config(history_dir=folder))
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        screen.lanes[1] = LaneSpec(SamplerParams(temperature=1.2, seed=4))
        screen.action_select_lane(1)
        await pilot.press("v")
        await pilot.pause()
        app.screen.query_one("#vote-n").value = "3"
        await pilot.click("#apply")
        await wait_idle(pilot, screen)
        assert screen.vote is not None
        path = tmp_path / "vote.json"
        screen.save_to(path)
        await until(pilot, lambda: screen.last_saved == path, "the save")
        await until(pilot, lambda: screen.last_kept is not None, "the history")
        texts = [r.text for r in screen.records]
    session = load(path).session
    assert session.kind == "vote" and len(session.lanes) == 3
    assert session.vote is not None and session.vote.extractor == "last_number"
    assert list(session.vote.answers) == [last_number(t) for t in texts]
    assert len(history.history_files(folder)) == 1


async def test_an_opened_session_is_not_kept_in_the_history(engines, tmp_path):
    folder = tmp_path / "history"
    loaded = load(example_sessions_dir() / "temperature-comparison.json")
    app = make(engines, session=loaded, keep_history=True, config=Config(history_dir=folder))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.records
                    and not app.screen.running, "the session")
        await pilot.pause(0.2)
    assert not history.history_files(folder)


async def test_a_lane_on_another_model_path_runs_beside_the_batched_lane(engines, embedded_path, tmp_path):
    other = tmp_path / "same-model.gguf"
    other.hardlink_to(embedded_path)  # another path: its own engine, loaded by the screen's worker
    app = make(engines, engine_choice=EngineChoice(n_ctx=2048, n_threads=1))
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_compare(pilot)
        screen.panes()[1].completion.focus()
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#lane-spec").value = f"greedy,model={other}"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and screen.where(1) == (None, str(other))
        assert "same-model.gguf" in str(screen.panes()[1].query_one(".lane--head").render())
        screen.lanes = [LaneSpec(SamplerParams(greedy=True)), LaneSpec(SamplerParams(greedy=True), model=str(other))]
        await screen.rebuild()
        await pilot.press("ctrl+g")
        await wait_idle(pilot, screen)
        a, b = screen.records
        assert a.failed is None and b.failed is None and a.done is not None and b.done is not None
        assert len(a.tokens) > 0 and a.text == b.text
        assert len(screen.pool.loaded()) == 2  # the compare engine and the other path's, loaded once
