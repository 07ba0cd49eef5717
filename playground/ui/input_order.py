"""Keys and pastes are delivered one at a time, each after the one before it has been handled.

Textual hands a key to the focused widget's queue and moves on to the next input at once. A
priority binding (ctrl+s, ctrl+g) then runs before the keys still queued for a field, and a paste
goes to the widget that was focused before a queued Tab moved the focus: typed fast, an example was
saved truncated and the rest of the text landed in another field. Here each key or paste waits
until the previous one has passed every stop it can reach (the focused widget, its ancestors, the
screen, then the app, where non-priority bindings such as Tab run). Mouse events are not held.
"""

from __future__ import annotations

import asyncio
from collections import deque

from textual import events
from textual.app import App
from textual.dom import DOMNode

SETTLE_TIMEOUT_S = 1.0
"""A widget busy longer than this does not hold the next key back any further (input never hangs)."""


def is_input(event: events.Event) -> bool:
    """A key or paste as it comes from the terminal (not yet forwarded to a widget)."""
    return isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded


class InputOrder:
    """Holds keys and pastes for ``app`` while an earlier one is still on its way through the widgets.

    ``hold(event)`` returns True when the app must not dispatch ``event`` now (it is dispatched
    later, in order); after dispatching one itself the app calls ``dispatched(target)``.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._held: deque[events.Event] = deque()
        self._busy = False
        self._task: asyncio.Task | None = None

    def hold(self, event: events.Event) -> bool:
        if not self._busy:
            self._busy = True
            return False
        self._held.append(event)
        return True

    def dispatched(self, target: DOMNode | None) -> None:
        """The event went to ``target`` (the focused widget or the screen): release the next one
        once it has been handled there and along the way up."""
        chain: list[DOMNode] = []
        node = target
        while node is not None and node is not self.app:
            chain.append(node)
            node = node.parent
        self._task = asyncio.create_task(self._settle(chain))

    async def _settle(self, chain: list[DOMNode]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        for node in chain:  # in bubbling order: each stop's queue, after what the one below posted
            reached = asyncio.Event()
            if not node.call_later(reached.set):  # the widget is gone (e.g. a closed modal)
                continue
            try:
                await asyncio.wait_for(reached.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
        # last the app's own queue, behind a key that bubbled up to its bindings
        if not self.app.call_later(self._release):
            self._busy = False

    async def _release(self) -> None:
        self._busy = False
        if not self.app.is_running or not self.app.screen_stack:
            self._held.clear()  # the app is closing: nothing left to type into
            return
        if self._held:
            event = self._held.popleft()
            await self.app.on_event(event)  # holds itself again and re-arms the barrier
