"""Branching on the main screen by keys only: pick an alternative, move between paths, step, compare."""

from __future__ import annotations

import pytest

from playground.compare.branch_tree import BranchTree
from playground.params import GenerationRequest, SamplerParams
from playground.ui.app import make_app
from playground.ui.screens.branch_picker import BranchPicker
from playground.ui.widgets.completion import CompletionView
from tests.helpers import collect
from tests.test_ui_app import SIZE, settings, wait_done
from tests.ui_harness import one_thread_engine, until

PROMPT = "The three primary colours are"
SAMPLED = SamplerParams(temperature=0.9, top_k=40, seed=11)


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


def test_the_tree_moves_between_siblings_and_up_and_down():
    tree: BranchTree[str] = BranchTree()
    tree.reset("root")
    a = tree.add(0, 3, "a")
    b = tree.add(0, 3, "b")
    c = tree.add(0, 5, "c")
    assert tree.siblings(a) == [0, a, b] and tree.siblings(c) == [0, c]
    assert tree.branch_points(0) == [3, 5] and tree.branch_points(a) == [3]
    tree.current, tree.point = a, 3
    assert tree.move_sibling(1) == b and tree.move_sibling(1) == 0
    assert tree.siblings() == [0, a, b] and tree.move_sibling(-1) == b  # from the parent, back into the group
    assert tree.up() == 0 and tree.up() == 0 and tree.down() == c and tree.siblings() == [0, c]
    d = tree.add(c, 7, "d")
    assert tree.depth(d) == 2 and tree.up() == c and tree.siblings() == [c, d]


async def test_branch_step_and_side_by_side_by_keys(engine):
    app = make_app(settings(engine, sampler=SAMPLED, max_tokens=10))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        root = screen.record
        assert len(root.tokens) >= 6
        # select token 3 and branch on its second most likely alternative
        await pilot.press("f5", "home", "right", "right", "right")
        assert screen.query_one(CompletionView).selected == 3
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BranchPicker), what="the picker")
        token = root.tokens[3]
        alt = next(a for a in token.top if a.id != token.id)
        index = token.top.index(alt)
        await pilot.press(*(["down"] * index), "enter")
        await until(pilot, lambda: screen.record is not root and screen.record.finished and not screen.running,
                    what="the branch")
        branch = screen.record
        ids = [t.id for t in root.tokens[:3]] + [alt.id]
        assert branch.request.force_ids == tuple(ids)
        assert [t.id for t in branch.tokens[:4]] == ids and all(t.forced for t in branch.tokens[:4])
        assert not any(t.forced for t in branch.tokens[4:])
        # the same branch as an independent run of the engine: token for token, numbers equal
        ref = GenerationRequest(prompt=root.request.prompt, sampler=SAMPLED, max_tokens=10, force_ids=tuple(ids))
        _, ref_tokens, _ = collect(engine.stream(ref))
        assert [t.id for t in branch.tokens] == [t.id for t in ref_tokens]
        assert [t.logprob for t in branch.tokens] == [t.logprob for t in ref_tokens]
        assert branch.done.prompt_tokens_evaluated <= 4  # no prompt token evaluated again
        view = screen.query_one(CompletionView)
        assert 3 in view.branch_points and "branch 2/2 at #3 of 2" in str(view.border_subtitle)
        # move to the other path at this branch point and back
        await pilot.press("left_square_bracket")
        assert screen.record is root and view.branch_points == frozenset({3})
        await pilot.press("right_square_bracket")
        assert screen.record is branch
        # one step: exactly one token more, after the whole shown completion
        await pilot.press("n")
        await until(pilot, lambda: screen.record is not branch and screen.record.finished and not screen.running,
                    what="the step")
        step = screen.record
        assert [t.id for t in step.tokens[:-1]] == [t.id for t in branch.tokens]
        assert len(step.tokens) == len(branch.tokens) + 1 and not step.tokens[-1].forced
        # undo drops it again (nothing runs), then up goes back to the branch
        await pilot.press("backspace")
        assert [t.id for t in screen.record.tokens] == [t.id for t in step.tokens[:-1]]
        await pilot.press("u")
        assert screen.record is step
        await pilot.press("u")
        assert screen.record is branch
        # this branch and its parent side by side
        await pilot.press("x")
        await until(pilot, lambda: type(app.screen).__name__ == "CompareScreen" and not app.screen.running
                    and len(app.screen.records) == 2, what="the compare screen")
        lanes = app.screen.records
        assert [t.id for t in lanes[0].tokens] == [t.id for t in root.tokens]
        assert [t.id for t in lanes[1].tokens] == [t.id for t in branch.tokens]


async def test_branch_keys_are_offered_only_in_the_completion(engine):
    app = make_app(settings(engine, max_tokens=4))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        await pilot.press("f2")  # the prompt: typing "b" types a b
        before = screen.current_spec()
        await pilot.press("b")
        assert screen.current_spec() != before and screen.record.request.force_ids == ()
        assert not isinstance(app.screen, BranchPicker)
