"""Pilot tests of the input widgets, each in a tiny harness app (no model needed here)."""

from __future__ import annotations

from rich.cells import cell_len

from playground.params import RANDOM_SEED, SamplerParams
from playground.prompt_builder import Example, PromptSpec
from playground.ui.widgets.completion import CompletionView, bucket
from playground.ui.widgets.examples_panel import ExamplesPanel, escape_format, unescape_format
from playground.ui.widgets.prompt_panel import PromptPanel
from playground.ui.widgets.sampler_panel import SamplerPanel, format_stops, parse_stops
from playground.ui.widgets.slider import Slider
from tests.ui_harness import Harness


def slider(**kw) -> Slider:
    args = dict(minimum=0.0, maximum=2.0, step=0.05, id="s")
    return Slider("temperature", kw.pop("value", 0.8), **{**args, **kw})


async def test_slider_keys_step_clamp_and_post_changed():
    app = Harness(slider())
    async with app.run_test(size=(60, 3)) as pilot:
        s = app.widget
        s.focus()
        await pilot.press("right", "right")
        assert abs(s.value - 0.9) < 1e-9
        await pilot.press("shift+left")
        assert abs(s.value - 0.4) < 1e-9
        await pilot.press("end")
        assert s.value == 2.0
        await pilot.press("right")
        assert s.value == 2.0  # clamped at the track's end
        await pilot.press("home")
        assert s.value == 0.0
        await pilot.pause()
        values = [m.value for m in app.of(Slider.Changed)]
        assert values[-1] == 0.0 and len(values) >= 4


async def test_slider_typed_exact_value_and_beyond_track():
    app = Harness(Slider("top-k", 40, minimum=0, maximum=100, step=1, hard_max=100000, integer=True, fmt="{}", id="k"))
    async with app.run_test(size=(60, 3)) as pilot:
        s = app.widget
        s.focus()
        await pilot.press("2", "5", "0")
        assert s.editing and "250" in str(s.render())
        await pilot.press("enter")
        assert s.value == 250 and not s.editing  # typed values may exceed the track
        await pilot.press("7", "escape")
        assert s.value == 250 and not s.editing  # escape abandons an edit
        await pilot.press("1", "2", "3", "4", "5", "6", "7", "enter")
        assert s.value == 100000  # but not the hard maximum


