"""The constraint pane: what the output must look like (a JSON schema, a GBNF grammar, a choice list).

Collapsed by default to one row ("Constraint · none"). Open, it holds a kind selector, the text,
and a path field that loads the text from a file. The text is checked as it is edited (debounced):
JSON and choice lists here, purely; a grammar's syntax (and llama.cpp's schema converter) through
``check``, a function the screen passes in (the engine's compiler), so that this widget never needs
the model. An error is shown in the pane with its line; the text is never changed by a check, and a
file that cannot be read leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Collapsible, Input, Select, Static, TextArea

from playground.constraint import MAX_SOURCE, Constraint
from playground.errors import PlaygroundError
from playground.terminal_text import inert_line

#: (label, kind) of the selector; "none" samples freely
KIND_OPTIONS = (("none", "none"), ("JSON schema", "json_schema"), ("grammar (GBNF)", "grammar"), ("choices", "choices"))
LABELS = dict((kind, label) for label, kind in KIND_OPTIONS)
#: a file's kind by its ending, used when the selector says "none"
KIND_OF_SUFFIX = {".json": "json_schema", ".gbnf": "grammar", ".txt": "choices"}
HINTS = {
    "none": "no constraint: the model samples freely",
    "json_schema": "a JSON schema (an object); the output will be JSON that conforms",
    "grammar": "GBNF with a root rule, as llama.cpp reads it",
    "choices": "one choice per line (or a|b|c on one line); the output is exactly one",
}
#: seconds of quiet after an edit before the text is checked
DEBOUNCE_S = 0.3


def build(kind: str, text: str) -> Constraint | None:
    """The constraint of ``kind`` written as ``text`` (None for "none").

    Raises:
        InvalidParameterError: what is wrong with it, with the line where known.
    """
    if kind == "none":
        return None
    if kind == "choices":
        body = text.strip("\r\n")
        if "\n" in body:  # one choice per line; blank lines separate nothing
            return Constraint.of_choices([line.rstrip("\r") for line in body.split("\n") if line.strip("\r")])
        return Constraint.of_choices(body)
    return Constraint(kind, text).validate()  # type: ignore[arg-type]


def choices_text(constraint: Constraint) -> str:
    """A choice list as the pane writes it: one per line."""
    return "\n".join(constraint.choices)


class ConstraintPanel(Vertical):
    """Kind, text and file of the run's constraint; posts ``Changed`` when the result changes."""

    DEFAULT_CSS = """
    ConstraintPanel { height: auto; }
    ConstraintPanel Collapsible { padding: 0; border: none; }
    ConstraintPanel Collapsible > Contents { padding: 0 0 0 1; }
    ConstraintPanel #constraint-kind { width: 1fr; }
    ConstraintPanel #constraint-text { height: 8; }
    ConstraintPanel #constraint-path { height: 3; }
    ConstraintPanel .constraint--hint { color: $text-muted; text-style: italic; height: auto; }
    ConstraintPanel .constraint--error { color: $error; text-style: bold; height: auto; }
    """

    class Changed(Message):
        """The constraint changed: ``constraint`` (None: none, or the text has an error), ``error``."""

        def __init__(self, panel: "ConstraintPanel", constraint: Constraint | None, error: str | None) -> None:
            super().__init__()
            self.panel = panel
            self.constraint = constraint
            self.error = error

        @property
        def control(self) -> "ConstraintPanel":
            return self.panel

    def __init__(self, constraint: Constraint | None = None, *, check: Callable[[Constraint], object] | None = None,
                 id: str | None = None) -> None:
        """``check``: compiles a constraint the way the run will (e.g. the engine's
        ``check_constraint`` for the loaded model), raising PlaygroundError; None checks the text
        only (a grammar's syntax is then reported by the run)."""
        super().__init__(id=id)
        self.check = check
        self._kind = constraint.kind if constraint is not None else "none"
        self._text = (choices_text(constraint) if constraint.kind == "choices" else constraint.source) if constraint else ""
        self._constraint = constraint
        self._error: str | None = None
        self._timer: Timer | None = None
        self._posted: tuple[Constraint | None, str | None] = (constraint, None)

    def compose(self) -> ComposeResult:
        with Collapsible(title=self._title(), collapsed=True, id="constraint-box"):
            yield Select([(label, kind) for label, kind in KIND_OPTIONS], value=self._kind, allow_blank=False,
                         id="constraint-kind")
            yield TextArea(self._text, show_line_numbers=True, soft_wrap=False, id="constraint-text")
            yield Input(placeholder="load from file: path, then enter", id="constraint-path")
            yield Static(HINTS[self._kind], classes="constraint--hint", id="constraint-status")

    def on_mount(self) -> None:
        if self._kind != "none":
            self._validate()  # a constraint given at the start is checked as an edit would be

    # --- what it holds ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self._kind

    @property
    def text(self) -> str:
        return self.query_one("#constraint-text", TextArea).text if self.is_mounted else self._text

    @property
    def constraint(self) -> Constraint | None:
        """The constraint as last checked (None: none, or the text has an error; see ``error``)."""
        return self._constraint

    @property
    def error(self) -> str | None:
        """What is wrong with the text, as shown in the pane; None when it is usable."""
        return self._error

    def current(self) -> Constraint | None:
        """The constraint for a run starting now: checked at once (no waiting for the debounce).

        Raises:
            PlaygroundError: the text has an error (the run must not go ahead unconstrained).
        """
        self._validate()
        if self._error is not None:
            raise PlaygroundError(self._error, title="Constraint")
        return self._constraint

    def set_constraint(self, constraint: Constraint | None) -> None:
        """Show ``constraint`` (a session opened, a workspace restored)."""
        self._kind = constraint.kind if constraint is not None else "none"
        text = (choices_text(constraint) if constraint.kind == "choices" else constraint.source) if constraint else ""
        self.query_one("#constraint-kind", Select).value = self._kind
        self.query_one("#constraint-text", TextArea).load_text(text)
        self._validate()

    # --- checking --------------------------------------------------------------------------------
    def _title(self) -> str:
        state = " · error" if self._error else ""
        return f"Constraint · {LABELS.get(self._kind, self._kind)}{state}"

    def _validate(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        constraint, error = None, None
        try:
            constraint = build(self._kind, self.text)
            if constraint is not None and self.check is not None:
                self.check(constraint)
        except PlaygroundError as exc:
            constraint, error = None, inert_line(exc.message)
        self._constraint, self._error = constraint, error
        status = self.query_one("#constraint-status", Static)
        status.set_classes("constraint--error" if error else "constraint--hint")
        status.update(error or (f"{LABELS[self._kind]} ✓ · {HINTS[self._kind]}" if constraint else HINTS[self._kind]))
        self.query_one("#constraint-box", Collapsible).title = self._title()
        if (constraint, error) != self._posted:
            self._posted = (constraint, error)
            self.post_message(self.Changed(self, constraint, error))

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self._validate)

    @on(Select.Changed, "#constraint-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        event.stop()
        kind = str(event.value)
        if kind != self._kind:
            self._kind = kind
            self._validate()

    @on(TextArea.Changed, "#constraint-text")
    def _text_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._schedule()

    @on(Input.Submitted, "#constraint-path")
    def _load(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value.strip()
        if not raw:
            return
        path = Path(raw).expanduser()
        status = self.query_one("#constraint-status", Static)
        try:
            if path.stat().st_size > MAX_SOURCE * 4:
                raise ValueError(f"larger than {MAX_SOURCE} characters")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            status.set_classes("constraint--error")
            status.update(inert_line(f"cannot read {raw}: {reason}"))  # the text stays as it was
            return
        if self._kind == "none" and path.suffix.lower() in KIND_OF_SUFFIX:
            self._kind = KIND_OF_SUFFIX[path.suffix.lower()]
            with self.prevent(Select.Changed):
                self.query_one("#constraint-kind", Select).value = self._kind
        self.query_one("#constraint-text", TextArea).load_text(text)
        self._validate()
