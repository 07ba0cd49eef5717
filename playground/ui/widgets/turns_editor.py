"""The turns of a conversation: add a user or assistant turn, edit, delete, flip the role, reorder."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from playground.prompt_builder import Turn


def preview(text: str) -> str:
    """A turn's text on one line (the row cuts it to the width with an ellipsis)."""
    return " ".join(text.split()) or "∅"


class TurnsEditor(Vertical):
    """A list of user / assistant turns, one row each: the role and the start of the text.

    The turns are edited in a modal (``TurnEditor``) that this widget opens itself; every change
    posts ``Changed`` with the new turns.
    """

    BINDINGS = [
        Binding("u", "add('user')", "User turn", id="turn_add_user"),
        Binding("a,insert", "add('assistant')", "Assistant turn", id="turn_add_assistant"),
        Binding("e", "edit", "Edit", show=False, id="turn_edit"),
        Binding("r", "flip_role", "Role", show=False, id="turn_role"),
        Binding("d,delete", "delete", "Delete", show=False, id="turn_delete"),
        Binding("shift+up,ctrl+up", "move(-1)", "Move up", show=False, id="turn_up"),
        Binding("shift+down,ctrl+down", "move(1)", "Move down", show=False, id="turn_down"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | u | Add a user turn (at the end). |
    | a, insert | Add an assistant turn (at the end). |
    | enter, e | Edit the highlighted turn. |
    | r | Flip its role (user / assistant). |
    | d, delete | Delete it. |
    | shift+up / shift+down | Move it. |
    """

    DEFAULT_CSS = """
    TurnsEditor { height: 1fr; min-height: 4; border: round $foreground 30%; }
    TurnsEditor:focus-within { border: round $primary; }
    TurnsEditor ListView { height: 1fr; min-height: 1; background: transparent; }
    TurnsEditor ListItem { background: transparent; }
    TurnsEditor ListItem > Horizontal { height: 1; }
    TurnsEditor .turn-role { width: 14; color: $text-muted; }
    TurnsEditor ListItem.-assistant .turn-role { color: $accent; }
    TurnsEditor .turn-text { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    TurnsEditor #turns-empty { color: $text-disabled; text-style: italic; padding: 0 1; }
    """

    class Changed(Message):
        """The turns changed (added, edited, deleted, moved)."""

        def __init__(self, turns: tuple[Turn, ...]) -> None:
            super().__init__()
            self.turns = turns

    def __init__(self, turns: tuple[Turn, ...] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.turns = list(turns)

    def compose(self) -> ComposeResult:
        yield Label("No turns yet: u adds a user turn, a an assistant turn.", id="turns-empty")
        yield ListView(id="turn-list")

    async def on_mount(self) -> None:
        self.border_subtitle = "u/a add · e edit · r role · d del · ⇧↑↓ move"
        await self._rebuild()

    async def _rebuild(self, index: int | None = None) -> None:
        """Redraw the rows and highlight row ``index`` (awaited: see ExamplesPanel._rebuild)."""
        view = self.query_one(ListView)
        await view.clear()
        items = []
        for n, turn in enumerate(self.turns):
            row = Horizontal(Label(f"{n + 1}. {turn.role}", classes="turn-role"),
                             Label(preview(turn.content), classes="turn-text", markup=False))
            items.append(ListItem(row, classes=f"-{turn.role}"))
        if items:
            await view.extend(items)
        self.query_one("#turns-empty").display = not self.turns
        if self.turns:
            view.index = min(index if index is not None else len(self.turns) - 1, len(self.turns) - 1)
        self.border_title = f"Turns · {len(self.turns)}"

    async def _emit(self, index: int | None = None) -> None:
        await self._rebuild(index)
        self.post_message(self.Changed(tuple(self.turns)))

    def set_turns(self, turns: tuple[Turn, ...]) -> None:
        """Show ``turns`` (redrawn from this widget's queue, after keys already sent to it)."""
        self.turns = list(turns)
        self.call_later(self._emit)

    def append(self, turn: Turn) -> None:
        """Add ``turn`` at the end and highlight it."""
        self.turns.append(turn)
        self.call_later(self._emit, len(self.turns) - 1)

    @property
    def _index(self) -> int | None:
        index = self.query_one(ListView).index
        return index if index is not None and 0 <= index < len(self.turns) else None

    def _open_editor(self, index: int | None, turn: Turn) -> None:
        from playground.ui.screens.turn_editor import TurnEditor

        def done(result: Turn | None) -> None:
            if result is not None:
                if index is None:
                    self.append(result)
                else:
                    self.turns[index] = result
                    self.call_later(self._emit, index)
            self.query_one(ListView).focus()

        self.app.push_screen(TurnEditor(turn, is_new=index is None), done)

    def action_add(self, role: str) -> None:
        self._open_editor(None, Turn(role, ""))  # type: ignore[arg-type]  # from BINDINGS

    def action_edit(self) -> None:
        if (index := self._index) is not None:
            self._open_editor(index, self.turns[index])

    async def action_flip_role(self) -> None:
        if (index := self._index) is not None:
            turn = self.turns[index]
            self.turns[index] = Turn("assistant" if turn.role == "user" else "user", turn.content)
            await self._emit(index)

    async def action_delete(self) -> None:
        if (index := self._index) is not None:
            del self.turns[index]
            await self._emit(min(index, len(self.turns) - 1) if self.turns else None)

    async def action_move(self, delta: int) -> None:
        index = self._index
        if index is None or not 0 <= index + delta < len(self.turns):
            return
        self.turns[index], self.turns[index + delta] = self.turns[index + delta], self.turns[index]
        await self._emit(index + delta)

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        self.action_edit()
