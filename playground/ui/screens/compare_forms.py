"""Small forms of the compare screen: edit one lane's sampler (and model or backend), set up a self-consistency vote.

Each is a modal that returns its result (or None when dismissed); bad input is shown in the form
itself, with the core's error message, and the form stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from playground.compare.extract import Extractor, make_extractor
from playground.compare.lane_spec import SPEC_HELP, LaneSpec, parse_lane
from playground.compare.run import MAX_SAMPLES
from playground.errors import PlaygroundError
from playground.params import SamplerParams

FORM_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 84; height: auto; border: round $primary; background: $surface; padding: 0 1; }}
{name} Label {{ margin-top: 1; color: $text-muted; }}
{name} .form--error {{ color: $error; height: auto; }}
{name} .form--help {{ color: $text-disabled; height: auto; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 1; }}
"""


def full_spec(params: SamplerParams, backend: str | None = None, model: str | None = None) -> str:
    """Every setting of ``params`` (and where the lane runs) as a lane spec (what the edit form starts from)."""
    parts = [f"temp={params.temperature:g}", f"top_k={params.top_k}", f"top_p={params.top_p:g}",
             f"min_p={params.min_p:g}", f"repeat_penalty={params.repeat_penalty:g}",
             f"repeat_last_n={params.repeat_last_n}", f"seed={params.seed}"]
    if params.greedy:
        parts.append("greedy")
    if backend is not None:
        parts.append(f"backend={backend}")
    if model is not None:
        parts.append(f"model={model}")
    return ",".join(parts)


class LaneEditScreen(ModalScreen[LaneSpec | None]):
    """Edit a lane as a lane spec (``temp=0.7,top_k=40,seed=1``, optionally ``model=PATH``/``backend=NAME``)."""

    DEFAULT_CSS = FORM_CSS.format(name="LaneEditScreen")
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel", id="lane_edit_cancel")]

    def __init__(self, title: str, params: SamplerParams, backend: str | None = None, model: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.params = params
        self.backend, self.model = backend, model

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]{escape(self.title_text)}[/b] — sampler settings, optional model/backend (enter applies, escape cancels)")
            yield Input(full_spec(self.params, self.backend, self.model), id="lane-spec")
            yield Static("", classes="form--error")
            yield Static(escape(SPEC_HELP) + "; seed=-1 is random", classes="form--help")
            with Horizontal():
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        spec = self.query_one("#lane-spec", Input).value
        try:
            # The form shows every setting, so the text is read on top of the defaults, not the old lane.
            lane = parse_lane(spec, SamplerParams())
        except PlaygroundError as exc:
            self.query_one(".form--error", Static).update(escape(exc.message))
            return
        self.dismiss(lane)

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class VoteSetup:
    """What a self-consistency run asks for."""

    n: int
    extractor_name: str
    extractor: Extractor
    kind: str
    """"regex", "last_number" or "json_field" (the session schema's names)."""
    pattern: str | None


class VoteSetupScreen(ModalScreen[VoteSetup | None]):
    """N samples and an answer extractor."""

    DEFAULT_CSS = FORM_CSS.format(name="VoteSetupScreen")
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel", id="vote_setup_cancel")]

    KINDS = [("last number", "last_number"), ("regular expression (group 1 if any)", "regex"),
             ("JSON field (dotted path)", "json_field")]

    def __init__(self, settings_label: str, n: int = 8, kind: str = "last_number", pattern: str = "") -> None:
        super().__init__()
        self.settings_label = settings_label
        self.n, self.kind, self.pattern = n, kind, pattern

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]Self-consistency[/b] — N samples of {escape(self.settings_label)}")
            if self.settings_label.startswith("greedy"):
                yield Static("greedy: every sample will be the same (select a sampled lane first)", classes="form--error")
            yield Label(f"samples (1–{MAX_SAMPLES})")
            yield Input(str(self.n), id="vote-n", type="integer")
            yield Label("answer extractor")
            yield Select(self.KINDS, value=self.kind, allow_blank=False, id="vote-kind")
            yield Label("pattern or field (regex / JSON field)")
            yield Input(self.pattern, id="vote-pattern")
            yield Static("", classes="form--error")
            with Horizontal():
                yield Button("Run", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        error = self.query(".form--error").last(Static)
        raw_n = self.query_one("#vote-n", Input).value.strip()
        kind = str(self.query_one("#vote-kind", Select).value)
        pattern = self.query_one("#vote-pattern", Input).value
        if not raw_n.isdigit() or not 1 <= int(raw_n) <= MAX_SAMPLES:
            error.update(f"samples must be a whole number from 1 to {MAX_SAMPLES}")
            return
        if kind != "last_number" and not pattern:
            error.update("this extractor needs a pattern or field")
            return
        try:
            name, extractor = make_extractor(regex=pattern if kind == "regex" else None,
                                             last_num=kind == "last_number",
                                             json_field=pattern if kind == "json_field" else None)
        except PlaygroundError as exc:
            error.update(escape(exc.message))
            return
        self.dismiss(VoteSetup(int(raw_n), name, extractor, kind, pattern if kind != "last_number" else None))

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
