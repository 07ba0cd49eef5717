"""Producers of recorded runs for the ``RunDriver`` (pure: no Textual here).

Live runs are ``compare.job.RunJob``s (local or remote, one lane or several); a replay is async
(it waits between tokens with ``asyncio.sleep``) and puts each recorded event at its time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from playground.sessions.replay import areplay
from playground.sessions.schema import Session


async def replay_into(session: Session, speed: float, put: Callable[[Any], None]) -> None:
    """Put a one-lane session's events at their recorded times / ``speed`` (0 = at once).

    Stopping is cancelling the worker: the wait between two tokens ends at once.
    """
    async with aclosing(areplay(session, speed)) as items:
        async for item in items:
            put(item.event)
