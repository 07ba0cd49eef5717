"""A modal showing the exact prompt text the model will see, with its token count."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea

from playground.prompt_builder import RenderedPrompt


class RenderedPromptScreen(ModalScreen[None]):
    """Read-only view of a ``RenderedPrompt``; escape closes."""

    BINDINGS = [Binding("escape,ctrl+r,q", "close", "Close", id="rendered_close")]

    DEFAULT_CSS = """
    RenderedPromptScreen { align: center middle; }
    RenderedPromptScreen > Vertical {
        width: 90%; height: 85%; border: thick $primary; background: $surface; padding: 0 1;
    }
    RenderedPromptScreen TextArea { height: 1fr; border: none; }
    RenderedPromptScreen .info { color: $text-muted; }
    RenderedPromptScreen .note { color: $warning; }
    """

    def __init__(self, rendered: RenderedPrompt, count_line: str) -> None:
        super().__init__()
        self.rendered = rendered
        self.count_line = count_line

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Rendered prompt (exactly what the model sees)"
            box.border_subtitle = "esc closes"
            yield Label(f"{self.rendered.template_label} · {self.count_line}"
                        + ("" if self.rendered.add_special else " · BOS from the template"), classes="info")
            for note in self.rendered.notes:
                yield Label("⚠ " + note, classes="note")
            yield TextArea(self.rendered.text, read_only=True, soft_wrap=True, show_line_numbers=True)

    def action_close(self) -> None:
        self.dismiss(None)
