"""A modal to write or edit one turn of a conversation: its role and its text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, TextArea

from playground.prompt_builder import Turn

ROLES = ("user", "assistant")


class TurnEditor(ModalScreen[Turn | None]):
    """Edit a turn's role and content; ctrl+s saves, escape cancels (dismisses None)."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True, id="turn_save"),
        Binding("escape", "cancel", "Cancel", id="turn_cancel"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | ctrl+s | Save the turn. |
    | escape | Cancel. |
    """

    DEFAULT_CSS = """
    TurnEditor { align: center middle; }
    TurnEditor > Vertical {
        width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    TurnEditor #turn-role { width: 24; }
    TurnEditor TextArea { height: 8; border: round $foreground 30%; }
    TurnEditor TextArea:focus { border: round $primary; }
    TurnEditor #turn-buttons { height: 3; align-horizontal: right; }
    TurnEditor Button { margin-left: 1; }
    TurnEditor #turn-title { text-style: bold; padding: 0 0 1 0; }
    TurnEditor #turn-error { color: $error; height: auto; }
    """

    def __init__(self, turn: Turn, *, is_new: bool) -> None:
        super().__init__()
        self.turn = turn
        self.is_new = is_new

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(("New " if self.is_new else "Edit ") + f"{self.turn.role} turn", id="turn-title")
            yield Select([(role, role) for role in ROLES], value=self.turn.role, allow_blank=False,
                         id="turn-role", tooltip="who says it")
            area = TextArea(self.turn.content, id="turn-content", soft_wrap=True, tab_behavior="focus")
            area.border_title = "what is said"
            yield area
            yield Label("", id="turn-error")
            with Horizontal(id="turn-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#turn-content", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    @property
    def role(self) -> str:
        value = self.query_one("#turn-role", Select).value
        return value if isinstance(value, str) else self.turn.role

    def on_select_changed(self, event: Select.Changed) -> None:
        self.query_one("#turn-title", Label).update(("New " if self.is_new else "Edit ") + f"{self.role} turn")

    def action_save(self) -> None:
        """Save, unless the text is empty: an empty turn only adds the template's markers."""
        area = self.query_one("#turn-content", TextArea)
        if not area.text.strip():
            self.query_one("#turn-error", Label).update(
                "The turn is empty: write what is said (escape cancels).")
            area.focus()
            return
        self.dismiss(Turn(self.role, area.text))  # type: ignore[arg-type]  # one of ROLES

    def action_cancel(self) -> None:
        self.dismiss(None)
