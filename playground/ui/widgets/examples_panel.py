"""The few-shot examples pane: add, edit, delete, enable/disable, reorder; the format is editable."""

from __future__ import annotations

from rich.cells import cell_len
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

from playground.prompt_builder import DEFAULT_EXAMPLE_FORMAT, Example, shots_label
from playground.ui.text_cells import fit


def escape_format(fmt: str) -> str:
    """The format as typed in a one-line field: a line break is written ``\\n``."""
    return fmt.replace("\\", "\\\\").replace("\n", "\\n")


def unescape_format(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "n\\":
            out.append("\n" if text[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class ExamplesPanel(Vertical):
    """A list of input -> output examples and the format that lays them out."""

    BINDINGS = [
        Binding("a,insert", "add", "Add example", id="example_add"),
        Binding("e", "edit", "Edit", show=False, id="example_edit"),
        Binding("d,delete", "delete", "Delete", show=False, id="example_delete"),
        Binding("space", "toggle_example", "On/off", id="example_toggle"),
        Binding("shift+up,ctrl+up", "move(-1)", "Move up", show=False, id="example_up"),
        Binding("shift+down,ctrl+down", "move(1)", "Move down", show=False, id="example_down"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | a | Add an example. |
    | enter, e | Edit the highlighted example. |
    | d, delete | Delete it. |
    | space | Enable / disable it. |
    | shift+up / shift+down | Move it. |
    """

    DEFAULT_CSS = """
    ExamplesPanel { height: auto; }
    ExamplesPanel ListView { height: auto; max-height: 6; min-height: 1; background: transparent; }
    ExamplesPanel ListItem { background: transparent; }
    ExamplesPanel ListItem.-off Label { color: $text-disabled; text-style: strike; }
    ExamplesPanel #examples-empty { color: $text-disabled; text-style: italic; padding: 0 1; }
    ExamplesPanel #format-row { height: 1; padding: 0 1; }
    ExamplesPanel #format-row Label { width: 7; color: $text-muted; }
    ExamplesPanel #format { border: none; height: 1; padding: 0 1; background: $boost; width: 1fr; }
    ExamplesPanel #format:focus { background: $primary 30%; }
    """

    class Changed(Message):
        """The examples or the format changed."""

        def __init__(self, examples: tuple[Example, ...], example_format: str) -> None:
            super().__init__()
            self.examples = examples
            self.example_format = example_format

    class EditRequested(Message):
        """Open the editor for example ``index`` (None = a new one)."""

        def __init__(self, index: int | None, example: Example) -> None:
            super().__init__()
            self.index = index
            self.example = example

    def __init__(self, examples: tuple[Example, ...] = (), example_format: str = DEFAULT_EXAMPLE_FORMAT,
                 *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.examples = list(examples)
        self.example_format = example_format
        self._drawn_width = 0

    def compose(self) -> ComposeResult:
        yield Label("No examples: zero-shot. Press a to add one.", id="examples-empty")
        yield ListView(id="example-list")
        with Horizontal(id="format-row"):
            yield Label("format")
            yield Input(escape_format(self.example_format), id="format",
                        tooltip="how an example is laid out in plain mode; {input} and {output}; \\n = new line")

    async def on_mount(self) -> None:
        await self._rebuild()

    def on_resize(self) -> None:
        if self.size.width != self._drawn_width:  # the rows are cut to the width: redraw them
            self.call_later(self._rebuild, self._index)

    @property
    def shots(self) -> int:
        return sum(e.enabled for e in self.examples)

    def title(self) -> str:
        return f"Examples · {shots_label(self.shots)}"

    async def _rebuild(self, index: int | None = None) -> None:
        """Redraw the rows and highlight row ``index``.

        Awaited: ListView mounts its rows later, and an index set before they are there leaves the
        highlight on another row than the one ``d`` or ``e`` would act on.
        """
        view = self.query_one(ListView)
        await view.clear()
        self._drawn_width = self.size.width
        width = max(20, self.size.width - 6)
        items = []
        for n, example in enumerate(self.examples):
            mark = "☑" if example.enabled else "☐"
            item = ListItem(Label(summary_line(f"{mark} {n + 1}. ", example, width)))
            item.set_class(not example.enabled, "-off")
            items.append(item)
        if items:
            await view.extend(items)
        self.query_one("#examples-empty").display = not self.examples
        view.display = bool(self.examples)
        if self.examples:
            view.index = min(index if index is not None else 0, len(self.examples) - 1)
        self.border_title = self.title()

    async def _emit(self, index: int | None = None) -> None:
        await self._rebuild(index)
        self.post_message(self.Changed(tuple(self.examples), self.example_format))

    def set_examples(self, examples: tuple[Example, ...], example_format: str) -> None:
        """Show ``examples`` (the rows are redrawn from this pane's queue, after keys already sent to it)."""
        self.examples = list(examples)
        self.example_format = example_format
        self.query_one("#format", Input).value = escape_format(example_format)
        self.call_later(self._emit)

    def put(self, index: int | None, example: Example) -> None:
        """Store an edited example (None = append a new one) and highlight it."""
        if index is None:
            self.examples.append(example)
            index = len(self.examples) - 1
        else:
            self.examples[index] = example
        self.call_later(self._emit, index)

    @property
    def _index(self) -> int | None:
        index = self.query_one(ListView).index
        return index if index is not None and 0 <= index < len(self.examples) else None

    def action_add(self) -> None:
        self.post_message(self.EditRequested(None, Example("", "")))

    def action_edit(self) -> None:
        if (index := self._index) is not None:
            self.post_message(self.EditRequested(index, self.examples[index]))

    async def action_delete(self) -> None:
        if (index := self._index) is not None:
            del self.examples[index]
            await self._emit(index)

    async def action_toggle_example(self) -> None:
        if (index := self._index) is not None:
            e = self.examples[index]
            self.examples[index] = Example(e.input, e.output, not e.enabled)
            await self._emit(index)

    async def action_move(self, delta: int) -> None:
        index = self._index
        if index is None or not 0 <= index + delta < len(self.examples):
            return
        self.examples[index], self.examples[index + delta] = self.examples[index + delta], self.examples[index]
        await self._emit(index + delta)

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        self.action_edit()

    @on(Input.Changed, "#format")
    def _format_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.example_format = unescape_format(event.value)
        self.post_message(self.Changed(tuple(self.examples), self.example_format))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Letters are for typing while the format field has focus.
        if isinstance(self.app.focused, Input):
            return False
        return True


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "∅"


def summary_line(prefix: str, example: Example, width: int) -> str:
    """``prefix input → output`` in ``width`` cells; a long input is cut before the output is
    (the output keeps at least a third of the room)."""
    inp, out = _one_line(example.input), _one_line(example.output)
    room = max(8, width - cell_len(prefix) - 3)
    if cell_len(inp) + cell_len(out) <= room:
        return fit(f"{prefix}{inp} → {out}", width)
    out_w = min(cell_len(out), max(room // 3, room - cell_len(inp)))
    return fit(f"{prefix}{fit(inp, room - out_w).rstrip()} → {fit(out, out_w).rstrip()}", width)
