"""A thread-safe hand-off from a generating thread to the UI, drained once per frame.

The worker thread ``put``s every event; the UI ``drain``s them all on a timer, so a burst of
tokens becomes one append and one refresh instead of one message per token (no backlog).
"""

from __future__ import annotations

import threading
from collections import deque

from playground.events import StreamEvent


class EventPump:
    """A deque with a counter of what went through it (for the benchmark)."""

    def __init__(self) -> None:
        self._queue: deque[StreamEvent] = deque()
        self._lock = threading.Lock()
        self.put_count = 0
        self.drained_count = 0
        self.max_backlog = 0

    def put(self, event: StreamEvent) -> None:
        """Called from the worker thread."""
        with self._lock:
            self._queue.append(event)
            self.put_count += 1

    def put_all(self, events: list[StreamEvent]) -> None:
        """Several events at once (a session shown whole)."""
        with self._lock:
            self._queue.extend(events)
            self.put_count += len(events)

    def drain(self) -> list[StreamEvent]:
        """Everything waiting, oldest first (called on the UI thread)."""
        with self._lock:
            events = list(self._queue)
            self._queue.clear()
        self.max_backlog = max(self.max_backlog, len(events))
        self.drained_count += len(events)
        return events

    def __len__(self) -> int:
        return len(self._queue)
