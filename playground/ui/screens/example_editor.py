"""A modal to write or edit one few-shot example."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, TextArea

from playground.prompt_builder import Example
from playground.ui.widgets.check import Check


class ExampleEditor(ModalScreen[Example | None]):
    """Edit an example's input and output; ctrl+s saves, escape cancels (dismisses None)."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True, id="example_save"),
        Binding("escape", "cancel", "Cancel", id="example_cancel"),
    ]

    DEFAULT_CSS = """
    ExampleEditor { align: center middle; }
    ExampleEditor > Vertical {
        width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ExampleEditor TextArea { height: 7; border: round $foreground 30%; }
    ExampleEditor TextArea:focus { border: round $primary; }
    ExampleEditor #editor-buttons { height: 3; align-horizontal: right; }
    ExampleEditor Button { margin-left: 1; }
    ExampleEditor #editor-title { text-style: bold; padding: 0 0 1 0; }
    ExampleEditor #editor-error { color: $error; height: auto; }
    """

    def __init__(self, example: Example, *, is_new: bool) -> None:
        super().__init__()
        self.example = example
        self.is_new = is_new

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New example" if self.is_new else "Edit example", id="editor-title")
            area = TextArea(self.example.input, id="ex-input", soft_wrap=True, tab_behavior="focus")
            area.border_title = "input"
            yield area
            area = TextArea(self.example.output, id="ex-output", soft_wrap=True, tab_behavior="focus")
            area.border_title = "output (what the model should answer)"
            yield area
            yield Label("", id="editor-error")
            with Horizontal(id="editor-buttons"):
                yield Check("enabled", self.example.enabled, id="ex-enabled")
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#ex-input", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def action_save(self) -> None:
        """Save, unless the output is empty: an example without an answer teaches the model nothing."""
        output = self.query_one("#ex-output", TextArea)
        if not output.text.strip():
            self.query_one("#editor-error", Label).update(
                "The output is empty: write what the model should answer (escape cancels).")
            output.focus()
            return
        self.dismiss(Example(
            self.query_one("#ex-input", TextArea).text,
            output.text,
            self.query_one("#ex-enabled", Checkbox).value,
        ))

    def action_cancel(self) -> None:
        self.dismiss(None)
