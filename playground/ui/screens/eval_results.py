"""An eval results file in the TUI: cases x variants, each cell's detail, and human ratings by keys.

Rows are the suite's cases, columns its variants; each grid cell shows the automatic pass/fail,
the predicted choice (or the expected answer's log-probability) and the human rating (``H✓4✎``:
pass, score 4, a note). Every rating is written to the results file at once (``evaluate.ratings``,
atomic, in a thread worker) and the summary lines below the grid count it at once.
``open_results(app, path)`` shows a file on any app; ``EvalResultsApp`` is the screen alone.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from playground.errors import PlaygroundError
from playground.evaluate.ratings import CellKey, Rating, cell_key, human_summary, ratings_of, save_ratings
from playground.evaluate.results import load_results
from playground.terminal_text import inert_line
from playground.themes import APP_VARIABLES
from playground.ui.screens.eval_text import detail, grid_cell, row_label, summary_line


class NoteEditor(ModalScreen[str | None]):
    """A one-line note for a cell: enter keeps it (empty removes it), escape leaves it as it was."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="eval_note_cancel")]

    DEFAULT_CSS = """
    NoteEditor { align: center middle; }
    NoteEditor > Vertical {
        width: 70%; min-width: 40; max-width: 90; height: auto;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    NoteEditor Label { color: $text-muted; }
    """

    def __init__(self, title: str, note: str) -> None:
        super().__init__()
        self.title_text = title
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Note on {self.title_text}")
            yield Input(self.note, placeholder="why it passes or fails", id="eval-note")
            yield Label("enter keeps it · escape cancels")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class EvalResultsScreen(Screen[None]):
    """The cells of one results file, their detail, and human ratings saved as they are given."""

    BINDINGS = [
        Binding("p", "verdict('pass')", "Pass", id="eval_pass"),
        Binding("f", "verdict('fail')", "Fail", id="eval_fail"),
        *(Binding(str(n), f"score({n})", "Score 1-5" if n == 1 else f"Score {n}", show=n == 1, id=f"eval_score_{n}")
          for n in range(1, 6)),
        Binding("n", "note", "Note", id="eval_note"),
        Binding("backspace,delete", "clear", "Clear rating", id="eval_clear"),
        Binding("escape,q", "close", "Close", id="eval_close"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | eval_pass | p | Rate the selected cell a pass (a human verdict). |
    | eval_fail | f | Rate it a fail. |
    | eval_score_1 .. eval_score_5 | 1 .. 5 | Give it a score from 1 (worst) to 5 (best). |
    | eval_note | n | Write a note on it (enter keeps it, an empty note removes it). |
    | eval_clear | backspace, delete | Remove its rating (verdict, score and note). |
    | eval_close | escape, q | Close the results. |
    """

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]

    DEFAULT_CSS = """
    EvalResultsScreen { layout: vertical; }
    EvalResultsScreen #eval-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    EvalResultsScreen #eval-body { height: 1fr; }
    EvalResultsScreen #eval-grid { height: auto; max-height: 50%; min-height: 4; }
    EvalResultsScreen #eval-detail { height: 1fr; border-top: solid $primary; padding: 0 1; }
    EvalResultsScreen.-wide #eval-body { layout: horizontal; }
    EvalResultsScreen.-wide #eval-grid { width: 1fr; height: 1fr; }
    EvalResultsScreen.-wide #eval-detail { width: 1fr; height: 1fr; border-top: none; border-left: solid $primary; }
    EvalResultsScreen #eval-summary { height: auto; max-height: 6; padding: 0 1; background: $panel; }
    """

    def __init__(self, path: str | Path, document: Mapping[str, Any]) -> None:
        super().__init__()
        self.path = Path(path)
        self.document = document
        self.cells: dict[CellKey, Mapping[str, Any]] = {cell_key(c): c for c in document["cells"]}
        self.variants = list(dict.fromkeys(k[0] for k in self.cells))
        self.cases = sorted({k[1] for k in self.cells})
        self.ratings: dict[CellKey, Rating] = ratings_of(document, self.path.name)
        self._lock = threading.Lock()
        self._asked = 0
        """Saves asked for (each carries the ratings as they were then); the last one wins."""
        self._written = 0
        self._close_warned = False

    def compose(self) -> ComposeResult:
        name = inert_line(str(self.document.get("suite") or self.path.stem))
        yield Static(f"{name} · {len(self.cases)} cases × {len(self.variants)} variants · {inert_line(str(self.path))}",
                     id="eval-title", markup=False)
        with Vertical(id="eval-body"):
            yield DataTable(id="eval-grid", cursor_type="cell", zebra_stripes=True)
            with VerticalScroll(id="eval-detail"):
                yield Static(id="eval-cell", markup=False)
        yield Static(id="eval-summary", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        grid = self.query_one(DataTable)
        for variant in self.variants:
            grid.add_column(inert_line(variant)[:24], key=variant)
        for case in self.cases:
            first = next(self.cells[(v, case)] for v in self.variants if (v, case) in self.cells)
            grid.add_row(*(self._grid_cell((v, case)) for v in self.variants), key=str(case),
                         label=row_label(case, first))
        grid.focus()
        self._show_detail()
        self._show_summary()

    # --- what is shown -------------------------------------------------------------------------
    @property
    def selected(self) -> CellKey | None:
        """The cell under the grid's cursor (None for an empty results file)."""
        grid = self.query_one(DataTable)
        if not self.cases or not self.variants:
            return None
        row, column = grid.cursor_coordinate
        return self.variants[column], self.cases[row]

    def _grid_cell(self, key: CellKey):
        return grid_cell(self.cells.get(key), self.ratings.get(key))

    def _show_detail(self) -> None:
        key = self.selected
        text = detail(self.cells.get(key), self.ratings.get(key), *key) if key else "no cells in this results file"
        self.query_one("#eval-cell", Static).update(text)

    def _show_summary(self) -> None:
        auto = self.document.get("summary") or {}
        human = human_summary(self.document["cells"], self.ratings)
        lines = [summary_line(v, auto.get(v) if isinstance(auto, dict) else None, human.get(v)) for v in self.variants]
        summary = lines[0] if lines else "no cells"
        for line in lines[1:]:
            summary.append("\n")
            summary.append_text(line)
        self.query_one("#eval-summary", Static).update(summary)

    def on_data_table_cell_highlighted(self, _event: DataTable.CellHighlighted) -> None:
        self._show_detail()

    # --- ratings -------------------------------------------------------------------------------
    def _rate(self, change: dict[str, Any]) -> None:
        key = self.selected
        if key is None or key not in self.cells:
            self.notify("This cell has no result to rate.", severity="warning")
            return
        old = self.ratings.get(key, Rating())
        rating = Rating(**{"verdict": old.verdict, "score": old.score, "note": old.note, **change})
        if rating == old:
            return
        if rating.empty:
            self.ratings.pop(key, None)
        else:
            self.ratings[key] = rating
        self.query_one(DataTable).update_cell(str(key[1]), key[0], self._grid_cell(key), update_width=True)
        self._show_detail()
        self._show_summary()
        self._asked += 1
        self._save(self._asked, dict(self.ratings))

    @work(thread=True, exit_on_error=False, group="eval-ratings")
    def _save(self, asked: int, ratings: dict[CellKey, Rating]) -> None:
        error = self._write(asked, ratings)
        if error is not None:
            self.app.call_from_thread(self._report, error)

    def _write(self, asked: int, ratings: dict[CellKey, Rating]) -> PlaygroundError | None:
        """Write ``ratings`` unless a later save already did (saves may finish out of order)."""
        with self._lock:
            if asked <= self._written:
                return None
            try:
                save_ratings(self.path, ratings)
            except PlaygroundError as exc:
                return exc
            except OSError as exc:
                return PlaygroundError(f"{self.path}: the ratings were not saved: {exc.strerror or exc}",
                                       title="Ratings")
            self._written = asked
        return None

    def _report(self, error: PlaygroundError) -> None:
        report = getattr(self.app, "report", None)
        if report is not None:
            report(error)
        else:
            self.notify(error.message, title=error.title, severity="error", timeout=10)

    def action_verdict(self, verdict: str) -> None:
        self._rate({"verdict": verdict})

    def action_score(self, score: int) -> None:
        self._rate({"score": score})

    def action_clear(self) -> None:
        self._rate({"verdict": None, "score": None, "note": ""})

    def action_note(self) -> None:
        key = self.selected
        if key is None or key not in self.cells:
            self.notify("This cell has no result to rate.", severity="warning")
            return

        def done(note: str | None) -> None:
            if note is not None and self.selected == key:
                self._rate({"note": note})

        title = f"{inert_line(key[0])} · case {key[1]}"
        self.app.push_screen(NoteEditor(title, self.ratings.get(key, Rating()).note), done)

    def action_close(self) -> None:
        # a save still in its worker: write the last ratings here, so closing never loses one unseen
        if self._asked > self._written and not self._close_warned:
            if (error := self._write(self._asked, dict(self.ratings))) is not None:
                self._close_warned = True  # said once; the next close closes
                self._report(error)
                return
        self.dismiss(None)


def open_results(app: App, path: str | Path) -> EvalResultsScreen | None:
    """Show the results file at ``path`` on ``app`` (its errors reported there; None then)."""
    try:
        document = load_results(path)
        screen = EvalResultsScreen(path, document)
    except PlaygroundError as exc:
        report = getattr(app, "report", None)
        (report or (lambda e: app.notify(e.message, title=e.title, severity="error")))(exc)
        return None
    app.push_screen(screen)
    return screen


class EvalResultsApp(App[int]):
    """The results screen alone (``playground eval --open``, tests): closing it quits with status 0."""

    TITLE = "playground eval results"

    def __init__(self, path: str | Path, document: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.document = document

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        document = self.document if self.document is not None else load_results(self.path)
        self.push_screen(EvalResultsScreen(self.path, document), lambda _: self.exit(0))
