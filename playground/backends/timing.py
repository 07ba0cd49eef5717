"""Bounded time for a remote request: the cancel flag, a deadline, a no-progress limit, retry waits.

httpx's read timeout restarts with every byte, so a server that drips one byte a second, or sends
keep-alive comments forever, would be read forever. ``Clock`` holds the two limits that bytes do
not reset: the request's overall deadline and the longest wait for the next token.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

_POLL_S = 0.05  # how often a blocked wait looks at the cancel flag and the clock
#: A Retry-After of more digits than this is not a real wait (it would not fit a float exactly).
_MAX_DIGITS = 12

Limit = Literal["deadline", "progress"]


class Cancelled(Exception):
    """The cancel flag was set while we were waiting on the server."""


class TimeUp(Exception):
    """A limit of ``Clock`` passed while waiting; ``which`` says which one."""

    def __init__(self, which: Limit) -> None:
        super().__init__(which)
        self.which: Limit = which


class Clock:
    """The deadline of one request (fixed) and of its next token (moved on by ``progress``)."""

    def __init__(self, deadline_s: float, progress_s: float) -> None:
        now = time.monotonic()
        self.deadline_s, self.progress_s = deadline_s, progress_s
        self.deadline_at = now + deadline_s
        self.progress_at = now + progress_s

    def progress(self) -> None:
        """A token arrived: the no-progress limit starts again."""
        self.progress_at = time.monotonic() + self.progress_s

    def left(self) -> float:
        """Seconds until the earlier limit."""
        return min(self.deadline_at, self.progress_at) - time.monotonic()

    def expired(self) -> Limit | None:
        now = time.monotonic()
        if now >= self.deadline_at:
            return "deadline"
        if now >= self.progress_at:
            return "progress"
        return None

    def message(self, which: Limit, n_tokens: int) -> str:
        after = f" after {n_tokens} tokens" if n_tokens else ""
        if which == "deadline":
            return f"the request took longer than its deadline of {self.deadline_s:g} s{after} (deadline)"
        got = "no new token" if n_tokens else "no token"
        return (f"{got} for {self.progress_s:g} s{after}, though the connection stayed open "
                "(progress_timeout; keep-alives and partial data do not count)")


async def until(awaitable: Any, cancel: threading.Event, clock: Clock | None = None) -> Any:
    """Await ``awaitable`` but give up soon after ``cancel`` is set (Cancelled) or a limit of
    ``clock`` passes (TimeUp); the abandoned task is cancelled and has unwound on return."""
    if cancel.is_set() or (clock is not None and clock.expired()):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: nothing to clean up
        if cancel.is_set():
            raise Cancelled
        raise TimeUp(clock.expired())  # type: ignore[union-attr,arg-type]
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            wait = _POLL_S if clock is None else max(0.0, min(_POLL_S, clock.left()))
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
            stop: Exception | None = Cancelled() if cancel.is_set() else None
            if stop is None and clock is not None and (which := clock.expired()):
                stop = TimeUp(which)
            if stop is not None:
                task.cancel()
                await asyncio.wait({task})
                raise stop
    except asyncio.CancelledError:  # our own task is cancelled (e.g. the UI's worker)
        task.cancel()
        await asyncio.wait({task})  # let it unwind before the caller closes the stream
        raise


async def sleep_unless(cancel: threading.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancel.is_set():
            raise Cancelled
        await asyncio.sleep(min(left, _POLL_S))


def retry_delay(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying, or None when this status is not retried.

    429 is retried (Retry-After, else 0.5 s doubling); 503 only when it says Retry-After.
    """
    status = response.status_code
    if status not in (429, 503):
        return None
    backoff = min(0.5 * 2**attempt, 30.0)
    header = response.headers.get("retry-after")
    if header is None:
        return backoff if status == 429 else None
    return parse_retry_after(header, backoff)


def parse_retry_after(header: str, fallback: float) -> float:
    """Retry-After as seconds from now (delay-seconds or an HTTP date), never negative or NaN.

    Anything else (a negative or fractional number, garbage, a date that cannot be) gives
    ``fallback``; an absurdly long number gives infinity, which no ``max_retry_wait`` allows.
    """
    header = header.strip()
    if re.fullmatch(r"[0-9]+", header, flags=re.ASCII):  # str.isdigit() would accept "²" too
        return float(header) if len(header) <= _MAX_DIGITS else math.inf
    try:
        seconds = parsedate_to_datetime(header).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError):
        return fallback
    return max(0.0, seconds) if math.isfinite(seconds) else fallback
