"""Branching on the main screen: take another token anywhere, step one token, move in the tree.

A mixin of ``MainScreen`` (its keys work while the completion has the focus). Every branch is an
ordinary run of the one pipeline: the same prompt with ``force_ids`` = the first ``i`` tokens of
the shown completion plus the chosen token, generated with the current sliders; the engine reuses
the KV cache of the shared prefix exactly (``engine/forced.py``), so no prompt token is evaluated
again. The runs form a ``compare.branch_tree.BranchTree``; the completion marks where branches
leave it, ``[`` / ``]`` move between the paths taken at one branch point, ``u`` / ``o`` go up to the
parent and down to the newest child, ``x`` opens this path and its parent side by side.
"""

from __future__ import annotations

import dataclasses
import time

from textual.binding import Binding

from playground.compare.branch_tree import BranchTree
from playground.errors import PlaygroundError
from playground.events import DoneEvent
from playground.sessions.record import utc_now
from playground.ui.run_record import RunRecord
from playground.ui.screens.branch_picker import BranchChoice, BranchPicker
from playground.ui.widgets.completion import CompletionView

BRANCH_ACTIONS = {"branch", "sibling", "branch_up", "branch_down", "step", "continue_here", "undo_step", "branch_compare"}
"""Actions that act on the completion: offered only while it has the focus."""

BRANCH_BINDINGS = [
    Binding("b", "branch", "Branch", show=False, id="branch"),
    Binding("n", "step", "Step", show=False, id="step"),
    Binding("c", "continue_here", "Continue", show=False, id="continue_here"),
    Binding("backspace", "undo_step", "Undo token", show=False, id="undo_step"),
    Binding("left_square_bracket", "sibling(-1)", "Prev branch", show=False, id="branch_prev"),
    Binding("right_square_bracket", "sibling(1)", "Next branch", show=False, id="branch_next"),
    Binding("u", "branch_up", "Parent branch", show=False, id="branch_up"),
    Binding("o", "branch_down", "Child branch", show=False, id="branch_down"),
    Binding("x", "branch_compare", "Branches side by side", show=False, id="branch_compare"),
]
"""
| Id | Key(s) | Description |
| :- | :- | :- |
| branch | b | Branch at the selected token: pick an alternative (or type text) and generate from there. |
| step | n | Step mode: generate one more token after the shown completion. |
| continue_here | c | Generate from the end of the shown completion (or after the selected token). |
| undo_step | backspace | Drop the last token of the shown completion (kept as a branch; `n` steps on from there). |
| branch_prev / branch_next | [ / ] | The other paths taken at this branch point. |
| branch_up / branch_down | u / o | The parent branch / the newest child branch. |
| branch_compare | x | This branch and its parent side by side on the compare screen. |
"""


