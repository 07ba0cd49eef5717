"""One run, whatever it holds: the job every command (and, in time, every screen) runs.

A ``RunJob`` is a list of lanes (``LanePlan``: a request and where it runs) and an ``EnginePool``
that owns the local models. ``stream()`` yields the lanes' events tagged with their lane
(``LaneEvent``), one ``BatchDone`` per local model that ran several lanes, then the analysis
(``Divergence`` per lane, a ``Vote``); ``cancel()`` ends every lane between two tokens;
``transcripts`` holds what each lane produced, also when the run failed part-way.

A single run is a job of one lane: ``playground generate`` and ``playground compare`` differ only
in how many lanes they plan and how they print the events. Local and remote lanes differ only
below, in the backend: a local model is a ``backends.local.LocalBackend`` (one lane through the
engine's own loop, several in one batch), a remote endpoint a remote ``Backend``; lanes on several
targets are merged by ``compare.mixed.MixedRunner``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from playground.backends.endpoints import Endpoint, load_endpoints
from playground.backends.local import LocalBackend
from playground.compare.events import CompareEvent
from playground.compare.extract import Extractor
from playground.compare.lane_spec import LaneSpec
from playground.compare.mixed import LaneTarget, MixedRunner, model_key
from playground.compare.run import LaneTranscript, run_compare
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest

#: When no context size is given, a pool grows the context to hold a job's lanes up to this.
MAX_AUTO_CTX = 32768


def lane_targets(lanes: Sequence[LaneSpec], endpoints: Mapping[str, Endpoint] | None = None) -> list[LaneTarget]:
    """Where each lane runs; a ``backend=NAME`` is looked up in ``endpoints`` (the config's
    ``[backends]``, read only when a lane names one)."""
    if endpoints is None:
        endpoints = load_endpoints() if any(lane.backend for lane in lanes) else {}
    targets = []
    for lane in lanes:
        if lane.backend is not None and lane.backend not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none configured"
            raise InvalidParameterError(f"no backend named '{lane.backend}' in the config (known: {known})")
        targets.append(LaneTarget(endpoints[lane.backend] if lane.backend else None, lane.model))
    return targets


@dataclass(frozen=True)
class LanePlan:
    """One lane of a job: what to generate and where."""

    request: GenerationRequest
    target: LaneTarget = field(default_factory=LaneTarget)


class EnginePool:
    """The local models a job needs, loaded on first use, each as a ``LocalBackend``.

    ``choice`` says how to load (context, threads, GPU layers) and which model is the default;
    a lane's ``LaneTarget.model`` names another file. With ``fit_context`` (no ``-c`` given), a
    model that runs several lanes gets a context large enough for the prompt plus every lane's
    tokens, since the lanes share one KV cache. The caller closes the pool.
    """

    def __init__(self, choice: EngineChoice, *, fit_context: bool = False) -> None:
        self.choice = choice
        self.fit_context = fit_context
        self._default: str | None = None
        self._backends: dict[str, LocalBackend] = {}

    @property
    def default(self) -> str:
        """The default model's key (found only when asked: a remote-only job needs no model file)."""
        if self._default is None:
            from playground.model_file import embedded_model_path

            path = self.choice.model_path
            self._default = model_key(path, "") if path else str(embedded_model_path().resolve())
        return self._default

    def key(self, target: LaneTarget) -> str:
        return model_key(target.model, self.default)

    def backend(self, target: LaneTarget, requests: Sequence[GenerationRequest]) -> LocalBackend:
        """The loaded model for ``target``, able to run ``requests`` together (loaded if needed)."""
        key = self.key(target)
        have = self._backends.get(key)
        if have is not None and have.max_lanes >= len(requests):
            return have
        if have is not None:
            have.close()  # too few sequences for this job: load it again, larger
        path = self.choice.model_path if key == self.default else target.model
        choice = replace(self.choice, model_path=path)
        if self.fit_context and len(requests) > 1:
            prompts = {(r.prompt, r.add_special) for r in requests}  # lanes may have their own prompts
            need = sum(len(p.encode("utf-8")) + 72 for p, _ in prompts) + sum(r.max_tokens for r in requests)
            grown = max(choice.n_ctx, min(need, MAX_AUTO_CTX))
            if grown > choice.n_ctx:  # sized for the lanes, not asked for: at most the trained context
                choice = replace(choice, n_ctx=grown, beyond_train="clamp" if choice.beyond_train == "refuse" else choice.beyond_train)
        self._backends[key] = LocalBackend.load(choice, n_lanes=len(requests))
        return self._backends[key]

    def adopt(self, backend: LocalBackend) -> None:
        """Use an already loaded model (a screen's engine) for its file; the first adopted one is
        the default. The pool closes it only if the backend owns its engine."""
        key = model_key(str(backend.engine.model.file.path), "")
        if self._default is None:
            self._default = key
        old = self._backends.get(key)
        if old is not None and old is not backend:
            old.close()
        self._backends[key] = backend

    def loaded(self) -> Mapping[str, LocalBackend]:
        return dict(self._backends)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


