"""Snapshots of the main screen (pytest-textual-snapshot): idle, and after a greedy generation.

The model output is real; greedy decoding with a fixed prompt makes it repeatable, and
``freeze_timings`` hides wall-clock figures. Update with ``pytest --snapshot-update`` after a
deliberate visual change, and look at the report before committing.
"""

from __future__ import annotations

import time

import pytest

from playground.params import SamplerParams
from playground.prompt_builder import Example, PromptSpec
from playground.ui.app import make_app
from playground.ui.settings import AppSettings
from tests.ui_harness import one_thread_engine

SIZE = (160, 48)
PROMPT = PromptSpec(instruction="Give the capital city of the country.", input="France",
                    examples=(Example("Italy", "Rome"), Example("Japan", "Tokyo")))


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


def app_for(engine):
    return make_app(AppSettings(engine=engine, sampler=SamplerParams(greedy=True, seed=1), max_tokens=24,
                                prompt=PROMPT, freeze_timings=True))


def test_main_screen_idle(snap_compare, engine):
    async def ready(pilot):
        await pilot.pause(0.3)  # the token count is computed after a short debounce

    assert snap_compare(app_for(engine), terminal_size=SIZE, run_before=ready)


def test_main_screen_after_greedy_generation(snap_compare, engine):
    async def generate(pilot):
        await pilot.pause()
        await pilot.press("ctrl+g")
        screen = pilot.app.screen
        deadline = time.monotonic() + 60
        await pilot.pause()
        while screen.running:
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(app_for(engine), terminal_size=SIZE, run_before=generate)


SIZES = [(80, 24), (120, 40), (160, 48)]
"""An SSH terminal, a laptop window, a wide screen: each width has its own layout (app.tcss)."""


async def _generate(pilot) -> None:
    await pilot.pause()
    await pilot.press("ctrl+g")
    screen = pilot.app.screen
    deadline = time.monotonic() + 60
    await pilot.pause()
    while screen.running:
        assert time.monotonic() < deadline
        await pilot.pause(0.05)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_at_each_size(snap_compare, engine, size):
    assert snap_compare(app_for(engine), terminal_size=size, run_before=_generate)


@pytest.fixture(scope="module")
def lanes_engine():
    from playground.engine.lanes import seq_max_for
    from playground.engine_options import EngineChoice

    eng = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(32))
    yield eng
    eng.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_screen_at_each_size(snap_compare, engine, lanes_engine, size):
    app = app_for(engine)
    app.compare_engine = lanes_engine

    async def run_lanes(pilot):
        await pilot.pause()
        await pilot.press("ctrl+l")
        await pilot.pause(0.3)
        screen = pilot.app.screen
        await pilot.press("ctrl+g")
        deadline = time.monotonic() + 60
        await pilot.pause()
        while screen.running:
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_lanes)
