"""Pilot tests of the sampler pane's full llama.cpp set: keys in, ``SamplerPanel.Changed`` params out.

Also the legend of the distribution view and the inspector's survivors under a non-default chain,
and the pane's layout at 80x24 (an SSH terminal) and in the 54-column left column of 160x48.
"""

from __future__ import annotations

import numpy as np
import pytest

from playground.backends.base import CLASSIC_SAMPLER_FIELDS
from playground.events import TokenEvent
from playground.params import LogitBias, SamplerParams
from playground.sampling import head_from_logits, reshape
from playground.ui.widgets.advanced_samplers import ADVANCED, TEXT_FIELDS
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.sampler_panel import SamplerPanel
from playground.ui.widgets.slider import Slider
from tests.ui_harness import Harness

ALL_FIELDS = frozenset(SamplerParams().to_dict())


def screen_lines(app) -> list[str]:
    """The terminal as the user sees it, one string per row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def last(app) -> SamplerPanel.Changed:
    return app.of(SamplerPanel.Changed)[-1]


async def open_group(app, pilot) -> None:
    """Tab to the group's title and open it with enter, as a keyboard user does."""
    for _ in range(20):
        await pilot.press("tab")
        if type(app.focused).__name__ == "CollapsibleTitle":
            break
    assert type(app.focused).__name__ == "CollapsibleTitle"
    await pilot.press("enter")
    await pilot.pause()
    assert not app.query_one("#advanced").collapsed


async def type_into(pilot, app, selector: str, *keys: str) -> None:
    app.query_one(selector).focus()
    await pilot.pause()
    await pilot.press(*keys)
    await pilot.pause()


async def test_advanced_group_starts_collapsed_and_opens_by_keys():
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "Advanced samplers · all off" in text and "typical" not in text
        assert not app.query_one("#s-typical_p").display or not app.query_one("#s-typical_p").region.area
        await open_group(app, pilot)
        await pilot.press("tab")  # the first field of the group: the order
        assert app.focused.id == "t-samplers"


