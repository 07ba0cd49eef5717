"""One compare lane: its settings in a header, its tokens tinted by probability, its metrics line.

A lane keeps its events in a ``RunRecord`` (the same record the main screen fills), appends tokens
in per-frame batches like the main completion, and marks the first token where it leaves the
reference lane, with both tokens' probabilities in its header.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from playground.compare.events import Divergence, TokenChoice
from playground.compare.lane_spec import format_lane_spec
from playground.events import StreamEvent, TokenEvent
from playground.params import SamplerParams
from playground.ui.run_record import RunRecord
from playground.ui.text_cells import token_label
from playground.ui.widgets.completion import CompletionView

DIVERGE = "diverge"
"""The colour bucket name of the first divergent token (``completion--diverge``)."""


class LaneCompletion(CompletionView):
    """A completion view that can mark one token as the first divergence."""

    COMPONENT_CLASSES = CompletionView.COMPONENT_CLASSES | {"completion--diverge"}
    """
    | Class | Description |
    | :- | :- |
    | `completion--diverge` | The first token where this lane leaves the reference lane. |
    """

    DEFAULT_CSS = """
    LaneCompletion > .completion--diverge { color: $text; background: $warning 40%; text-style: bold underline; }
    """

    def __init__(self, placeholder: str = "", *, id: str | None = None) -> None:
        super().__init__(placeholder, id=id)
        self.marked: int | None = None
        self._marked_bucket = ""

    def mark(self, index: int | None) -> None:
        """Mark token ``index`` (None: unmark); an index past the end marks nothing."""
        if self.marked is not None and self.marked < len(self._buckets):
            self._buckets[self.marked] = self._marked_bucket
        self.marked = None
        if index is not None and 0 <= index < len(self._buckets):
            self.marked = index
            self._marked_bucket = self._buckets[index]
            self._buckets[index] = DIVERGE
        self._cache.clear()
        self.refresh()

    def clear(self) -> None:
        self.marked = None
        super().clear()


def prob_text(choice: TokenChoice | None) -> str:
    """``'text' p=.31`` for a divergent token (raw probability), or "(ended)"."""
    if choice is None:
        return "(ended)"
    p = "p n/a" if choice.prob is None else f"p={choice.prob:.3f}"
    return f"{escape(token_label(choice.text))} {p}"


def divergence_line(div: Divergence, ref_name: str) -> str:
    """One header line: where this lane left the reference, with both tokens' probabilities."""
    if div.index is None:
        return f"[$success]same tokens as {ref_name}[/]"
    return (f"[$warning]≠ {ref_name} at #{div.index}[/]: {prob_text(div.token)} "
            f"vs {prob_text(div.reference_token)}")


class LanePane(Vertical):
    """A lane: header (settings, divergence), ``LaneCompletion``, metrics line."""

    DEFAULT_CSS = """
    LanePane { width: 1fr; height: 1fr; border: round $foreground 30%; background: $surface;
               border-title-color: $text-muted; border-subtitle-color: $text-muted; }
    LanePane.-selected { border: round $primary; border-title-color: $primary; border-title-style: bold; }
    LanePane > .lane--head { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    LanePane > LaneCompletion { height: 1fr; padding: 0 1; }
    LanePane > .lane--metrics { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, index: int, params: SamplerParams, *, kind: str = "lane", freeze_timings: bool = False) -> None:
        super().__init__()
        self.index = index
        self.kind = kind
        """"lane" or "sample" (a self-consistency sample), for the title."""
        self.params = params
        self.freeze_timings = freeze_timings
        self.record = RunRecord()
        self.divergence: Divergence | None = None
        self.note = ""
        self.where = ""
        """Where the lane runs when not on the compare engine ("model X" / "backend Y"); empty: there."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="lane--head")
        yield LaneCompletion("ctrl+g runs all lanes")
        yield Static("", classes="lane--metrics")

    def on_mount(self) -> None:
        self.refresh_head()
        self.refresh_metrics()

    @property
    def completion(self) -> LaneCompletion:
        return self.query_one(LaneCompletion)

    # --- content ---------------------------------------------------------------------------
    def set_params(self, params: SamplerParams, where: str | None = None) -> None:
        self.params = params
        if where is not None:
            self.where = where
        self.refresh_head()

    def reset(self, record: RunRecord) -> None:
        """Empty the lane for a new run (or a session) held in ``record``."""
        self.record = record
        self.divergence = None
        self.note = ""
        self.completion.clear()
        self.refresh_head()
        self.refresh_metrics()

    def feed(self, events: Sequence[StreamEvent]) -> None:
        """This frame's events of this lane: recorded, tokens appended in one batch."""
        tokens: list[TokenEvent] = []
        for event in events:
            self.record.add(event)
            if isinstance(event, TokenEvent):
                tokens.append(event)
        if tokens:
            self.completion.append_events(tokens)

    def set_divergence(self, div: Divergence | None, ref_name: str = "lane 1") -> None:
        self.divergence = div
        self.completion.mark(div.index if div is not None else None)
        self.refresh_head()

    def mark_first(self, index: int | None, note: str) -> None:
        """For the reference lane: mark the earliest divergence of any lane."""
        self.completion.mark(index)
        self.note = note
        self.refresh_head()

    # --- header and metrics ----------------------------------------------------------------
    def refresh_head(self) -> None:
        self.border_title = f"{self.kind} {self.index + 1}"
        seed = self.record.done.seed if self.record.done is not None else None
        label = escape(format_lane_spec(self.params))
        if seed is not None and not self.params.is_greedy and self.params.seed < 0:
            label += f" (seed used {seed})"
        lines = [f"[b]{label}[/b]" + (f" · {escape(self.where)}" if self.where else "")]
        if self.divergence is not None:
            lines.append(divergence_line(self.divergence, "lane 1"))
        elif self.note:
            lines.append(self.note)
        if self.is_mounted:
            self.query_one(".lane--head", Static).update("\n".join(lines))

    def refresh_metrics(self) -> None:
        record = self.record
        done = record.done
        rate = done.decode_tok_s if done is not None else record.live_rate()
        ppl = record.perplexity()
        tok_s = "—" if self.freeze_timings or not rate else f"{rate:.1f}"
        ppl_s = "—" if ppl is None or not math.isfinite(ppl) else f"{ppl:.2f}"
        end = ""
        if done is not None:
            end = {"stop": " · end", "length": " · max", "cancelled": " · cancelled"}.get(done.finish_reason, "")
        elif record.failed is not None:
            end = " · failed"
        line = f"tokens [b]{len(record.tokens)}[/b]  tok/s [b]{tok_s}[/b]  ppl [b]{ppl_s}[/b]{end}"
        if self.is_mounted:
            self.query_one(".lane--metrics", Static).update(line)

    def select(self, on: bool) -> None:
        self.set_class(on, "-selected")
