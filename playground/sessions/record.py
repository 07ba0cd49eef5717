"""Building sessions from the live event stream, as ``generate``, ``compare`` and the UI run.

Feed every event as it arrives (``SessionRecorder.feed(event, lane)``); ``session()`` gives a
snapshot at any time, so a save in the middle of a run keeps what has arrived (unfinished lanes have
``finish_reason`` None). Numbers are rounded as the JSON-lines output rounds them, so what is in
memory is exactly what the file will hold.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from playground.constraint import Constraint
from playground.errors import InvalidParameterError
from playground.events import (
    Alternative,
    DoneEvent,
    FailedEvent,
    StartEvent,
    StreamEvent,
    TokenEvent,
    round_logprob,
)
from playground.model_file import EMBEDDED_SHA256
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import Example
from playground.sessions.schema import (
    DEFAULT_EXAMPLE_FORMAT,
    ENV_NAME,
    BackendSpec,
    DistHead,
    Lane,
    LaneError,
    LanePrompt,
    Metrics,
    PromptParts,
    Receipt,
    RequestSettings,
    Session,
    TokenRecord,
    Vote,
)
from playground.transcript import Clock, Transcript, utc_now


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _constraint(value: Any) -> Constraint | None:
    """The constraint a start event's params name (``Constraint.to_dict``), None if none or unusable."""
    if not isinstance(value, dict):
        return None
    try:
        return Constraint.from_dict(value)
    except InvalidParameterError:
        return None


def backend_from_start(event: StartEvent) -> BackendSpec:
    """The backend as data, from what a start event says (only named fields: never a key)."""
    model = event.model
    if event.backend == "llama.cpp":
        sha = _str(model.get("sha256"))
        # The embedded model is found again on any machine by its hash; keep other models' paths.
        path = None if sha == EMBEDDED_SHA256 else _str(model.get("path"))
        return BackendSpec(kind="local", model=_str(model.get("name")) or "", model_path=path)
    label = _str(model.get("kind")) or event.backend
    kind = next((k for k in ("ollama", "llamacpp") if label.lower().startswith(k)), "openai")
    return BackendSpec(
        kind=kind,
        model=_str(model.get("name")) or _str(model.get("model")) or "",
        name=_str(model.get("endpoint")),
        base_url=_public_url(_str(model.get("base_url"))),
        endpoint=_str(model.get("mode")),
    )


