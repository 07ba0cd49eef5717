"""The TUI half of structured output, on real constrained runs of the embedded model: the
constraint pane, the inspector's constraint line, overridden tokens in the completion, forbidden
tokens in the distribution view, and the check of the finished output."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from textual.widgets import Input, Select, TextArea

from playground.constraint import Constraint, check_output
from playground.engine.constraint import check_constraint, to_gbnf
from playground.events import DoneEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.sampling import reshape
from playground.ui.text_cells import token_label
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.constraint_panel import ConstraintPanel
from playground.ui.widgets.distribution import DistributionView, removed_percent
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.structured_view import StructuredView
from tests.test_constraints import grammar_allows
from tests.ui_harness import Harness, one_thread_engine, until

SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}, "score": {"type": "integer"}},
    "required": ["sentiment", "score"],
    "additionalProperties": False,
}
PROMPT = "Review: I loved this film, the acting was superb.\nClassify it as JSON:"
PARAMS = SamplerParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=2)
DIST = 64


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


@pytest.fixture(scope="module")
def run(engine):
    """Tokens and the end of one JSON-schema run (long enough to finish)."""
    c = Constraint.json_schema(json.dumps(SCHEMA))
    events = list(engine.stream(GenerationRequest(PROMPT, PARAMS, max_tokens=60, top_n=5, constraint=c), dist_size=DIST))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert isinstance(events[-1], DoneEvent) and tokens
    return c, tokens, events[-1]


def text_of(tokens, done) -> str:
    return "".join(t.text for t in tokens) + done.tail


# --- core: the head's allowed mask --------------------------------------------------------------

def test_the_heads_allowed_mask_is_the_grammars(engine, run):
    """The mask on the head agrees with an independent llama.cpp grammar sampler at each step."""
    c, tokens, _ = run
    gbnf = to_gbnf(c)
    for k, t in enumerate(tokens[:12]):
        allowed = grammar_allows(engine.model, gbnf, [x.id for x in tokens[:k]])
        assert np.array_equal(t.dist.allowed, np.isin(t.dist.ids, allowed)), k
        assert t.dist.n_allowed == allowed.size
        assert t.dist.allowed_mass == pytest.approx(1.0 - t.constraint_mass_removed)
    assert any(not t.dist.allowed.all() for t in tokens)  # the grammar forbade some of the head
    free = next(e for e in engine.stream(GenerationRequest("Hi", PARAMS, max_tokens=1), dist_size=8)
                if isinstance(e, TokenEvent))
    assert free.dist.allowed is None and free.dist.allowed_only() is None


# --- inspector ----------------------------------------------------------------------------------

async def test_inspector_states_the_mass_removed_and_what_the_model_wanted(run):
    _, tokens, _ = run
    inspector = TokenInspector()
    app = Harness(inspector, css="TokenInspector { width: 100; height: 20; }")
    async with app.run_test(size=(110, 24)) as pilot:
        over = next(t for t in tokens if t.unconstrained_id is not None)
        inspector.show(over, PARAMS, count=len(tokens))
        await pilot.pause()
        shown = str(inspector.render())
        expected = (f"grammar removed {removed_percent(over.constraint_mass_removed)} of the mass; "
                    f"the model wanted {token_label(over.unconstrained_text)}")
        assert expected in shown
        # the number is the event's own, independently of the formatter
        for t in tokens:
            inspector.show(t, PARAMS, count=len(tokens))
            await pilot.pause()
            got = re.search(r"grammar removed (>?)([\d.]+)% of the mass", str(inspector.render()))
            value = float(got.group(2)) / 100
            if got.group(1):
                assert 0.999 < t.constraint_mass_removed < 1.0
            else:
                assert value == pytest.approx(t.constraint_mass_removed, abs=max(0.0005, value * 0.005))
        agreed = next(t for t in tokens if t.unconstrained_id is None)
        inspector.show(agreed, PARAMS, count=len(tokens))
        await pilot.pause()
        assert f"grammar removed {removed_percent(agreed.constraint_mass_removed)} of the mass; the model's own pick agreed" \
            in str(inspector.render())
        free = TokenEvent(0, 5, "x", -0.1, 1.0, (), 0.0)
        inspector.show(free, PARAMS)
        await pilot.pause()
        assert "grammar removed" not in str(inspector.render())


# --- completion -------------------------------------------------------------------------------

async def test_overridden_tokens_are_marked_exactly_where_the_constraint_overrode(run):
    _, tokens, _ = run
    view = CompletionView()
    app = Harness(view, css="CompletionView { width: 60; height: 20; }")
    async with app.run_test(size=(70, 24)) as pilot:
        view.append_events(tokens[:5])
        view.append_events(tokens[5:])  # two batches: indices continue across them
        await pilot.pause()
        expected = {k for k, t in enumerate(tokens) if t.unconstrained_id is not None}
        assert expected and view.overridden == expected
        # the mark reaches the screen: overridden tokens render italic, the others do not
        italic = set()
        for y in range(view.row_count):
            for chunk, segment in zip(view.layout.rows[y], view.render_line(y)):
                if chunk.index >= 0 and segment.style is not None and segment.style.italic:
                    italic.add(chunk.index)
        assert italic == expected
        view.mark_branch_points([0])  # branch marks and selection still apply on top
        view.selected = 1
        await pilot.pause()
        assert view.branch_points == {0} and view.overridden == expected
        view.clear()
        assert view.overridden == frozenset()


# --- distribution -------------------------------------------------------------------------------

async def test_distribution_strikes_forbidden_tokens_and_reshapes_the_allowed_ones(engine, run):
    _, tokens, _ = run
    # a step where the grammar forbade tokens of the head but allowed some of it too
    k, t = next((k, t) for k, t in enumerate(tokens) if 0 < t.dist.allowed.sum() < t.dist.ids.size and not t.dist.allowed[0])
    view = DistributionView(PARAMS)
    view.token_text = engine.model.piece_text
    app = Harness(view, css="DistributionView { width: 100; height: 40; }")
    async with app.run_test(size=(110, 44)) as pilot:
        view.show(t.dist, [x.id for x in tokens[:k]], chosen=t.id, position=k)
        await pilot.pause()
        # the sampled distribution is the chain's over the allowed tokens only
        sub = t.dist.allowed_only()
        assert set(view.shaped.ids.tolist()) <= set(t.dist.ids[t.dist.allowed].tolist())
        expected = reshape(sub, PARAMS, [x.id for x in tokens[:k]])
        assert np.allclose(view.shaped.final_probs, expected.final_probs)
        if t.id in view.shaped.ids:  # T = 1, no truncation: the engine's p_sampled is the view's
            assert float(view.shaped.final_probs[list(view.shaped.ids).index(t.id)]) == pytest.approx(t.p_sampled, rel=1e-3)
        text = view.render()
        forbidden_top = engine.model.piece_text(int(t.dist.ids[0]))
        struck = [text.plain[span.start:span.end] for span in text.spans if "strike=True" in repr(span.style)]
        assert any(token_label(forbidden_top)[:8] in piece for piece in struck)  # the most likely, forbidden
        first = next(line for line in text.plain.split("\n") if line.startswith("  1 "))
        assert first.rstrip().endswith("forbidden")  # no sampled bar for it
        for k_row in np.flatnonzero(t.dist.allowed)[:5]:  # allowed tokens are not struck
            label = token_label(engine.model.piece_text(int(t.dist.ids[k_row])))
            assert not any(label in piece for piece in struck), label
        assert f"grammar: {t.dist.n_allowed} of {t.dist.n_vocab} allowed" in text.plain
        # a free run draws as before: nothing struck
        free = next(e for e in engine.stream(GenerationRequest("Hi", PARAMS, max_tokens=1), dist_size=16)
                    if isinstance(e, TokenEvent))
        view.show(free.dist, chosen=free.id, position=0)
        await pilot.pause()
        assert not any("strike" in str(span.style) for span in view.render().spans)


# --- the finished output ------------------------------------------------------------------------

async def test_structured_view_shows_pretty_json_or_the_cut_off_reason(engine, run):
    c, tokens, done = run
    view = StructuredView()
    app = Harness(view)
    async with app.run_test(size=(80, 24)) as pilot:
        assert not view.display
        result = view.show_run(c, text_of(tokens, done), done.finish_reason, done.stop_string)
        await pilot.pause()
        assert result.status == "valid", text_of(tokens, done)
        shown = str(view.render())
        assert shown.startswith("✓ valid · JSON schema")
        assert json.dumps(json.loads(text_of(tokens, done)), indent=2) in shown  # pretty, 2-space indent
        assert view.display
        # the same prompt with too few tokens: cut off at max tokens, and said so
        events = list(engine.stream(GenerationRequest(PROMPT, PARAMS, max_tokens=4, constraint=c)))
        short = [e for e in events if isinstance(e, TokenEvent)]
        end = events[-1]
        assert end.finish_reason == "length"
        view.show_run(c, text_of(short, end), end.finish_reason)
        await pilot.pause()
        shown = str(view.render())
        assert shown.startswith("✂ cut off · JSON schema: max tokens reached")
        assert view.result == check_output(c, text_of(short, end), "length")
        # model text is inert: a control character in an invalid choice is shown escaped
        ch = Constraint.of_choices(("yes", "no"))
        view.show_run(ch, "ma\x1b]0;x", "stop")
        await pilot.pause()
        shown = str(view.render())
        assert shown.startswith("✗ invalid · choice list") and "\x1b" not in shown and "\\x1b" in shown
        view.show_run(None, "anything", "stop")
        assert not view.display


# --- the pane -------------------------------------------------------------------------------------

async def test_constraint_pane_checks_as_you_type_and_never_loses_the_text(engine, tmp_path):
    panel = ConstraintPanel(check=lambda c: check_constraint(engine.model, c))
    app = Harness(panel, css="ConstraintPanel { width: 40; }")
    async with app.run_test(size=(80, 24)) as pilot:
        box = panel.query_one("#constraint-box")
        assert box.title == "Constraint · none" and box.collapsed
        assert panel.outer_size.height <= 2  # collapsed: one row in the left column
        box.collapsed = False
        await pilot.pause()
        panel.query_one("#constraint-kind", Select).value = "json_schema"
        area = panel.query_one("#constraint-text", TextArea)
        area.load_text('{"type": "object",\n  "properties": {"a": }\n}')
        await until(pilot, lambda: panel.error is not None, "the schema error")
        status = str(panel.query_one("#constraint-status").render())
        assert "line 2 column 23" in status and panel.constraint is None
        assert box.title == "Constraint · JSON schema · error"
        assert area.text == '{"type": "object",\n  "properties": {"a": }\n}'  # the text is kept
        with pytest.raises(Exception, match="line 2 column 23"):
            panel.current()  # a run refuses rather than going ahead unconstrained
        area.load_text(json.dumps(SCHEMA))
        await until(pilot, lambda: panel.constraint is not None, "the fixed schema")
        assert panel.constraint == Constraint.json_schema(json.dumps(SCHEMA)) and panel.error is None
        changed = app.of(ConstraintPanel.Changed)
        assert changed[-1].constraint == panel.constraint and changed[-1].error is None
        # a grammar error comes from the compiler the screen passed in: line and what is wrong
        panel.query_one("#constraint-kind", Select).value = "grammar"
        area.load_text('root ::= "ok"\nx ::= (')
        await until(pilot, lambda: panel.error is not None, "the grammar error")
        assert "line 2 column 8: expecting ')'" in panel.error
        # choices, one per line
        panel.query_one("#constraint-kind", Select).value = "choices"
        area.load_text("yes\nno\n")
        await until(pilot, lambda: panel.constraint is not None, "the choices")
        assert panel.constraint.choices == ("yes", "no")
        # loaded from a file; an unreadable path leaves the text as it was
        path = tmp_path / "g.gbnf"
        path.write_text('root ::= "a" | "b"\n')
        field = panel.query_one("#constraint-path", Input)
        field.value = str(tmp_path / "missing.gbnf")
        await field.action_submit()
        await pilot.pause()
        assert "cannot read" in str(panel.query_one("#constraint-status").render()) and area.text == "yes\nno\n"
        panel.query_one("#constraint-kind", Select).value = "none"
        await pilot.pause()
        field.value = str(path)
        await field.action_submit()
        await until(pilot, lambda: panel.constraint is not None and panel.kind == "grammar", "the loaded grammar")
        assert panel.constraint == Constraint.grammar('root ::= "a" | "b"\n') and area.text == path.read_text()
        assert box.title == "Constraint · grammar (GBNF)"


async def test_the_main_screen_runs_with_the_panes_constraint_and_checks_the_output(engine):
    """Wired end to end: the pane's choices reach the request, the run keeps to them, the check shows."""
    from playground.ui.app import make_app
    from playground.ui.widgets.constraint_panel import ConstraintPanel
    from playground.ui.widgets.structured_view import StructuredView
    from tests.test_ui_app import SIZE, settings, wait_done

    app = make_app(settings(engine, max_tokens=8))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        panel = screen.query_one(ConstraintPanel)
        panel.set_constraint(Constraint("choices", "red|green|blue", ("red", "green", "blue")).validate())
        await pilot.pause()
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        record = screen.record
        assert record.request.constraint is not None and record.request.constraint.kind == "choices"
        assert record.text.strip() in ("red", "green", "blue")
        view = screen.query_one(StructuredView)
        assert view.display and view.result is not None and view.result.status == "valid"
        assert any(t.constraint_mass_removed is not None for t in record.tokens)
