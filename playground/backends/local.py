"""The local llama.cpp engine as a Backend, which can also run several lanes in one batch.

``stream(request)`` is the Backend protocol's async stream (the blocking loop runs in a thread);
``stream_lanes(requests)`` is what a run job calls: one lane goes through the engine's own loop
(``Engine.stream``), several through ``engine.lanes.LaneRunner`` (the prompt evaluated once, one
decode per step). Both yield ``LaneEvent``s, and the batch a ``BatchDone``. One stream at a time:
the engine owns one KV cache.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING

from playground.backends.base import Capabilities
from playground.engine.lane_events import BatchDone, LaneEvent, batch_summary
from playground.engine_options import EngineChoice
from playground.errors import PlaygroundError
from playground.events import DoneEvent, FailedEvent, StartEvent, StreamEvent, TokenEvent
from playground.params import GenerationRequest

if TYPE_CHECKING:  # llama_cpp loads with the engine, not with this module (the TUI imports it at start-up)
    from playground.engine.generator import Engine

_END = object()


class LocalBackend:
    """Wraps an Engine (and, when its context holds several sequences, a LaneRunner)."""

    capabilities = Capabilities()

    def __init__(self, engine: Engine, *, dist_size: int = 0, name: str = "local", owns_engine: bool = True) -> None:
        self.engine = engine
        self.dist_size = dist_size
        self.name = name
        self.owns_engine = owns_engine
        self._lock = threading.Lock()
        self._runner = None

    @classmethod
    def load(cls, choice: EngineChoice, *, n_lanes: int = 1) -> "LocalBackend":
        """Load ``choice``'s model with room for ``n_lanes`` lanes (blocking)."""
        from playground.engine.lanes import seq_max_for

        return cls(choice.load(n_seq_max=seq_max_for(n_lanes) if n_lanes > 1 else 1))

    @property
    def max_lanes(self) -> int:
        """Lanes one batch can hold (1 for a context with a single sequence)."""
        runner = self._lane_runner()
        return max(1, runner.max_lanes) if runner is not None else 1

    def _lane_runner(self):
        import llama_cpp

        if self._runner is None and llama_cpp.llama_n_seq_max(self.engine.model.ctx) > 1:
            from playground.engine.lanes import LaneRunner

            self._runner = LaneRunner(self.engine)
        return self._runner

    def stream_lanes(
        self, requests: Sequence[GenerationRequest], cancel: threading.Event | None = None, *, dist_size: int = 0
    ) -> Iterator[LaneEvent | BatchDone]:
        """The lanes' events (blocking): one lane as a single run, several in one batch."""
        with self._lock:
            if len(requests) == 1:
                # Exactly what a single run gives, then its figures as a batch of one lane.
                yield from _single_lane(self.engine, requests[0], cancel, dist_size)
                return
            runner = self._lane_runner()
            if runner is None:
                raise PlaygroundError(f"{len(requests)} lanes need a model loaded for several sequences",
                                      title="Lanes")
            yield from runner.stream(requests, cancel, dist_size=dist_size)

    async def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = cancel or threading.Event()

        def produce() -> None:
            try:
                for item in self.stream_lanes([request], cancel, dist_size=self.dist_size):
                    if isinstance(item, LaneEvent):
                        loop.call_soon_threadsafe(queue.put_nowait, item.event)
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

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self.owns_engine:
            self.engine.close()

    async def aclose(self) -> None:
        self.close()


def _single_lane(engine: Engine, request: GenerationRequest, cancel: threading.Event | None,
                 dist_size: int) -> Iterator[LaneEvent | BatchDone]:
    t0 = time.perf_counter()
    n_prompt = n_evaluated = n_tokens = 0
    t_first = t_last = None
    for event in engine.stream(request, cancel, dist_size=dist_size):
        match event:
            case StartEvent():
                n_prompt = len(event.prompt_tokens)
            case TokenEvent():
                n_tokens += 1
                t_first = event.t if t_first is None else t_first
                t_last = event.t
            case DoneEvent():
                n_evaluated = event.prompt_tokens_evaluated
        yield LaneEvent(0, event)
    prompt_s = t_first if t_first is not None else 0.0
    yield batch_summary(t0, prompt_s, n_prompt, n_evaluated, [(n_tokens, t_first, t_last)], max(0, n_tokens - 1))
