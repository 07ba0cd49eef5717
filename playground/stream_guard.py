"""The one failure path of a stream: whatever goes wrong, the run ends with a ``FailedEvent``.

A bug, a ``RecursionError`` from a hostile server's nesting, a ``MemoryError``: anything raised
while a stream is being produced becomes the stream's last event, after the tokens it already
yielded, so every consumer (text, JSON, history, ``--save``, the TUI) keeps and marks the partial
run exactly as it does for a clean failure. An error before the first event is raised as is: then
nothing was lost, and the caller reports it (exit 2 on the command line).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from playground.errors import PlaygroundError
from playground.events import DoneEvent, FailedEvent, StreamEvent, TokenEvent


class _Progress:
    """What a stream has yielded so far."""

    def __init__(self) -> None:
        self.n_events = 0
        self.n_tokens = 0
        self.ended = False

    def saw(self, event: StreamEvent) -> None:
        self.n_events += 1
        if isinstance(event, TokenEvent):
            self.n_tokens += 1
        elif isinstance(event, (DoneEvent, FailedEvent)):
            self.ended = True

    def failure(self, exc: Exception) -> FailedEvent | None:
        """The event that ends the stream for ``exc``; None: re-raise (nothing was yielded yet)."""
        if self.n_events == 0 and isinstance(exc, PlaygroundError):
            return None
        if self.ended:
            return None
        return failed_event(exc, self.n_tokens)


def failed_event(exc: BaseException, n_tokens: int) -> FailedEvent:
    """``exc`` as the last event of a run that produced ``n_tokens``."""
    if isinstance(exc, PlaygroundError):
        return FailedEvent(exc.title, exc.message, n_tokens)
    if isinstance(exc, RecursionError):
        return FailedEvent("Internal error", "input nested too deeply to process", n_tokens)
    if isinstance(exc, MemoryError):
        return FailedEvent("Internal error", "out of memory", n_tokens)
    return FailedEvent("Internal error", f"{type(exc).__name__}: {exc}"[:500], n_tokens)


def guarded(events: Iterable[StreamEvent]) -> Iterator[StreamEvent]:
    """``events`` unchanged, ending with a ``FailedEvent`` instead of any exception (see above)."""
    progress = _Progress()
    iterator = iter(events)
    try:
        for event in iterator:
            progress.saw(event)
            yield event
    except Exception as exc:  # noqa: BLE001 - the point: no exception may lose the run
        final = progress.failure(exc)
        if final is None:
            if progress.ended:
                return  # the stream already said how it ended; a failure in its cleanup changes nothing
            raise
        yield final
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # now, while the engine behind it is still alive (not at garbage collection)


async def aguarded(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """The async form of ``guarded``."""
    progress = _Progress()
    try:
        async for event in events:
            progress.saw(event)
            yield event
    except Exception as exc:  # noqa: BLE001
        final = progress.failure(exc)
        if final is None:
            if progress.ended:
                return
            raise
        yield final
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
