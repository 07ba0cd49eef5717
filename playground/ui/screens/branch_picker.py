"""A modal to choose the token a branch takes at one position: an alternative, or typed text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from playground.events import TokenEvent
from playground.ui.text_cells import token_label


@dataclass(frozen=True)
class BranchChoice:
    """What the branch takes at its position: a token id, or text to tokenize."""

    token_id: int | None = None
    text: str | None = None
    label: str = ""


def alternative_label(text: str, logprob: float) -> str:
    """``" Paris"  12.5%`` (quoted and made visible, as the inspector shows tokens)."""
    return f"{token_label(text)}  {100 * math.exp(logprob):.1f}%"


class BranchPicker(ModalScreen[BranchChoice | None]):
    """Pick one of the position's alternatives (enter) or type text (enter in the field)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="branch_cancel")]

    DEFAULT_CSS = """
    BranchPicker { align: center middle; }
    BranchPicker > Vertical {
        width: 70%; min-width: 40; max-width: 80; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    BranchPicker OptionList { height: auto; max-height: 14; }
    BranchPicker #branch-title { text-style: bold; }
    BranchPicker #branch-hint { color: $text-muted; }
    """

    def __init__(self, token: TokenEvent, position: int) -> None:
        super().__init__()
        self.token = token
        self.position = position

    def compose(self) -> ComposeResult:
        chosen = alternative_label(self.token.text, self.token.logprob) if self.token.logprob is not None else repr(self.token.text)
        with Vertical():
            yield Label(f"Branch at #{self.position}: the run took {chosen}", id="branch-title")
            options = [
                Option(Text(("→ " if alt.id == self.token.id else "  ") + alternative_label(alt.text, alt.logprob)), id=str(k))
                for k, alt in enumerate(self.token.top)
            ]
            yield OptionList(*options, id="branch-alternatives")
            yield Input(placeholder="or type text to continue from (enter)", id="branch-text")
            yield Label("enter takes it and generates from there · escape cancels", id="branch-hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        alt = self.token.top[int(event.option.id or 0)]
        self.dismiss(BranchChoice(token_id=alt.id, label=alternative_label(alt.text, alt.logprob)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(BranchChoice(text=event.value, label=f"typed {event.value!r}"))

    def action_cancel(self) -> None:
        self.dismiss(None)
