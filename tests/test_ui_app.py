"""The whole app on the real embedded model, driven by the pilot: generate, cancel, fail, inspect, reshape."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from playground.errors import GenerationError
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import Example, PromptSpec, render
from playground.sampling import reshape
from playground.ui.app import make_app
from playground.ui.screens.main import MainScreen
from playground.ui.settings import AppSettings
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.slider import Slider
from playground.ui.text_cells import token_label
from tests.helpers import collect
from tests.ui_harness import one_thread_engine

GREEDY = SamplerParams(greedy=True, seed=7)


@pytest.fixture(scope="module")
def engine():
    """Overrides conftest's: the model on one thread, beside the UI thread (see one_thread_engine)."""
    yield from one_thread_engine()
SIZE = (160, 48)


def settings(engine, **kw) -> AppSettings:
    base = dict(engine=engine, sampler=GREEDY, max_tokens=12,
                prompt=PromptSpec(mode="freeform", text="The three primary colours are"))
    return AppSettings(**{**base, **kw})


async def wait_done(pilot, screen: MainScreen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while screen.running or not screen.record.finished:
        assert time.monotonic() < deadline, "generation did not finish"
        await pilot.pause(0.05)
    await pilot.pause()


def reference(engine, text: str, sampler: SamplerParams, max_tokens: int, add_special: bool = True):
    request = GenerationRequest(prompt=text, sampler=sampler, max_tokens=max_tokens, add_special=add_special)
    return collect(engine.stream(request))


async def test_generate_streams_the_engines_tokens_with_probabilities(engine):
    app = make_app(settings(engine))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        _, ref_tokens, ref_done = reference(engine, "The three primary colours are", GREEDY, 12)
        tokens = screen.record.tokens
        assert [t.id for t in tokens] == [t.id for t in ref_tokens]
        view = screen.query_one(CompletionView)
        assert [view.text_of(i) for i in range(view.token_count)] == [t.text for t in ref_tokens]
        for mine, ref in zip(tokens, ref_tokens):
            assert mine.logprob == pytest.approx(ref.logprob, abs=1e-4)
        assert "done" in str(view.border_subtitle) and f"{len(tokens)} tokens" in str(view.border_subtitle)
        # the inspector follows the newest token and shows its model probability
        inspector = screen.query_one(TokenInspector)
        assert inspector.event is tokens[-1]
        assert f"{math.exp(tokens[-1].logprob) * 100:.1f}"[:3] in str(inspector.render())
        # metrics: perplexity = exp(-mean logprob), computed independently here
        ppl = math.exp(-sum(t.logprob for t in ref_tokens) / len(ref_tokens))
        assert screen.record.perplexity() == pytest.approx(ppl, rel=1e-3)
        assert f"{ppl:.2f}" in screen.query_one("#metrics").figures["ppl"]


async def test_selection_drives_inspector_and_distribution(engine):
    app = make_app(settings(engine, max_tokens=6))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        view = screen.query_one(CompletionView)
        view.focus()
        await pilot.press("home", "right")
        await pilot.pause()
        token = screen.record.tokens[1]
        assert screen.query_one(TokenInspector).event is token
        dist = screen.query_one(DistributionView)
        assert dist.position == 1 and dist.chosen == token.id
        expected = reshape(token.dist, GREEDY, screen.record.history(1))
        assert np.array_equal(dist.shaped.ids, expected.ids)
        assert np.allclose(dist.shaped.final_probs, expected.final_probs)
        # raw bars are the model's: the head's probabilities are exp(logprob)
        assert np.allclose(dist.shaped.raw_probs[:5], np.exp(token.dist.logprobs[:5]))


async def test_slider_change_reshapes_without_running_the_model(engine):
    app = make_app(settings(engine, max_tokens=4, sampler=SamplerParams(seed=3)))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        calls = []
        original = engine.stream
        engine.stream = lambda *a, **k: calls.append(1) or original(*a, **k)
        try:
            temp = screen.query_one("#s-temperature", Slider)
            temp.focus()
            await pilot.press("right", "right")  # 0.8 -> 0.9
            top_k = screen.query_one("#s-top_k", Slider)
            top_k.focus()
            await pilot.press("3", "enter")
            await pilot.pause()
        finally:
            engine.stream = original
        assert calls == []
        dist = screen.query_one(DistributionView)
        assert dist.params.temperature == pytest.approx(0.9) and dist.params.top_k == 3
        token = screen.record.tokens[-1]
        expected = reshape(token.dist, dist.params, screen.record.history(len(screen.record.tokens) - 1))
        assert np.allclose(dist.shaped.final_probs, expected.final_probs)
        assert np.count_nonzero(dist.shaped.final_probs) <= 3
        assert "top-k cut" in str(dist.render())


async def test_cancel_keeps_partial_output(engine):
    app = make_app(settings(engine, max_tokens=2000, sampler=SamplerParams(seed=1, temperature=1.5, top_k=0,
                                                                             top_p=1.0, min_p=0.0)))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        while len(screen.record.tokens) < 3:
            await pilot.pause(0.02)
        await pilot.press("escape")
        await wait_done(pilot, screen)
        record = screen.record
        assert record.done is not None and record.done.finish_reason == "cancelled"
        assert 3 <= len(record.tokens) < 2000
        view = screen.query_one(CompletionView)
        assert view.token_count == len(record.tokens)
        assert any("[cancelled]" in c.text for row in view.layout.rows for c in row)


async def test_failure_mid_run_is_reported_once_and_partial_output_kept(engine, monkeypatch):
    # A decode failure cannot be provoked from a healthy model: inject it after three tokens.
    original = engine.decode_one
    count = {"n": 0}

    def failing(token):
        count["n"] += 1
        if count["n"] > 3:
            raise GenerationError("llama_decode returned 1 (injected)")
        return original(token)

    monkeypatch.setattr(engine, "decode_one", failing)
    app = make_app(settings(engine, max_tokens=20))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        assert screen.record.failed is not None and len(screen.record.tokens) == 4
        view = screen.query_one(CompletionView)
        assert view.token_count == 4
        assert any("interrupted" in c.text for row in view.layout.rows for c in row)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "injected" in errors[0].message and errors[0].title == "Generation failed"
    monkeypatch.undo()
    engine._kv_tokens = []  # the failed run left the cache unknown; start the next test clean


async def test_stop_string_typed_in_the_sampler_pane_stops_the_run(engine):
    spec = PromptSpec(instruction="Give the capital city.", input="France",
                      examples=(Example("Italy", "Rome"), Example("Japan", "Tokyo")))
    app = make_app(settings(engine, prompt=spec, max_tokens=40))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.click("#stop")
        await pilot.press("\\", "n")
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        done = screen.record.done
        _, ref_tokens, _ = reference(engine, render(spec).text, GREEDY, 40)
        ref_text = "".join(t.text for t in ref_tokens)
        if "\n" in ref_text:  # greedy output reaches a line break within 40 tokens: the run stops there
            assert done.stop_string == "\n" and len(screen.record.tokens) < len(ref_tokens)
            assert "stop string" in str(screen.query_one(CompletionView).border_subtitle)
        else:
            assert done.stop_string is None


async def test_prompt_and_run_options_start_generating(engine):
    from playground.commands.tui import build_parser, settings_from_args
    from playground.config import Config

    args = build_parser().parse_args(["--prompt", "Once upon a time", "--plain", "--run", "--greedy", "-n", "5", "--theme",
                                      "playground-high-contrast"])
    s = settings_from_args(args, Config(), [])
    s.engine = engine
    app = make_app(s)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_done(pilot, screen)
        assert len(screen.record.tokens) == 5 or screen.record.done.finish_reason == "stop"
        assert screen.record.start.prompt == "Once upon a time"
        assert app.theme == "playground-high-contrast"


async def test_token_count_rendered_prompt_and_chat_toggle(engine):
    spec = PromptSpec(instruction="Translate to French.", input="cheese", examples=(Example("dog", "chien"),))
    app = make_app(settings(engine, prompt=spec))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.pause(0.3)
        plain = render(spec)
        n = len(engine.model.tokenize(plain.text))
        count = str(screen.query_one("#prompt-count").render())
        assert f"{n} / {engine.model.n_ctx} tokens" in count
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        assert "model chat template" in str(screen.query_one("#prompt-count").render())
        await pilot.press("ctrl+r")
        await pilot.pause()
        shown = app.screen.query_one("TextArea").text
        assert shown.startswith("<|im_start|>system\nTranslate to French.") and "<|im_start|>user\ncheese" in shown
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_examples_editor_adds_an_example_to_the_prompt(engine):
    app = make_app(settings(engine, prompt=PromptSpec(instruction="Antonyms.", input="hot")))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("f3", "a")
        await pilot.pause()
        await pilot.press(*"big")
        await pilot.press("tab")
        await pilot.press(*"small")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        assert "Input: big\nOutput: small\n\nInput: hot\nOutput:" in screen.rendered().text
        assert "one-shot" in str(screen.query_one("#examples").border_title)


async def test_korean_prompt_and_completion_fit_the_panes(engine):
    app = make_app(settings(engine, max_tokens=16, prompt=PromptSpec(mode="freeform", text="한국어 문장: 안녕하세요, 저는")))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        view = screen.query_one(CompletionView)
        width = view.scrollable_content_region.width
        for y in range(view.scrollable_content_region.height):
            assert view.render_line(y).cell_length == width
        text = "".join(view.text_of(i) for i in range(view.token_count))
        assert text + screen.record.done.tail == screen.record.text
        assert screen.query_one("#freeform-text").text.startswith("한국어")
        # byte-level tokens: the inspector names the token's own bytes and the character it completes
        inspector = screen.query_one(TokenInspector)
        for i, token in enumerate(screen.record.tokens):
            screen._inspect(i)
            piece = engine.model.piece_text(token.id)
            title = inspector.token_title()
            if token.id in [a.id for a in token.top] and piece != token.text:
                assert title.startswith(token_label(piece)) and (token_label(token.text) in title or "part of" in title)
            elif piece == token.text:
                assert title == token_label(piece)


async def test_generate_from_the_command_palette(engine):
    app = make_app(settings(engine, max_tokens=3))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Generate")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_done(pilot, screen)
        assert screen.record.done is not None and screen.record.tokens
