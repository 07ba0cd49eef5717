"""A tiny App that hosts one widget for pilot tests and records the messages it posts."""

from __future__ import annotations

import time

from textual.app import App, ComposeResult
from textual.message import Message
from textual.widget import Widget

from playground.themes import APP_VARIABLES


class Harness(App):
    """Mounts ``widget`` alone; every message that bubbles up is kept in ``messages``."""

    CSS = "Screen { layout: vertical; }"

    def __init__(self, widget: Widget, css: str = "") -> None:
        super().__init__()
        self.widget = widget
        self.messages: list[Message] = []
        if css:
            self.CSS = css

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLES)

    def compose(self) -> ComposeResult:
        yield self.widget

    async def _on_message(self, message: Message) -> None:
        self.messages.append(message)  # every message and event that reaches the app
        await super()._on_message(message)

    def of(self, kind: type) -> list:
        return [m for m in self.messages if isinstance(m, kind)]


def one_thread_engine():
    """The embedded model on one thread, as a fixture body (``yield from``).

    Beside the UI thread on a small machine, llama.cpp's spinning worker threads would otherwise
    slow generation several times over.
    """
    from playground.engine_options import EngineChoice

    eng = EngineChoice(n_ctx=2048, n_threads=1).load()
    yield eng
    eng.close()


async def until(pilot, condition, what: str = "condition", timeout: float = 60.0) -> None:
    """Let the app run until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    await pilot.pause(0.01)
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)
    await pilot.pause(0.01)
