"""Pilot tests of the analysis widgets (inspector, distribution, metrics) on real model events."""

from __future__ import annotations

import math

import numpy as np
import pytest

from playground.events import RawDistribution, TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.sampling import reshape
from playground.ui.run_record import RunRecord
from playground.ui.text_cells import percent, token_label
from playground.ui.widgets.distribution import DistributionView, cut_marks
from playground.ui.widgets.inspector import NOT_AVAILABLE, TokenInspector
from playground.ui.widgets.metrics import FROZEN, MetricsPanel
from tests.ui_harness import Harness, one_thread_engine

PARAMS = SamplerParams(seed=11, temperature=0.9, top_k=20, top_p=0.9, min_p=0.02)


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


@pytest.fixture(scope="module")
def run(engine):
    """One real run with distribution heads, as the UI receives it."""
    record = RunRecord()
    request = GenerationRequest(prompt="My favourite fruits are", sampler=PARAMS, max_tokens=10)
    for event in engine.stream(request, dist_size=512):
        record.add(event)
    assert record.done is not None and record.tokens
    return record


async def test_inspector_shows_the_events_numbers(run):
    token = run.tokens[3]
    inspector = TokenInspector(id="i")
    app = Harness(inspector, css="TokenInspector { height: 22; width: 50; }")
    async with app.run_test(size=(60, 24)):
        inspector.show(token, run.params, run.history(3), count=len(run.tokens))
        text = str(inspector.render())
        assert percent(math.exp(token.logprob)) in text
        assert percent(token.p_sampled) in text
        assert f"{token.entropy:.3f}" in text
        # stage survivors are recomputed from the head under the run's settings
        shaped = reshape(token.dist, run.params, run.history(3))
        assert f"top-k {shaped.stage('top-k').n_min}" in text
        assert f"{token.n_candidates} in the final draw" in text
        rank = int(np.flatnonzero(token.dist.ids == token.id)[0]) + 1
        assert inspector.raw_rank() == rank and f"rank {rank}" in text
        for alt in token.top[:3]:
            assert token_label(alt.text) in text


async def test_inspector_says_what_a_backend_does_not_give():
    # the shape of an event from a backend without logprobs (not a stand-in for the model)
    event = TokenEvent(i=0, id=-1, text=" hi", logprob=None, p_sampled=None, top=(), t=0.1)
    inspector = TokenInspector(id="i")
    app = Harness(inspector, css="TokenInspector { height: 12; width: 60; }")
    async with app.run_test(size=(70, 14)):
        inspector.show(event)
        text = str(inspector.render())
        assert text.count(NOT_AVAILABLE) >= 4 and "%" not in text


async def test_distribution_redraws_under_new_params_and_marks_cuts(run):
    token = run.tokens[2]
    view = DistributionView(PARAMS, id="d")
    app = Harness(view, css="DistributionView { height: 30; width: 90; }")
    async with app.run_test(size=(100, 32)):
        view.show(token.dist, run.history(2), chosen=token.id, position=2)
        first = str(view.render())
        assert "raw (T = 1)" in first and "after sampling" in first
        k3 = PARAMS.replace(top_k=3, top_p=1.0, min_p=0.0)
        view.set_params(k3)
        text = str(view.render())
        expected = reshape(token.dist, k3, run.history(2))
        assert np.allclose(view.shaped.final_probs, expected.final_probs)
        assert "top-k cut · 3 kept" in text and text.count("cut") >= 2
        assert view.border_subtitle == "T=0.9 k=3 p=off min-p=off"
        view.set_params(k3.replace(greedy=True))
        assert "1 candidate" in str(view.render())


async def test_distribution_flags_an_approximation(run):
    token = run.tokens[0]
    d = token.dist
    short = RawDistribution(d.ids[:3], d.logprobs[:3], d.n_vocab, d.log_z)  # too short to be exact
    params = SamplerParams(top_k=0, top_p=0.999, min_p=0.0, temperature=1.3)
    assert not reshape(short, params).exact
    view = DistributionView(params, id="d")
    app = Harness(view, css="DistributionView { height: 20; width: 90; }")
    async with app.run_test(size=(100, 22)):
        view.show(short, (), chosen=token.id, position=0)
        text = str(view.render())
        assert "≈" in text and "approximate" in text


def test_cut_marks_only_where_a_stage_removes_tokens(run):
    token = run.tokens[1]
    shaped = reshape(token.dist, SamplerParams(top_k=5, top_p=1.0, min_p=0.0), ())
    assert cut_marks(shaped) == {5: ["top-k"]}


async def test_metrics_from_a_run(run):
    panel = MetricsPanel(id="m")
    app = Harness(panel, css="MetricsPanel { width: 120; }")
    async with app.run_test(size=(130, 6)):
        panel.update(run)
        ppl = math.exp(-sum(t.logprob for t in run.tokens) / len(run.tokens))
        assert panel.figures["ppl"] == f"{ppl:.2f}"
        assert panel.figures["tokens"] == str(len(run.tokens))
        assert panel.figures["TTFT"].endswith("ms")
        frozen = MetricsPanel(freeze_timings=True, id="f")
        await app.mount(frozen)
        frozen.update(run)
        assert frozen.figures["TTFT"] == frozen.figures["decode"] == FROZEN
