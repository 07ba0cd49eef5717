"""Lanes on several models and backends at once, merged into one event stream.

Lanes on the same local model still batch through one ``LaneSource`` (prompt evaluated once, one
decode per step); each local model's runner works in its own thread, and every remote lane is an
asyncio task (all of them on one event loop in one thread). Every source puts its events on one
queue, so the caller sees ``LaneEvent(lane, event)`` in arrival order, with lane numbers of the
whole run, and one ``BatchDone`` per local model (``BatchDone.lanes`` says which lanes it held).

Remote lanes on one endpoint share one backend for the run (one httpx client, so connections are
reused) and at most ``max_concurrency`` of its requests are in flight at once; the other lanes
wait, in lane order, and start as soon as one ends.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from playground.backends.base import Backend
from playground.backends.endpoints import Endpoint
from playground.compare.events import BatchDone, LaneEvent
from playground.compare.run import LaneSource, lane_stream
from playground.errors import PlaygroundError
from playground.events import FailedEvent
from playground.params import GenerationRequest
from playground.stream_guard import aguarded

_END = object()


@dataclass(frozen=True)
class LaneTarget:
    """Where one lane runs: a remote endpoint, another local model, or (neither) the default model."""

    endpoint: Endpoint | None = None
    model: str | None = None
    """A local GGUF path; None: the command's model."""

    @property
    def is_remote(self) -> bool:
        return self.endpoint is not None


def model_key(path: str | None, default: str) -> str:
    """What identifies a local model (and so its token ids): its resolved path."""
    return default if path is None else str(Path(path).expanduser().resolve())


def id_spaces(targets: Sequence[LaneTarget], default: str) -> list[str | None]:
    """Per lane, the model its token ids belong to (None: a remote lane, whose tokens have no ids)."""
    return [None if t.is_remote else model_key(t.model, default) for t in targets]


class MixedRunner:
    """Runs lanes whose targets differ; ``runners`` maps each local model key to its LaneSource.

    The caller loads (and closes) the engines; remote backends are built and closed per run, one
    per endpoint.
    """

    def __init__(self, targets: Sequence[LaneTarget], runners: Mapping[str, LaneSource], default: str,
                 environ: Mapping[str, str] | None = None) -> None:
        self.targets = list(targets)
        self.runners = dict(runners)
        self.default = default
        self.environ = environ
        self.id_spaces = id_spaces(self.targets, default)

    def stream(
        self, requests: Sequence[GenerationRequest], cancel: threading.Event | None = None, *, dist_size: int = 0
    ) -> Iterator[LaneEvent | BatchDone]:
        """Every lane's events as they arrive; ends when every source has ended.

        A consumer that stops early sets ``cancel`` (created when None) so every source ends.
        """
        cancel = cancel if cancel is not None else threading.Event()
        out: queue.Queue[object] = queue.Queue()
        groups: dict[str, list[int]] = {}
        remote: list[int] = []
        for k, key in enumerate(self.id_spaces):
            if key is None:
                remote.append(k)
            else:
                groups.setdefault(key, []).append(k)
        threads = [
            threading.Thread(target=self._local, args=(self.runners[key], lanes, requests, cancel, dist_size, out),
                             name="compare-local", daemon=True)
            for key, lanes in groups.items()
        ]
        if remote:
            threads.append(threading.Thread(target=self._remote, args=(remote, requests, cancel, out),
                                            name="compare-remote", daemon=True))
        for thread in threads:
            thread.start()
        pending = len(threads)
        try:
            while pending:
                item = out.get()
                if item is _END:
                    pending -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item  # type: ignore[misc]
        finally:
            if pending:
                cancel.set()
            for thread in threads:
                thread.join()

    @staticmethod
    def _local(runner: LaneSource, lanes: list[int], requests: Sequence[GenerationRequest],
               cancel: threading.Event, dist_size: int, out: queue.Queue[object]) -> None:
        try:
            for item in lane_stream(runner, [requests[k] for k in lanes], cancel, dist_size):
                if isinstance(item, LaneEvent):
                    out.put(LaneEvent(lanes[item.lane], item.event))
                else:
                    out.put(replace(item, lanes=tuple(lanes)))
        except PlaygroundError as exc:
            for k in lanes:
                out.put(LaneEvent(k, FailedEvent(exc.title, exc.message, 0)))
        except BaseException as exc:  # a bug: hand it to the consumer rather than hang it
            out.put(exc)
        finally:
            out.put(_END)

    def _remote(self, lanes: list[int], requests: Sequence[GenerationRequest], cancel: threading.Event,
                out: queue.Queue[object]) -> None:
        try:
            asyncio.run(self._remote_all(lanes, requests, cancel, out))
        except BaseException as exc:
            out.put(exc)
        finally:
            out.put(_END)

    async def _remote_all(self, lanes: list[int], requests: Sequence[GenerationRequest],
                          cancel: threading.Event, out: queue.Queue[object]) -> None:
        shared: dict[Endpoint, _Shared | PlaygroundError] = {}
        per_lane = []
        for k in lanes:
            endpoint = self.targets[k].endpoint
            assert endpoint is not None
            if endpoint not in shared:
                shared[endpoint] = _shared(endpoint, self.environ)
            per_lane.append(shared[endpoint])
        try:
            await asyncio.gather(*(self._remote_lane(k, requests[k], entry, cancel, out) for k, entry in zip(lanes, per_lane)))
        finally:
            for entry in shared.values():
                if isinstance(entry, _Shared):
                    await entry.backend.aclose()

    @staticmethod
    async def _remote_lane(k: int, request: GenerationRequest, shared: "_Shared | PlaygroundError",
                           cancel: threading.Event, out: queue.Queue[object]) -> None:
        if isinstance(shared, PlaygroundError):
            out.put(LaneEvent(k, FailedEvent(shared.title, shared.message, 0)))
            return
        try:
            async with shared.slots:  # the endpoint's max_concurrency; lanes start in order
                # aguarded: whatever a hostile server makes the parser raise fails this lane only.
                async for event in aguarded(shared.backend.stream(request, cancel)):
                    out.put(LaneEvent(k, event))
        except PlaygroundError as exc:
            out.put(LaneEvent(k, FailedEvent(exc.title, exc.message, 0)))


@dataclass(frozen=True)
class _Shared:
    """One endpoint's backend for a run (one client: its lanes reuse connections) and its slots."""

    backend: Backend
    slots: asyncio.Semaphore


def _shared(endpoint: Endpoint, environ: Mapping[str, str] | None) -> _Shared | PlaygroundError:
    """The endpoint's backend and a semaphore of ``max_concurrency`` requests, counted as lanes of
    ``requests_per_stream`` requests each (a llamacpp lane with raw logprobs sends two at once)."""
    from playground.backends.factory import remote_backend

    try:
        backend = remote_backend(endpoint, environ)
    except PlaygroundError as exc:
        return exc
    per_lane = max(1, getattr(backend, "requests_per_stream", 1))
    return _Shared(backend, asyncio.Semaphore(max(1, endpoint.max_concurrency // per_lane)))
