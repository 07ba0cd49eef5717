"""The local llama.cpp engine as a Backend: the blocking loop runs in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from playground.backends.base import Capabilities
from playground.engine.generator import Engine
from playground.errors import PlaygroundError
from playground.events import FailedEvent, StreamEvent
from playground.params import GenerationRequest

_END = object()


class LocalBackend:
    """Wraps an Engine; one stream at a time (the engine owns one KV cache)."""

    capabilities = Capabilities()

    def __init__(self, engine: Engine, *, dist_size: int = 0, name: str = "local") -> None:
        self.engine = engine
        self.dist_size = dist_size
        self.name = name
        self._lock = threading.Lock()

    async def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = cancel or threading.Event()

        def produce() -> None:
            with self._lock:
                try:
                    for event in self.engine.stream(request, cancel, dist_size=self.dist_size):
                        loop.call_soon_threadsafe(queue.put_nowait, event)
                except PlaygroundError as exc:
                    loop.call_soon_threadsafe(queue.put_nowait, FailedEvent(exc.title, exc.message, 0))
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

        thread = threading.Thread(target=produce, name="local-backend", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not _END:
                yield item  # type: ignore[misc]
        finally:
            cancel.set()  # a consumer that stops early ends the decode loop too

    async def aclose(self) -> None:
        self.engine.close()
