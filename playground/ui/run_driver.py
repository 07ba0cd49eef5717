"""One run at a time for a screen: its worker, event pump, frame timer and cancel.

Every screen runs everything (a live run of any number of lanes, local or remote, a replay, an
opened session shown at once) through a ``RunDriver``: the producer puts items (stream events, or
``LaneEvent``s and the analysis of a compare job) on an ``EventPump`` from its worker; once per
frame the driver hands the screen everything that arrived (``on_items``); when the worker ends it
hands over the rest and posts ``RunDriver.Finished`` (stopped or not, and any error the producer
did not turn into a ``FailedEvent`` itself). Screens own no pump, timer or worker of their own.

A run job (``compare.job.RunJob``) blocks, so it runs in a thread worker; a replay waits with
``asyncio.sleep`` and runs as an async worker on the app's loop (stopping it cancels that wait).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from playground.compare.job import RunJob
from playground.errors import PlaygroundError
from playground.ui.pump import EventPump

FRAME_S = 1 / 30
"""How often streamed items are handed to the screen (one batch per frame)."""

Put = Callable[[Any], None]
ItemsHandler = Callable[[list[Any]], None]


class RunDriver(Widget):
    """Runs one producer at a time and hands its items to the screen once per frame.

    Args:
        on_items: called on the UI thread with every item that arrived since the last frame.
    """

    DEFAULT_CSS = "RunDriver { display: none; }"

    class Finished(Message):
        """The run's worker ended; every item it produced has been handed over."""

        def __init__(self, driver: "RunDriver", kind: str, stopped: bool, error: BaseException | None) -> None:
            super().__init__()
            self.driver = driver
            self.kind = kind
            """What ran: the ``kind`` given to ``start_*`` (e.g. "generate", "replay")."""
            self.stopped = stopped
            """The worker was cancelled before the producer ended (e.g. a replay stopped)."""
            self.error = error
            """An exception that escaped the producer (the screen shows it; tokens so far are kept)."""

        @property
        def control(self) -> "RunDriver":
            return self.driver

    def __init__(self, on_items: ItemsHandler, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._on_items = on_items
        self.pump = EventPump()
        self.cancel_event = threading.Event()
        self.kind = ""
        self.running = False
        self.worker: Worker | None = None

    def on_mount(self) -> None:
        self._timer = self.set_interval(FRAME_S, self.drain, pause=True)

    # --- starting ----------------------------------------------------------------------------
    def _begin(self, kind: str) -> tuple[EventPump, threading.Event]:
        if self.running:
            raise PlaygroundError("a run is going on; escape stops it first", title="Busy")
        self.pump, self.cancel_event = EventPump(), threading.Event()
        self.kind, self.running = kind, True
        self._timer.resume()
        return self.pump, self.cancel_event

    def start_job(self, job: RunJob, *, kind: str = "run", tap: Callable[[Any], None] | None = None) -> None:
        """Stream ``job`` in a thread worker; ``tap`` sees every item there first (e.g. a session
        recorder, so recording never waits for the UI). Cancelling ends the job between tokens."""
        pump, _ = self._begin(kind)
        self.cancel_event = job.cancel_event  # cancel() sets the job's own event

        def produce() -> None:
            worker = get_current_worker()
            for item in job.stream():
                if tap is not None:
                    tap(item)
                pump.put(item)
                if worker.is_cancelled:
                    job.cancel()

        self.worker = self.run_worker(produce, name=kind, group="run", thread=True, exclusive=True, exit_on_error=False)

    def start_async(self, produce: Callable[[Put], Awaitable[None]], *, kind: str) -> None:
        """Run ``produce(put)`` as an async worker (a replay); stopping cancels it at once."""
        pump, _ = self._begin(kind)
        self.worker = self.run_worker(produce(pump.put), name=kind, group="run", exclusive=True, exit_on_error=False)

    def show(self, items: Iterable[Any], *, kind: str = "session") -> None:
        """Hand ``items`` over at once and finish (an opened session: the same path as a run)."""
        pump, _ = self._begin(kind)
        pump.put_all(list(items))
        self.worker = None
        self._end(stopped=False, error=None)

    # --- stopping ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the run: a job between two tokens (finish_reason "cancelled"), a replay at once."""
        if not self.running:
            return
        self.cancel_event.set()
        if self.worker is not None and self.kind == "replay":
            self.worker.cancel()

    def on_unmount(self) -> None:
        self.cancel_event.set()  # a decode loop stops at the next token

    # --- frames ------------------------------------------------------------------------------
    def drain(self) -> None:
        items = self.pump.drain()
        if items:
            self._on_items(items)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        event.stop()
        ended = (WorkerState.ERROR, WorkerState.SUCCESS, WorkerState.CANCELLED)
        if event.worker is not self.worker or event.state not in ended:
            return  # a previous run's worker ending late must not touch the current run
        error = event.worker.error if event.state == WorkerState.ERROR else None
        self._end(stopped=event.state == WorkerState.CANCELLED, error=error)

    def _end(self, *, stopped: bool, error: BaseException | None) -> None:
        self.drain()
        self.running = False
        self._timer.pause()
        self.post_message(self.Finished(self, self.kind, stopped, error))