def _public_url(url: str | None) -> str | None:
    """The URL without ``user:password@`` (people paste keys there) nor a query string."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def backend_from_endpoint(endpoint: Any) -> BackendSpec:
    """A remote lane's backend from a ``backends.endpoints.Endpoint`` (name of the key's variable only)."""
    env = getattr(endpoint, "api_key_env", None)
    return BackendSpec(
        kind=endpoint.kind if endpoint.kind in ("ollama", "llamacpp") else "openai",
        model=endpoint.model,
        name=endpoint.name or None,
        base_url=_public_url(endpoint.base_url),
        endpoint=getattr(endpoint, "mode", None),
        api_key_env=env if isinstance(env, str) and ENV_NAME.match(env) else None,
    )


def receipt_from_start(event: StartEvent) -> Receipt:
    model, params = event.model, event.params
    return Receipt(
        model_name=_str(model.get("name")) or _str(model.get("model")) or "",
        model_size=_int(model.get("size")),
        model_sha256=_str(model.get("sha256")),
        llama_cpp_python=_str(model.get("llama_cpp_python")),
        n_ctx=_int(model.get("n_ctx")),
        n_threads=_int(model.get("n_threads")),
        n_gpu_layers=_int(model.get("n_gpu_layers")),
        seed=_int(params.get("seed")),
        prompt_text=event.prompt,
        prompt_tokens=tuple(int(t) for t in event.prompt_tokens),
        prefill_chunk=_int(params.get("prefill_chunk")),
    )


def token_record(event: TokenEvent, keep_dist: int = 0) -> TokenRecord:
    """A token event as stored; ``keep_dist`` > len(top) also keeps that much of the raw head."""
    top = tuple(Alternative(int(a.id), a.text, round_logprob(a.logprob)) for a in event.top)  # type: ignore[arg-type]
    log_z = dist = None
    if event.dist is not None:
        log_z = _round(event.dist.log_z)
        n = min(keep_dist, len(event.dist.ids))
        if n > len(top):
            dist = DistHead(
                tuple(int(i) for i in event.dist.ids[:n]),
                tuple(round_logprob(float(x)) for x in event.dist.logprobs[:n]),  # type: ignore[misc]
            )
    return TokenRecord(
        i=event.i,
        id=event.id,
        text=event.text,
        logprob=round_logprob(event.logprob),
        p_sampled=_round(event.p_sampled, 8),
        top=top,
        t=round(event.t, 6),
        n_candidates=event.n_candidates,
        entropy=_round(event.entropy),
        log_z=log_z,
        dist=dist,
        forced=event.forced,
        constraint_mass_removed=_round(event.constraint_mass_removed, 8),
        unconstrained_id=event.unconstrained_id,
        unconstrained_text=event.unconstrained_text,
    )


class LaneRecorder:
    """Turns one stream's transcript (Start, Token..., Done/Failed) into a stored Lane."""

    def __init__(
        self,
        *,
        backend: BackendSpec | None = None,
        request: GenerationRequest | None = None,
        label: str = "",
        variant: str = "",
        prompt: LanePrompt | None = None,
        keep_dist: int = 0,
        clock: Clock = time.monotonic,
        transcript: Transcript | None = None,
    ) -> None:
        """``transcript``: one the caller keeps filling (then ``feed`` is not needed); ``variant`` and
        ``prompt``: the variant's name and its own prompt setup (``compare --variants`` lanes)."""
        self.backend = backend
        self.request = request
        self.label = label
        self.variant = variant
        self.prompt = prompt
        self.keep_dist = keep_dist
        self.transcript = transcript if transcript is not None else Transcript(clock=clock)

    @property
    def start(self) -> StartEvent | None:
        return self.transcript.start

    @property
    def end(self) -> DoneEvent | FailedEvent | None:
        return self.transcript.end

    @property
    def t_start(self) -> float | None:
        return self.transcript.t_start

    @property
    def finished(self) -> bool:
        return self.transcript.finished

    def feed(self, event: StreamEvent) -> None:
        self.transcript.add(event)

    def lane(self, offset_s: float = 0.0) -> Lane:
        """The lane as recorded so far."""
        start, end, req = self.start, self.end, self.request
        tokens = tuple(token_record(event, self.keep_dist) for event in self.transcript.tokens)
        params = start.params if start else {}
        receipt = receipt_from_start(start) if start else Receipt()
        if receipt.seed is None and isinstance(end, DoneEvent) and end.seed is not None:
            receipt = dataclasses.replace(receipt, seed=end.seed)
        n_vocab = next((t.dist.n_vocab for t in reversed(self.transcript.tokens) if t.dist is not None), None)
        if n_vocab is not None:
            receipt = dataclasses.replace(receipt, n_vocab=n_vocab)
        if req is not None:
            sampler = req.sampler
            settings = RequestSettings(req.max_tokens, tuple(req.stop), req.top_n, req.add_special,
                                       tuple(req.force_ids), req.constraint)
        else:
            sampler = SamplerParams.from_dict(params)
            settings = RequestSettings(
                max_tokens=_int(params.get("max_tokens")) or RequestSettings.max_tokens,
                stop=tuple(s for s in params.get("stop", ()) if isinstance(s, str)),
                top_n=_int(params.get("top_n")) if _int(params.get("top_n")) is not None else RequestSettings.top_n,
                constraint=_constraint(params.get("constraint")),
            )
        last_t = tokens[-1].t if tokens else 0.0
        seen = self.transcript.elapsed_s
        elapsed = None if seen is None else round(max(seen, last_t), 6)
        metrics = Metrics(n_tokens=len(tokens), elapsed_s=elapsed)
        fields: dict[str, Any] = {}
        if isinstance(end, DoneEvent):
            metrics = Metrics(
                n_tokens=len(tokens),
                ttft_s=_round(end.ttft_s),
                prompt_tok_s=_round(end.prompt_tok_s, 2),
                decode_tok_s=_round(end.decode_tok_s, 2),
                prompt_tokens_evaluated=end.prompt_tokens_evaluated,
                elapsed_s=elapsed,
            )
            fields = {"finish_reason": end.finish_reason, "stop_string": end.stop_string, "tail": end.tail}
        elif isinstance(end, FailedEvent):
            fields = {"finish_reason": "error", "interrupted": True, "error": LaneError(end.title, end.message)}
        return Lane(
            label=self.label,
            variant=self.variant,
            prompt=self.prompt,
            backend=self.backend or (backend_from_start(start) if start else BackendSpec()),
            sampler=sampler,
            request=settings,
            messages=req.messages if req is not None else None,
            receipt=receipt,
            started=self.transcript.started_utc,
            offset_s=round(max(0.0, offset_s), 6),
            tokens=tokens,
            metrics=metrics,
            **fields,
        )


