"""Producers that feed one run's events into an ``EventPump`` (pure: no Textual here).

The local engine blocks, so ``pump_local`` runs in a thread worker; a remote backend (httpx) and a
replay are async and run in async workers on the app's own loop. All three end the same way: the
pump receives Start, Token..., then Done or Failed, and the screen drains it once per frame.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from playground.errors import PlaygroundError
from playground.events import FailedEvent, TokenEvent
from playground.params import GenerationRequest
from playground.sessions.replay import areplay
from playground.sessions.schema import Session
from playground.ui.pump import EventPump


def _unexpected(exc: BaseException, n: int) -> FailedEvent:
    return FailedEvent("Unexpected error", f"{type(exc).__name__}: {exc}", n)


def pump_local(engine: Any, request: GenerationRequest, pump: EventPump, cancel: threading.Event,
               dist_size: int, is_cancelled: Callable[[], bool]) -> None:
    """Run the engine (blocking) and put its events; ``is_cancelled`` is the worker's flag."""
    n = 0
    try:
        for event in engine.stream(request, cancel, dist_size=dist_size):
            pump.put(event)
            n += isinstance(event, TokenEvent)
            if is_cancelled():
                cancel.set()
    except PlaygroundError as exc:
        pump.put(FailedEvent(exc.title, exc.message, n))
    except Exception as exc:  # noqa: BLE001 - shown to the user, partial output kept
        pump.put(_unexpected(exc, n))


async def pump_remote(backend: Any, request: GenerationRequest, pump: EventPump, cancel: threading.Event) -> None:
    """Stream from a remote backend. Setting ``cancel`` (or cancelling the worker) closes the
    connection; the backend then ends the stream with a "cancelled" Done event."""
    n = 0
    try:
        async with aclosing(backend.stream(request, cancel)) as events:
            async for event in events:
                pump.put(event)
                n += isinstance(event, TokenEvent)
    except asyncio.CancelledError:
        cancel.set()
        raise
    except PlaygroundError as exc:
        pump.put(FailedEvent(exc.title, exc.message, n))
    except Exception as exc:  # noqa: BLE001 - shown to the user, partial output kept
        pump.put(_unexpected(exc, n))


async def pump_replay(session: Session, speed: float, pump: EventPump) -> None:
    """Put a one-lane session's events at their recorded times / ``speed`` (0 = at once).

    Stopping is cancelling the worker: the wait between two tokens ends at once.
    """
    async with aclosing(areplay(session, speed)) as items:
        async for item in items:
            pump.put(item.event)