class RunJob:
    """Lanes run together; see the module docstring."""

    def __init__(
        self,
        lanes: Sequence[LanePlan],
        pool: EnginePool,
        *,
        dist_size: int = 0,
        diverge: bool = False,
        extractor: Extractor | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.lanes = list(lanes)
        self.pool = pool
        self.dist_size = dist_size
        self.diverge = diverge
        self.extractor = extractor
        self.environ = environ
        self.transcripts: list[LaneTranscript] = []
        self._cancel = threading.Event()

    @property
    def requests(self) -> list[GenerationRequest]:
        return [lane.request for lane in self.lanes]

    def prepare(self) -> None:
        """Load every local model the lanes need (blocking; errors here mean nothing ran)."""
        groups: dict[str, list[GenerationRequest]] = {}
        targets: dict[str, LaneTarget] = {}
        for lane in self.lanes:
            if not lane.target.is_remote:
                key = self.pool.key(lane.target)
                groups.setdefault(key, []).append(lane.request)
                targets.setdefault(key, lane.target)
        for key, requests in groups.items():
            self.pool.backend(targets[key], requests)

    def local_backend(self, target: LaneTarget = LaneTarget()) -> LocalBackend:
        """The loaded backend a local lane runs on (after ``prepare``), e.g. for its chat template."""
        return self.pool.backend(target, [lane.request for lane in self.lanes
                                          if not lane.target.is_remote and self.pool.key(lane.target) == self.pool.key(target)])

    def with_requests(self, requests: Sequence[GenerationRequest]) -> "RunJob":
        """The same job with each lane's request replaced (e.g. rendered through a chat template)."""
        self.lanes = [replace(lane, request=request) for lane, request in zip(self.lanes, requests)]
        return self

    def cancel(self) -> None:
        """End every lane between two tokens (finish_reason "cancelled"); safe from any thread."""
        self._cancel.set()

    @property
    def cancel_event(self) -> threading.Event:
        return self._cancel

    def stream(self) -> Iterator[CompareEvent]:
        """Every event of the run (see the module docstring); blocking, so run it in a thread in a UI."""
        self.prepare()
        targets = [lane.target for lane in self.lanes]
        sources = {key: backend for key, backend in self.pool.loaded().items()
                   if any(not t.is_remote and self.pool.key(t) == key for t in targets)}
        if len(sources) == 1 and not any(t.is_remote for t in targets):
            runner = next(iter(sources.values()))
        else:
            default = self.pool.default if sources else ""
            runner = MixedRunner(targets, sources, default, self.environ)
        yield from run_compare(runner, self.requests, self._cancel, diverge=self.diverge and len(self.lanes) > 1,
                               extractor=self.extractor, transcripts=self.transcripts, dist_size=self.dist_size)

    def run(self) -> list[LaneTranscript]:
        """Stream the job to its end and return what each lane produced (for callers that only
        want the results: trees, evaluation cells)."""
        events = self.stream()
        try:
            for _ in events:
                pass
        finally:
            events.close()  # the lanes' generators end while their llama.cpp contexts still exist
        return self.transcripts