async def test_slider_mouse_click_sets_value_by_position():
    app = Harness(slider(value=0.0))
    async with app.run_test(size=(60, 3)) as pilot:
        s = app.widget
        start, width = s._track_span()
        await pilot.click("#s", offset=(start + width - 1, 0))
        assert s.value == 2.0
        await pilot.click("#s", offset=(start, 0))
        assert s.value == 0.0
        await pilot.click("#s", offset=(start + (width - 1) // 2, 0))
        assert 0.8 <= s.value <= 1.2


async def test_slider_shows_off_for_disabling_value():
    app = Harness(Slider("top-k", 0, minimum=0, maximum=100, step=1, integer=True, fmt="{}", off_value=0, id="k"))
    async with app.run_test(size=(60, 3)):
        assert str(app.widget.render()).rstrip().endswith("off")


async def test_sampler_panel_emits_params_seed_and_greedy():
    app = Harness(SamplerPanel(SamplerParams(), 256))
    async with app.run_test(size=(60, 16)) as pilot:
        panel = app.widget
        panel.query_one("#s-top_k").focus()
        await pilot.press("0", "enter")
        await pilot.click("#seed")
        await pilot.press("4", "2")
        await pilot.click("#greedy")
        panel.query_one("#s-max_tokens").focus()
        await pilot.press("6", "4", "enter")
        await pilot.pause()
        last = app.of(SamplerPanel.Changed)[-1]
        assert last.params.top_k == 0 and last.params.seed == 42 and last.params.greedy
        assert last.max_tokens == 64
        assert panel.query_one("#s-temperature").has_class("-disabled-look")
        await pilot.click("#seed")
        await pilot.press("end", "backspace", "backspace")
        await pilot.pause()
        assert app.of(SamplerPanel.Changed)[-1].params.seed == RANDOM_SEED
        panel.show_seed_used(1234)
        await pilot.pause()
        assert "1234" in str(panel.query_one("#seed-used").render())
        await pilot.click("#stop")
        await pilot.press(*"\\n\\n|Input:")
        await pilot.pause()
        assert app.of(SamplerPanel.Changed)[-1].stops == ("\n\n", "Input:")


def test_stop_strings_round_trip_through_the_one_line_field():
    for stops in [("\n\nInput:", "a|b"), ("back\\slash", "\t"), ()]:
        assert parse_stops(format_stops(stops)) == stops
    assert parse_stops("###| |") == ("###", " ")


# --- completion layout ---------------------------------------------------------------------

def rows_text(view: CompletionView) -> list[str]:
    return ["".join(" " if c.text == "\n" else c.text for c in row) for row in view.layout.rows]


async def test_completion_wraps_at_words_and_never_exceeds_width():
    view = CompletionView(id="c")
    app = Harness(view, css="CompletionView { width: 24; height: 10; }")
    async with app.run_test(size=(40, 12)) as pilot:
        words = ["The", " quick", " brown", " fox", " jump", "ed", " over", " the", " lazy", " dog", "s", "."]
        view.append_pieces((w, 0.5) for w in words)
        await pilot.pause()
        width = view.scrollable_content_region.width
        rows = rows_text(view)
        assert all(cell_len(r) <= width for r in rows)
        assert "".join(rows).replace(" ", "") == "".join(words).replace(" ", "")
        # no word is split across rows: "jump"+"ed" and "dog"+"s" stay together
        joined = "\n".join(rows)
        assert "jumped" in joined and "dogs." in joined


async def test_completion_wide_characters_and_newlines():
    view = CompletionView(id="c")
    app = Harness(view, css="CompletionView { width: 12; height: 8; }")
    async with app.run_test(size=(30, 10)) as pilot:
        korean = "안녕하세요 반갑습니다"
        view.append_pieces([(korean[:3], 0.9), ("", 0.1), (korean[3:], 0.3), ("\n", 0.8), ("끝", 0.01)])
        await pilot.pause()
        width = view.scrollable_content_region.width
        for row in range(view.row_count):
            strip = view.render_line(row)
            assert strip.cell_length == width  # every rendered line fills exactly the width
        assert all(cell_len(r) <= width for r in rows_text(view))
        assert view.layout.token_row[4] == view.row_count - 1  # the token after the newline starts a row
        assert view.token_count == 5


async def test_completion_selection_keys_and_mouse():
    view = CompletionView(id="c")
    app = Harness(view, css="CompletionView { width: 20; height: 6; }")
    async with app.run_test(size=(30, 8)) as pilot:
        view.append_pieces([("Hello", 0.9), (" world", 0.4), ("\n", 0.5), ("next", 0.04), (" line", 0.3)])
        view.focus()
        await pilot.press("left")
        assert view.selected == 3  # from "follow the end" one step back
        await pilot.press("up")
        assert view.selected in (0, 1)
        await pilot.press("home")
        assert view.selected == 0
        await pilot.press("right", "right")
        assert view.selected == 2
        await pilot.click("#c", offset=(7, 0))
        assert view.selected == 1  # " world" is drawn at cells 5..10 of row 0
        await pilot.press("end")
        assert view.selected is None
        await pilot.pause()
        assert [m.index for m in app.of(CompletionView.Selected)][-1] is None


def test_probability_buckets():
    assert [bucket(p) for p in (0.9, 0.5, 0.3, 0.05, 0.01, None)] == ["high", "high", "mid", "low", "very-low", "unknown"]


async def test_completion_appending_only_touches_the_last_rows():
    view = CompletionView(id="c")
    app = Harness(view, css="CompletionView { width: 30; height: 5; }")
    async with app.run_test(size=(40, 7)) as pilot:
        view.append_pieces((f" w{i}", 0.5) for i in range(200))
        await pilot.pause()
        first_rows = [list(r) for r in view.layout.rows[:-1]]
        cached_before = set(view._cache)
        view.append_pieces([(" more", 0.5)])
        # rows before the last one are untouched and keep their cached strips
        assert [list(r) for r in view.layout.rows[: len(first_rows) - 1]] == first_rows[:-1]
        assert cached_before - set(view._cache) <= {len(first_rows) - 1, len(first_rows)}
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y > 0  # it follows the end


# --- examples and prompt panes -----------------------------------------------------------------

def test_format_escaping_round_trips():
    for fmt in ("Input: {input}\nOutput: {output}", "a\\nb {input}", "x\\\\n\n"):
        assert unescape_format(escape_format(fmt)) == fmt


async def test_examples_panel_add_toggle_move_delete():
    class Answering(Harness):
        def on_examples_panel_edit_requested(self, message: ExamplesPanel.EditRequested) -> None:
            panel.put(message.index, Example("new", "3"))  # the screen opens an editor; here we answer at once

    panel = ExamplesPanel((Example("a", "1"), Example("b", "2")), id="ex")
    app = Answering(panel)
    async with app.run_test(size=(60, 14)) as pilot:
        assert panel.border_title == "Examples · 2-shot"
        panel.query_one("ListView").focus()
        await pilot.press("space")
        await pilot.pause()
        assert panel.examples[0].enabled is False and panel.border_title == "Examples · one-shot"
        await pilot.press("shift+down")
        await pilot.pause()
        assert [e.input for e in panel.examples] == ["b", "a"]
        await pilot.press("a")
        await pilot.pause()
        assert [e.input for e in panel.examples] == ["b", "a", "new"]
        await pilot.press("d")
        await pilot.pause()
        assert [e.input for e in panel.examples] == ["b", "a"]
        changed = app.of(ExamplesPanel.Changed)[-1]
        assert [e.input for e in changed.examples] == ["b", "a"]


async def test_examples_format_field_and_letters_type_there():
    panel = ExamplesPanel((Example("a", "1"),), id="ex")
    app = Harness(panel)
    async with app.run_test(size=(60, 12)) as pilot:
        field = panel.query_one("#format")
        field.focus()
        field.value = ""
        await pilot.press(*"Q: {input}", "\\", "n", *"A: {output}")
        await pilot.pause()
        assert panel.examples and len(panel.examples) == 1  # 'a' and 'd' were typed, not actions
        assert app.of(ExamplesPanel.Changed)[-1].example_format == "Q: {input}\nA: {output}"


async def test_prompt_panel_spec_modes_and_template():
    panel = PromptPanel(PromptSpec(instruction="Be nice."), id="p")
    app = Harness(panel, css="PromptPanel { height: 30; }")
    async with app.run_test(size=(60, 32)) as pilot:
        panel.focus_prompt()
        await pilot.press(*"안녕 hello")
        await pilot.pause()
        spec = panel.spec(PromptSpec())
        assert spec.mode == "structured" and spec.input == "안녕 hello" and spec.instruction == "Be nice."
        panel.toggle_template()
        panel.set_spec(PromptSpec(mode="freeform", text="Once upon"))
        await pilot.pause()
        spec = panel.spec(PromptSpec())
        assert spec.mode == "freeform" and spec.text == "Once upon" and spec.template == "plain"
        assert app.of(PromptPanel.Changed)


def test_layout_is_incremental_and_keeps_every_character():
    from playground.ui.token_layout import TokenLayout

    layout = TokenLayout(10)
    pieces = ["Hello", " wonder", "ful", " 세계", "\t", "x\x07", "\n", "", "end"]
    for i, piece in enumerate(pieces):
        before = [list(r) for r in layout.rows[:-2]]
        layout.place(i, piece)
        assert [list(r) for r in layout.rows[: len(before)]] == before  # only the tail changes
    assert all(w <= 10 for w in layout.row_width)
    text = "".join(c.text for row in layout.rows for c in row if c.text != "\n")
    assert text.replace(" ", "") == "Hellowonderful세계x\\x07end"  # the bell is shown escaped
    assert len(layout.token_row) == len(pieces)
    assert layout.token_at(layout.x_of(2), layout.token_row[2]) == 2
