"""Modals that ask for a session file: where to save (ctrl+s), what to open (ctrl+o)."""

from __future__ import annotations

import os
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 90%; max-width: 110; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; padding-bottom: 1; }}
{name} .hint {{ color: $text-muted; }}
{name} .note {{ color: $warning; }}
{name} Input {{ margin-bottom: 1; }}
{name} OptionList {{ height: auto; max-height: 18; border: round $foreground 30%; }}
{name} OptionList:focus {{ border: round $primary; }}
"""


class SaveSessionScreen(ModalScreen[Path | None]):
    """Asks where to save; enter saves, escape cancels (dismisses None). An existing file is
    only overwritten after a second enter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="save_cancel")]
    DEFAULT_CSS = MODAL_CSS.format(name="SaveSessionScreen")

    def __init__(self, default: Path, note: str = "") -> None:
        super().__init__()
        self.default = default
        self.note = note
        self._confirmed: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the session", classes="title")
            yield Label("prompt, examples, sampler settings and the last run's full trace", classes="hint")
            yield Input(str(self.default), id="save-path")
            yield Label(self.note, id="save-note", classes="note")
            yield Label("enter saves · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#save-note").display = bool(self.note)
        field = self.query_one("#save-path", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def _say(self, text: str) -> None:
        note = self.query_one("#save-note", Label)
        note.update(text)
        note.display = bool(text)

    @on(Input.Submitted, "#save-path")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self._say("type a file name")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self._say(f"{path} is a directory: add a file name")
            return
        if path.exists() and self._confirmed != path:
            self._confirmed = path
            self._say(f"{path.name} exists: enter again to replace it")
            return
        self.dismiss(path)

    @on(Input.Changed, "#save-path")
    def _edited(self) -> None:
        self._confirmed = None

    def action_cancel(self) -> None:
        self.dismiss(None)


class OpenSessionScreen(ModalScreen[Path | None]):
    """A path to type, or one of the recent session files to pick; escape cancels."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="open_cancel"),
        Binding("down", "to_list", "Recent files", show=False, id="open_to_list"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | open_cancel | escape | Close without opening anything. |
    | open_to_list | down | From the path field into the list of recent files (enter then opens the highlighted one). |
    """
    DEFAULT_CSS = MODAL_CSS.format(name="OpenSessionScreen")

    def __init__(self, start: str, recent: list[tuple[Path, str]], where: str) -> None:
        super().__init__()
        self.start = start
        self.recent = recent
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Open a session", classes="title")
            yield Input(self.start, placeholder="path to a session file (.json)", id="open-path")
            yield Label(f"recent sessions ({self.where})" if self.recent else f"no sessions in {self.where} yet",
                        classes="hint")
            options = [Option(label, id=str(n)) for n, (_, label) in enumerate(self.recent)]
            yield OptionList(*options, id="recent")
            yield Label("", id="open-note", classes="note")
            yield Label("enter opens · ↓ to the recent files · esc cancels" if self.recent
                        else "enter opens · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#recent").display = bool(self.recent)
        self.query_one("#open-note").display = False
        field = self.query_one("#open-path", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def _say(self, text: str) -> None:
        note = self.query_one("#open-note", Label)
        note.update(text)
        note.display = bool(text)

    def action_to_list(self) -> None:
        """↓ in the path field: into the list, on its first file (enter then opens that file)."""
        options = self.query_one("#recent", OptionList)
        if self.recent and not options.has_focus:
            options.focus()
            options.highlighted = options.highlighted or 0
            self._fill(options.highlighted)

    @on(Input.Submitted, "#open-path")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if path.is_dir() or text.endswith(("/", os.sep)):  # a folder is where to look, not what to open
            if self.recent:
                self.action_to_list()
            self._say(f"{path} is a folder: pick a file below, or type a file name" if self.recent
                      else f"{path} is a folder: type a session file's name")
            return
        self.dismiss(path)

    @on(OptionList.OptionSelected, "#recent")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.recent[int(event.option.id or 0)][0])

    @on(OptionList.OptionHighlighted, "#recent")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.has_focus:  # not the highlight the list gets when it is mounted
            self._fill(event.option_index)

    def _fill(self, index: int | None) -> None:
        """Show the highlighted file's path in the field."""
        if index is not None and 0 <= index < len(self.recent):
            self.query_one("#open-path", Input).value = str(self.recent[index][0])
            self._say("")

    def action_cancel(self) -> None:
        self.dismiss(None)