class SessionRecorder:
    """Records N lanes run on one prompt; lanes are created on first use (index = lane number)."""

    def __init__(
        self,
        *,
        kind: str = "generate",
        title: str = "",
        prompt: PromptParts | None = None,
        examples: Iterable[Example] = (),
        example_format: str = DEFAULT_EXAMPLE_FORMAT,
        template_mode: str = "plain",
        keep_dist: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.kind = kind
        self.title = title
        self.prompt = prompt
        self.examples = tuple(examples)
        self.example_format = example_format
        self.template_mode = template_mode
        self.keep_dist = keep_dist
        self.created = utc_now()
        self._clock = clock
        self._origin: float | None = None
        self.lanes: dict[int, LaneRecorder] = {}
        self.vote: Vote | None = None
        self.extractor: str | None = None
        """For votes: "regex", "last_number" or "json_field" (set by the caller)."""
        self.extractor_pattern: str | None = None

    def lane(
        self, index: int, *, backend: BackendSpec | None = None, request: GenerationRequest | None = None,
        label: str = "", variant: str = "", prompt: LanePrompt | None = None,
    ) -> LaneRecorder:
        """The recorder of lane ``index``; declare a lane's request here to keep a random seed as -1
        (and a variant's name and own prompt, see ``LaneRecorder``)."""
        if index not in self.lanes:
            self.lanes[index] = LaneRecorder(
                backend=backend, request=request, label=label, variant=variant, prompt=prompt,
                keep_dist=self.keep_dist, clock=self._clock,
            )
        return self.lanes[index]

    def feed(self, event: StreamEvent, lane: int = 0) -> None:
        if self._origin is None:
            self._origin = self._clock()
        self.lane(lane).feed(event)

    def feed_compare(self, item: Any) -> None:
        """Feed one item of ``compare.run.run_compare``: lane events are recorded, a vote is
        kept (with ``extractor``), the batch summary and divergences are derived data and skipped."""
        event = getattr(item, "event", None)
        lane = getattr(item, "lane", None)
        if isinstance(lane, int) and isinstance(event, (StartEvent, TokenEvent, DoneEvent, FailedEvent)):
            self.feed(event, lane)
        elif hasattr(item, "by_sample") and hasattr(item, "majority"):
            self.vote = Vote(
                extractor=self.extractor or "unknown",
                pattern=self.extractor_pattern,
                answers=tuple(item.by_sample),
                majority=item.majority,
                agreement=round(float(item.agreement), 6),
            )

    @property
    def finished(self) -> bool:
        return bool(self.lanes) and all(r.finished for r in self.lanes.values())

    def session(self) -> Session:
        """A snapshot of everything recorded so far."""
        ordered = [self.lanes[k] for k in sorted(self.lanes)]
        origin = self._origin or 0.0
        lanes = tuple(r.lane((r.t_start - origin) if r.t_start is not None else 0.0) for r in ordered)
        prompt = self.prompt
        if prompt is None:
            first = next((r.start for r in ordered if r.start is not None), None)
            prompt = PromptParts(text=first.prompt if first else "")
        return Session(
            created=self.created,
            kind=self.kind,
            title=self.title,
            prompt=prompt,
            examples=self.examples,
            example_format=self.example_format,
            template_mode=self.template_mode,  # type: ignore[arg-type]
            lanes=lanes,
            vote=self.vote,
        )


def record(events: Iterable[StreamEvent | tuple[int, StreamEvent]], **options: Any) -> Session:
    """Record a whole stream: plain events (one lane) or ``(lane, event)`` pairs."""
    recorder = SessionRecorder(**options)
    for item in events:
        if isinstance(item, tuple):
            recorder.feed(item[1], item[0])
        else:
            recorder.feed(item)
    return recorder.session()
