"""The completion: streamed tokens tinted by probability, with a movable token selection.

Built on the Line API: tokens are laid out into rows incrementally as they arrive (only the last
row is touched by an append), and only visible rows are rendered, from a per-row cache. A whole
completion is never re-rendered per token.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from playground.events import TokenEvent
from playground.ui.token_layout import MARKER, NEWLINE, TokenLayout

#: probability thresholds of the colour buckets (raw p, T = 1)
BUCKETS = ((0.5, "high"), (0.2, "mid"), (0.05, "low"), (0.0, "very-low"))


def bucket(prob: float | None) -> str:
    """The colour bucket of a raw probability ("unknown" when the backend gives none)."""
    if prob is None:
        return "unknown"
    return next(name for limit, name in BUCKETS if prob >= limit)


class CompletionView(ScrollView, can_focus=True):
    """Shows a completion token by token; ``selected`` is a token index (None = follow the end)."""

    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("up", "row(-1)", "Row up", show=False),
        Binding("down", "row(1)", "Row down", show=False),
        Binding("home", "first", "First token", show=False),
        Binding("end", "follow", "Follow end", show=False),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | left / right | Select the previous / next token. |
    | up / down | Select the token above / below. |
    | home | Select the first token. |
    | end | Follow the newest token. |
    """

    COMPONENT_CLASSES = {
        "completion--high", "completion--mid", "completion--low", "completion--very-low",
        "completion--unknown", "completion--selected", "completion--marker", "completion--placeholder",
        "completion--branch", "completion--overridden",
    }
    """
    | Class | Description |
    | :- | :- |
    | `completion--high` .. `completion--very-low` | Tokens by raw probability (>= .5, .2, .05, below). |
    | `completion--unknown` | Tokens whose probability the backend does not give. |
    | `completion--selected` | The selected token. |
    | `completion--marker` | Notes such as "[cancelled]". |
    | `completion--placeholder` | The hint shown while empty. |
    | `completion--branch` | A token where another branch of the completion takes a different one. |
    | `completion--overridden` | A token the constraint chose where the model wanted another. |
    """

    DEFAULT_CSS = """
    CompletionView { background: $surface; scrollbar-gutter: stable; }
    CompletionView > .completion--high { color: $prob-high; }
    CompletionView > .completion--mid { color: $prob-mid; }
    CompletionView > .completion--low { color: $prob-low; }
    CompletionView > .completion--very-low { color: $prob-very-low; text-style: underline; }
    CompletionView > .completion--unknown { color: $text; }
    CompletionView > .completion--selected { background: $token-selected; text-style: bold reverse; }
    CompletionView:focus > .completion--selected { background: $token-selected; text-style: bold reverse; }
    CompletionView > .completion--marker { color: $warning; text-style: italic; }
    CompletionView > .completion--placeholder { color: $text-disabled; text-style: italic; }
    CompletionView > .completion--branch { text-style: bold underline; background: $accent 30%; }
    CompletionView > .completion--overridden { text-style: italic; background: $warning 25%; }
    """

    selected: reactive[int | None] = reactive(None, init=False)

    class Selected(Message):
        """The selection moved to token ``index`` (None: following the newest token)."""

        def __init__(self, view: "CompletionView", index: int | None) -> None:
            super().__init__()
            self.view = view
            self.index = index

        @property
        def control(self) -> "CompletionView":
            return self.view

    def __init__(self, placeholder: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.placeholder = placeholder
        self._texts: list[str] = []
        self._buckets: list[str] = []
        self._layout: TokenLayout | None = None
        self._cache: dict[int, Strip] = {}
        self._branch_points: frozenset[int] = frozenset()
        self._overridden: set[int] = set()

    # --- content ---------------------------------------------------------------------------
    @property
    def layout(self) -> TokenLayout:
        """The rows (created at the first append, when the width is known)."""
        if self._layout is None:
            self._layout = TokenLayout(self._width())
        return self._layout

    @property
    def token_count(self) -> int:
        return len(self._texts)

    @property
    def row_count(self) -> int:
        return len(self.layout.rows)

    def clear(self) -> None:
        self._texts.clear()
        self._buckets.clear()
        self._layout = None
        self._cache.clear()
        self._branch_points = frozenset()
        self._overridden = set()
        self.set_reactive(CompletionView.selected, None)
        self._update_size(follow=True)

    def append_events(self, tokens: Iterable[TokenEvent]) -> None:
        """Append tokens (one batch per frame); rows before the last one are not touched.

        A token the constraint overrode (``unconstrained_id`` set) is marked ``completion--overridden``."""
        tokens = list(tokens)
        start = len(self._texts)
        self._overridden.update(start + k for k, t in enumerate(tokens) if t.unconstrained_id is not None)
        self.append_pieces((t.text, t.prob) for t in tokens)

    def append_pieces(self, pieces: Iterable[tuple[str, float | None]]) -> None:
        """Append (text, raw probability) pairs."""
        at_end = self.scroll_y >= self.max_scroll_y - 1
        layout = self.layout
        first_row = len(layout.rows) - 1
        for text, prob in pieces:
            layout.place(len(self._texts), text)
            self._texts.append(text)
            self._buckets.append(bucket(prob))
        self._changed_from(first_row, follow=at_end)

    def append_marker(self, text: str) -> None:
        """Append a note that is not model output, e.g. "[interrupted: ...]"."""
        layout = self.layout
        first_row = len(layout.rows) - 1
        layout.place(MARKER, (" " if layout.row_width[-1] else "") + text)
        self._changed_from(first_row, follow=True)

    def _changed_from(self, first_row: int, follow: bool) -> None:
        for row in range(first_row, len(self.layout.rows)):
            self._cache.pop(row, None)
        self._update_size(follow=follow)
        self.refresh()

    def mark_branch_points(self, indices: Iterable[int]) -> None:
        """Mark the tokens where another branch leaves this completion."""
        points = frozenset(indices)
        if points != self._branch_points:
            self._branch_points = points
            self._cache.clear()
            self.refresh()

    @property
    def branch_points(self) -> frozenset[int]:
        return self._branch_points

    @property
    def overridden(self) -> frozenset[int]:
        """Indices of the tokens the constraint chose where the model wanted another."""
        return frozenset(self._overridden)

    def text_of(self, index: int) -> str:
        return self._texts[index]

    # --- layout ----------------------------------------------------------------------------
    def _width(self) -> int:
        return max(8, self.scrollable_content_region.width or self.size.width or 80)

    def _relayout(self) -> None:
        old = self.layout
        layout = self._layout = TokenLayout(self._width())
        for index, text in enumerate(self._texts):
            layout.place(index, text)
        for marker in old.markers():
            layout.place(MARKER, marker)
        self._cache.clear()

    def _update_size(self, follow: bool) -> None:
        size = Size(self.layout.width, len(self.layout.rows))
        old, height = self.virtual_size, self.scrollable_content_region.height
        end = max(0, size.height - height)
        if old.width == size.width and min(old.height, size.height) > height:
            # The scrollbar is already shown: only its thumb moves. Skipping the reactive's layout
            # pass matters: a screen relayout per frame cannot keep up with a fast stream.
            self.set_reactive(ScrollView.virtual_size, size)
            self.vertical_scrollbar.window_virtual_size = size.height
            self.vertical_scrollbar.refresh()
            if follow:
                self.scroll_to(y=end, animate=False)
        else:
            self.virtual_size = size
            if follow:  # scrolling is allowed once the layout has shown the scrollbar
                self.call_after_refresh(self.scroll_to, y=end, animate=False)

    def on_resize(self, event: events.Resize) -> None:
        if self._layout is not None and self._width() != self._layout.width:
            self._relayout()
            self._update_size(follow=self.selected is None)
        self._cache.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    # --- rendering -------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        rows = self.layout.rows
        if row >= len(rows):
            return Strip.blank(width, base)
        if not self._texts and row == 0 and not rows[0]:
            style = base + self.get_component_rich_style("completion--placeholder")
            return Strip([Segment(self.placeholder, style)]).extend_cell_length(width, base).crop(0, width)
        strip = self._cache.get(row)
        if strip is None:
            strip = self._cache[row] = self._render_row(row, base, width)
        return strip

    def _render_row(self, row: int, base: Style, width: int) -> Strip:
        styles: dict[str, Style] = {}

        def style_of(name: str) -> Style:
            if name not in styles:
                styles[name] = base + self.get_component_rich_style(f"completion--{name}")
            return styles[name]

        selected = self.selected
        segments = []
        for chunk in self.layout.rows[row]:
            if chunk.index == MARKER:
                segments.append(Segment(chunk.text, style_of("marker")))
                continue
            style = style_of(self._buckets[chunk.index])
            if chunk.index in self._overridden:
                style = style + self.get_component_rich_style("completion--overridden")
            if chunk.index in self._branch_points:
                style = style + self.get_component_rich_style("completion--branch")
            text = chunk.text
            if chunk.index == selected:
                style = style + self.get_component_rich_style("completion--selected")
                text = "↵" if text == NEWLINE else text
            elif text == NEWLINE:
                text = " "
            segments.append(Segment(text, style))
        return Strip(segments).extend_cell_length(width, base).crop(0, width)

    # --- selection -------------------------------------------------------------------------
    def _rows_of(self, index: int) -> range:
        token_row = self.layout.token_row
        last = token_row[index + 1] if index + 1 < len(token_row) else len(self.layout.rows) - 1
        return range(token_row[index], last + 1)

    def watch_selected(self, old: int | None, new: int | None) -> None:
        for index in (old, new):
            if index is not None and 0 <= index < len(self._texts):
                for row in self._rows_of(index):
                    self._cache.pop(row, None)
        if new is not None and 0 <= new < len(self._texts):
            self.scroll_to_row(self.layout.token_row[new])
        self.refresh()
        self.post_message(self.Selected(self, new))

    def scroll_to_row(self, row: int) -> None:
        height = self.scrollable_content_region.height
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False)
        elif row >= self.scroll_y + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def _current(self) -> int:
        return len(self._texts) - 1 if self.selected is None else self.selected

    def action_move(self, delta: int) -> None:
        if self._texts:
            self.selected = min(max(self._current() + delta, 0), len(self._texts) - 1)

    def action_first(self) -> None:
        if self._texts:
            self.selected = 0

    def action_follow(self) -> None:
        self.selected = None
        self.scroll_end(animate=False)

    def action_row(self, delta: int) -> None:
        if not self._texts:
            return
        layout, index = self.layout, self._current()
        row = layout.token_row[index] + delta
        while 0 <= row < len(layout.rows):
            found = layout.token_at(layout.x_of(index), row)
            if found is not None:
                self.selected = found
                return
            row += delta

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        found = self.layout.token_at(offset.x, offset.y + self.scroll_offset.y)
        if found is not None:
            self.selected = found