async def test_new_sliders_set_by_keys_reach_the_params():
    start = SamplerParams(temperature=0.7, top_k=30, seed=5)
    app = Harness(SamplerPanel(start, 128, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_group(app, pilot)
        await type_into(pilot, app, "#s-typical_p", "0", ".", "9", "enter")
        await type_into(pilot, app, "#s-top_n_sigma", "1", ".", "5", "enter")
        await type_into(pilot, app, "#s-xtc_probability", "0", ".", "5", "enter")
        await type_into(pilot, app, "#s-dry_multiplier", "right", "right")  # two steps of 0.05
        await type_into(pilot, app, "#s-dry_penalty_last_n", "home")  # -1: the whole context
        await type_into(pilot, app, "#s-presence_penalty", "left", "left")
        await type_into(pilot, app, "#s-frequency_penalty", "0", ".", "3", "enter")
        await type_into(pilot, app, "#s-mirostat", "end")
        await type_into(pilot, app, "#s-mirostat_tau", "3", "enter")
        await type_into(pilot, app, "#s-dynatemp_range", "0", ".", "4", "enter")
        await type_into(pilot, app, "#s-repeat_last_n", "1", "2", "8", "enter")
        p = last(app).params
        assert (p.typical_p, p.top_n_sigma, p.xtc_probability) == (0.9, 1.5, 0.5)
        assert p.dry_multiplier == pytest.approx(0.1) and p.dry_penalty_last_n == -1
        assert p.presence_penalty == pytest.approx(-0.1) and p.frequency_penalty == pytest.approx(0.3)
        assert (p.mirostat, p.mirostat_tau, p.dynatemp_range, p.repeat_last_n) == (2, 3.0, 0.4, 128)
        assert isinstance(p.mirostat, int) and isinstance(p.repeat_last_n, int)
        # the common values stay as they were, and the whole set is valid
        assert (p.temperature, p.top_k, p.seed, last(app).max_tokens) == (0.7, 30, 5, 128)
        p.validate()
        assert app.query_one("#s-mirostat", Slider).format_value() == "v2"
        assert app.query_one("#s-dry_penalty_last_n", Slider).format_value() == "all"
        title = str(app.query_one("#advanced").title)
        for name in ("dry", "top-n-sigma", "typical", "xtc", "dynatemp", "mirostat", "presence/freq"):
            assert name in title
        # top-n-sigma back to its slider's "off": params get llama.cpp's own off value, -1
        await type_into(pilot, app, "#s-top_n_sigma", "home")
        assert last(app).params.top_n_sigma == -1.0
        assert app.query_one("#s-top_n_sigma", Slider).format_value() == "off"


async def test_order_field_takes_llama_cpp_names_and_refuses_a_bad_one():
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_group(app, pilot)
        await type_into(pilot, app, "#s-typical_p", "0", ".", "8", "enter")
        await type_into(pilot, app, "#t-samplers", "ctrl+u", *"top-k;nucleus;typ;temp")
        good = last(app).params
        assert good.samplers == ("top_k", "top_p", "typ_p", "temperature") and good.typical_p == 0.8
        assert "acting: top_k → top_p → typ_p → temperature → dist" in "\n".join(screen_lines(app))
        n_changed = len(app.of(SamplerPanel.Changed))
        await pilot.press(*";bogus")
        panel = app.query_one(SamplerPanel)
        assert panel.params == good and len(app.of(SamplerPanel.Changed)) == n_changed
        assert "unknown sampler 'bogus'" in panel.errors["samplers"]
        assert "unknown sampler 'bogus'" in "\n".join(screen_lines(app))
        assert app.query_one("#t-samplers").has_class("-invalid")
        await pilot.press("ctrl+u")  # empty: refused too (it would leave only the final draw)
        assert panel.params == good and "empty" in panel.errors["samplers"]
        # other fields still work while the order is refused, on top of the last valid order
        await type_into(pilot, app, "#s-min_p", "0", ".", "1", "enter")
        assert last(app).params == good.replace(min_p=0.1)
        await type_into(pilot, app, "#t-samplers", *"min_p;temperature")
        assert last(app).params.samplers == ("min_p", "temperature") and last(app).params.min_p == 0.1
        assert not panel.errors and not app.query_one("#sampler-error").has_class("-shown")


async def test_logit_bias_and_dry_breakers_fields():
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_group(app, pilot)
        await type_into(pilot, app, "#t-logit_bias", *'15043+1, " Hi"-5, \',\'+2')
        assert last(app).params.logit_bias == (
            LogitBias(1.0, token=15043), LogitBias(-5.0, text=" Hi"), LogitBias(2.0, text=","))
        before = last(app).params
        await pilot.press(*", 7")  # no sign and bias yet: refused, the three biases kept
        panel = app.query_one(SamplerPanel)
        assert panel.params == before and "logit bias" in panel.errors["logit_bias"]
        await pilot.press(*"-inf")  # parses, but out of range: validate() refuses it
        assert panel.params == before and "logit_bias" in panel.errors
        await pilot.press("backspace", "backspace", "backspace", "1", "0", "0")
        assert last(app).params.logit_bias[-1] == LogitBias(-100.0, token=7)
        await type_into(pilot, app, "#t-dry_sequence_breakers", "ctrl+u")
        assert last(app).params.dry_sequence_breakers == ()
        await pilot.press(*"\\n|###")
        assert last(app).params.dry_sequence_breakers == ("\n", "###")


async def test_set_params_shows_every_field_and_keeps_it():
    shown = SamplerParams(typical_p=0.7, top_n_sigma=2.0, xtc_probability=0.3, xtc_threshold=0.2,
                          dry_multiplier=0.8, dry_base=2.0, dry_allowed_length=3, dry_penalty_last_n=128,
                          dry_sequence_breakers=("\n", "|"), presence_penalty=0.5, frequency_penalty=-0.5,
                          mirostat=1, mirostat_eta=0.2, mirostat_tau=4.0, dynatemp_range=0.5,
                          dynatemp_exponent=2.0, repeat_last_n=32, logit_bias=(LogitBias(-3.0, token=11),),
                          samplers=("dry", "top_k", "xtc", "temperature"))
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(SamplerPanel)
        panel.set_params(shown, 64)
        await pilot.pause()
        assert last(app).params == shown and panel.params == shown
        for field in ADVANCED:
            expected = float(getattr(shown, field))
            assert app.query_one(f"#s-{field}", Slider).value == pytest.approx(expected), field
        assert app.query_one("#t-samplers").value == "dry;top_k;xtc;temperature"
        assert app.query_one("#t-logit_bias").value == "11-3"
        assert app.query_one("#t-dry_sequence_breakers").value == "\\n|\\|"
        # a nudge on one field changes only that field
        await open_group(app, pilot)
        await type_into(pilot, app, "#s-dry_base", "right")
        assert last(app).params == shown.replace(dry_base=2.05)


async def test_mark_unsent_covers_the_advanced_fields():
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(SamplerPanel)
        panel.mark_unsent(frozenset(CLASSIC_SAMPLER_FIELDS | {"presence_penalty", "frequency_penalty"}))
        await pilot.pause()
        assert app.query_one("#s-typical_p").has_class("-not-sent")
        assert app.query_one("#row-samplers").has_class("-not-sent")
        assert not app.query_one("#s-presence_penalty").has_class("-not-sent")
        assert not app.query_one("#s-temperature").has_class("-not-sent")
        note = str(app.query_one("#unsent").render())
        assert "cannot take" in note and "refuses" in note and "typical" in note and "order" in note
        assert "penalties" not in note.split("cannot take")[1].split(":")[0]  # penalties all honoured
        panel.mark_unsent(ALL_FIELDS)  # llama-server and the local engine take everything
        await pilot.pause()
        assert not app.query_one("#unsent").has_class("-shown")
        assert not any(w.has_class("-not-sent") for w in app.query("Slider"))


@pytest.mark.parametrize("size,width", [((80, 24), None), ((160, 48), 54)], ids=["80x24", "160x48"])
async def test_every_field_is_reachable_and_readable(size, width):
    """Tab through the open pane: each field scrolls into view with its label and value whole."""
    css = f"SamplerPanel {{ width: {width}; border: round $primary; }}" if width else ""
    app = Harness(SamplerPanel(SamplerParams(), 256, id="sampler"), css=css)
    async with app.run_test(size=size) as pilot:
        await open_group(app, pilot)
        seen = set()
        for _ in range(60):
            await pilot.press("tab")
            await pilot.pause()
            focused = app.focused
            if focused is None or focused.id in seen or isinstance(focused, SamplerPanel):
                break  # round the cycle (the pane itself scrolls, and takes the focus last)
            seen.add(focused.id)
            region = focused.region
            assert region.area and app.screen.region.contains_region(region), focused.id
            row = screen_lines(app)[region.y][region.x:region.right]
            if isinstance(focused, Slider):
                assert focused.label in row and row.rstrip().endswith(focused.format_value()), row
            elif focused.id and focused.id.startswith("t-"):  # the label sits left of the field
                line = focused.parent.region
                assert TEXT_FIELDS[focused.id[2:]].label in screen_lines(app)[line.y][line.x:line.right]
        assert {f"s-{f}" for f in ADVANCED} | {f"t-{f}" for f in TEXT_FIELDS} <= seen


# --- the distribution view's legend and the inspector's survivors under the full chain -----------

def _head():
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal(2000) * 3).astype(np.float32)
    return head_from_logits(logits, 2000), head_from_logits(logits, 40)


CHAIN = SamplerParams(top_k=50, top_p=0.9, min_p=0.0, typical_p=0.95, xtc_probability=1.0, xtc_threshold=0.05,
                      temperature=0.9, samplers=("typ_p", "top_k", "xtc", "top_p", "temperature"))


async def test_distribution_legend_lists_the_chain_in_order_and_marks_inexact_stages():
    full, short = _head()
    view = DistributionView(SamplerParams(), id="d")
    app = Harness(view, css="DistributionView { height: 30; width: 120; }")
    async with app.run_test(size=(130, 32)):
        view.show(full, (), position=0)
        view.set_params(CHAIN)
        assert view.border_subtitle == "typ=0.95 → k=50 → xtc=1@0.05 → p=0.9 → T=0.9"
        assert view.shaped.exact
        text = str(view.render())
        assert "≈" not in text
        # the exact reshape is what sampling.py computes on the same head
        assert np.allclose(view.shaped.final_probs, reshape(full, CHAIN).final_probs)
        view.show(short, (), position=0)  # 40 of 2000 tokens: typical needs the whole set
        shaped = reshape(short, CHAIN)
        assert not shaped.exact and not shaped.stage("typical").exact
        assert "typ=0.95≈" in view.border_subtitle and "≈" in str(view.render())
        view.set_params(CHAIN.replace(mirostat=2))
        assert view.border_subtitle.startswith("T=0.9 → mirostat 2 τ=5 η=0.1")


async def test_inspector_survivors_cover_every_acting_stage_in_order():
    full, _ = _head()
    params = CHAIN.replace(repeat_penalty=1.1, logit_bias=(LogitBias(2.0, token=int(full.ids[5])),),
                           samplers=("penalties", *CHAIN.samplers))
    event = TokenEvent(i=0, id=int(full.ids[0]), text="x", logprob=float(full.logprobs[0]), p_sampled=0.5,
                       top=(), t=0.0, dist=full)
    inspector = TokenInspector(id="i")
    app = Harness(inspector, css="TokenInspector { height: 20; width: 46; }")
    async with app.run_test(size=(60, 22)):
        inspector.show(event, params, history=[int(full.ids[1])])
        text = str(inspector.render())
        shaped = reshape(full, params, [int(full.ids[1])])
        survivors = text[text.index("survivors"):text.index("alternatives")]
        flat = " ".join(survivors.replace("survivors", "").split()).replace("→ →", "→")
        expected = ["bias", "penalties", f"typical {shaped.stage('typical').n_min}", f"top-k {shaped.stage('top-k').n_min}",
                    f"xtc {shaped.stage('xtc').n_min}", f"top-p {shaped.stage('top-p').n_min}", "T"]
        assert flat == " → ".join(expected)
        assert len(survivors.splitlines()) >= 2  # wrapped between stages at 46 columns, not cut