class BranchActions:
    """Branch, step and move in the tree of runs; mixed into ``MainScreen``."""

    run_tree: BranchTree[RunRecord]

    def branch_keys_active(self) -> bool:
        return isinstance(self.focused, CompletionView)

    # --- starting a branch -----------------------------------------------------------------
    def _branchable(self) -> RunRecord | None:
        """The shown run, if a branch can start from it (a finished local run made here)."""
        record = self.record
        if self.running:
            self.notify("A run is going on; escape stops it first.", severity="warning")
            return None
        if record.request is None or record.start is None:
            self.notify("Branching starts from a run made here: ctrl+g first.", severity="warning")
            return None
        if self.settings.endpoint is not None:
            self.notify("Branching needs the local model: a remote server cannot continue from given tokens.",
                        severity="warning")
            return None
        return record

    def _selected_index(self) -> int | None:
        view = self.query_one(CompletionView)
        if not self.record.tokens:
            return None
        index = view.selected
        return len(self.record.tokens) - 1 if index is None else index

    def action_branch(self) -> None:
        record = self._branchable()
        index = self._selected_index()
        if record is None or index is None:
            return
        token = record.tokens[index]
        if not token.top:
            self.notify("This token has no alternatives recorded.", severity="warning")
            return

        def chosen(choice: BranchChoice | None) -> None:
            if choice is not None:
                self._branch_with(record, index, choice)

        self.app.push_screen(BranchPicker(token, index), chosen)

    def _branch_with(self, record: RunRecord, at: int, choice: BranchChoice) -> None:
        if choice.token_id is not None:
            tail = [choice.token_id]
        else:
            tail = self.engine.model.tokenize(choice.text or "", add_special=False)
            if not tail:
                self.notify("That text has no tokens.", severity="warning")
                return
        ids = [t.id for t in record.tokens[:at]] + tail
        self.start_branch(record, at, ids, choice.label)

    def start_branch(self, record: RunRecord, at: int, force_ids: list[int], label: str,
                     max_tokens: int | None = None) -> None:
        """Run ``record``'s prompt with ``force_ids`` first, then the current sliders; a new branch."""
        try:
            request = dataclasses.replace(
                record.request, sampler=self.sampler, stop=self.stop, force_ids=tuple(force_ids),
                max_tokens=max_tokens if max_tokens is not None else self.max_tokens,
            ).validate()
        except PlaygroundError as exc:
            self.app.report(exc)
            return
        parent = self.run_tree.current
        branch = RunRecord(source="live", request=request, spec=record.spec, backend=record.backend,
                           started_utc=utc_now(), t_start=time.monotonic())
        self.run_tree.add(parent, at, branch, label)
        self.run_request(request, branch)

    def action_step(self) -> None:
        """One more token after the whole shown completion (the sampler picks; ``b`` replaces it)."""
        record = self._branchable()
        if record is None:
            return
        ids = [t.id for t in record.tokens]
        self.start_branch(record, len(ids), ids, "step", max_tokens=1)

    def action_continue_here(self) -> None:
        """Generate from the selected token on (the end when following), with the current sliders."""
        record = self._branchable()
        index = self._selected_index()
        if record is None:
            return
        end = len(record.tokens) if index is None else index + 1
        ids = [t.id for t in record.tokens[:end]]
        self.start_branch(record, end, ids, "continued")

    def action_undo_step(self) -> None:
        """The shown completion without its last token, as a branch of its own (nothing is lost:
        the longer one stays in the tree). Nothing runs: its tokens are the shown run's own."""
        record = self._branchable()
        if record is None or len(record.tokens) < 2:
            return
        kept = record.tokens[:-1]
        undone = RunRecord(source="live", request=dataclasses.replace(record.request, force_ids=tuple(t.id for t in kept)),
                           spec=record.spec, backend=record.backend, started_utc=record.started_utc)
        undone.start, undone.tokens = record.start, list(kept)
        undone.end = DoneEvent("cancelled", len(kept), None, None, None, seed=record.done.seed if record.done else None)
        self.run_tree.add(self.run_tree.current, len(kept), undone, "undo")
        self.show_record(undone)

    # --- moving ----------------------------------------------------------------------------
    def _show_branch(self) -> None:
        shown = self.run_tree.shown
        if shown is None:
            return
        self.show_record(shown.payload)

    def action_sibling(self, delta: int) -> None:
        if self.running or len(self.run_tree) < 2:
            return
        self.run_tree.move_sibling(delta)
        self._show_branch()

    def action_branch_up(self) -> None:
        if not self.running and len(self.run_tree) > 1:
            self.run_tree.up()
            self._show_branch()

    def action_branch_down(self) -> None:
        if not self.running and len(self.run_tree) > 1:
            self.run_tree.down()
            self._show_branch()

    def branch_line(self) -> str:
        """Where the shown branch sits, for the completion's subtitle ("" without branches)."""
        if len(self.run_tree) < 2:
            return ""
        shown = self.run_tree.shown
        group = self.run_tree.siblings()
        at = f" at #{shown.at}" if shown.parent is not None else " root"
        depth = self.run_tree.depth()
        deeper = f" · depth {depth}" if depth > 1 else ""
        return f"branch {group.index(self.run_tree.current) + 1}/{len(group)}{at}{deeper} of {len(self.run_tree)}"

    async def action_branch_compare(self) -> None:
        """The shown branch and its parent (or first sibling) side by side on the compare screen."""
        shown = self.run_tree.shown
        if self.running or shown is None or len(self.run_tree) < 2:
            self.notify("Make a branch first (b).", severity="warning")
            return
        other = shown.parent if shown.parent is not None else self.run_tree.children(self.run_tree.current)[-1]
        records = [self.run_tree.branches[other].payload, shown.payload]
        await self.app.show_records_side_by_side(records, f"branches at #{shown.at}")
