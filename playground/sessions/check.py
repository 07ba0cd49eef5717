"""The reproducibility check: run every lane again with its recorded settings and seed, compare.

Before anything runs, each lane's model file is found and its sha256 compared with the receipt: a
different file means the check cannot run (it would compare two models, not two runs). Each local
lane is re-run on the single-lane engine with the recorded context size, threads, GPU layers and
prompt schedule (``prefill_chunk``), with its forced prefix and its constraint, from a cold cache,
and the token ids (and which were forced) are compared in order: identical, or the first
divergent token with both sides' probabilities. A recording that reused a
cached prompt prefix needs no excuse: the engine reuses only whole canonical chunks, or the kept
last row of an unchanged prompt, so a reused prefix holds exactly the numbers of a cold run.

Exit codes (``CheckReport.exit_code``): 0 all identical, 1 some lane diverges, 2 some lane cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from playground.engine_options import EngineChoice
from playground.errors import PlaygroundError
from playground.events import DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.model_file import EMBEDDED_SHA256, resolve_model
from playground.params import GenerationRequest
from playground.sessions.schema import Lane, Session, TokenRecord

Status = Literal["identical", "diverged", "cannot_run"]

#: The schedule of recordings without ``prefill_chunk``: the whole prompt in one ``llama_decode``,
#: which llama.cpp split into 512-token micro-batches from position 0, i.e. chunks of 512.
LEGACY_PREFILL_CHUNK = 512


class CannotRun(Exception):
    """A lane cannot be re-run faithfully; the message says why."""


@dataclass(frozen=True)
class TokenSide:
    """One side of a divergence: the token and its probabilities (None: not available)."""

    id: int
    text: str
    logprob: float | None
    p_sampled: float | None
    forced: bool = False
    """Given by the lane's forced prefix, not sampled."""


@dataclass(frozen=True)
class Divergence:
    """The first place two runs differ. A side that is None had already ended (see ``*_end``)."""

    index: int
    recorded: TokenSide | None
    rerun: TokenSide | None
    recorded_end: str | None = None
    rerun_end: str | None = None


@dataclass(frozen=True)
class LaneCheck:
    lane: int
    status: Status
    n_recorded: int = 0
    n_rerun: int = 0
    divergence: Divergence | None = None
    reason: str = ""
    max_logprob_delta: float | None = None
    """Largest |logprob difference| over the identical tokens (numerical agreement)."""
    note: str = ""


@dataclass(frozen=True)
class CheckReport:
    lanes: tuple[LaneCheck, ...]

    @property
    def exit_code(self) -> int:
        statuses = {lane.status for lane in self.lanes}
        return 2 if "cannot_run" in statuses else 1 if "diverged" in statuses else 0

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "lanes": [asdict(lane) for lane in self.lanes]}


# --- pure comparison -----------------------------------------------------------------------------
def _side(tok: TokenRecord | TokenEvent) -> TokenSide:
    return TokenSide(tok.id, tok.text, tok.logprob, tok.p_sampled, tok.forced)


def first_divergence(
    recorded: Sequence[TokenRecord],
    rerun: Sequence[TokenEvent],
    recorded_end: str | None,
    rerun_end: str | None,
) -> tuple[Divergence | None, float | None]:
    """The first index where the token ids differ (or one is forced and the other sampled) or one
    run ends earlier; and the largest logprob difference over the tokens both runs share."""
    delta: float | None = None
    for j, (a, b) in enumerate(zip(recorded, rerun)):
        if a.id != b.id or a.forced != b.forced:
            return Divergence(j, _side(a), _side(b)), delta
        if a.logprob is not None and b.logprob is not None:
            delta = max(delta or 0.0, abs(a.logprob - b.logprob))
    if len(recorded) != len(rerun):
        j = min(len(recorded), len(rerun))
        a = _side(recorded[j]) if j < len(recorded) else None
        b = _side(rerun[j]) if j < len(rerun) else None
        return Divergence(j, a, b, None if a else recorded_end, None if b else rerun_end), delta
    return None, delta


def is_complete(lane: Lane) -> bool:
    """Did the recorded run end by itself (so its length is part of what must reproduce)?"""
    return lane.finish_reason in ("stop", "length")


def rerun_request(lane: Lane) -> GenerationRequest:
    """The request that reproduces ``lane``: recorded prompt, settings (forced prefix and constraint
    included) and the seed actually used."""
    rc = lane.receipt
    if rc.seed is None and not lane.sampler.is_greedy:
        raise CannotRun("the seed actually used was not recorded")
    n_forced = len(lane.request.force_ids)  # max_tokens counts the tokens after them
    max_tokens = lane.request.max_tokens if is_complete(lane) else max(1, len(lane.tokens) - n_forced)
    return GenerationRequest(
        prompt=rc.prompt_text,
        sampler=lane.sampler.replace(seed=rc.seed if rc.seed is not None else 0),
        max_tokens=max_tokens,
        stop=lane.request.stop,
        top_n=lane.request.top_n,
        add_special=lane.request.add_special,
        messages=lane.messages,
        force_ids=lane.request.force_ids,
        constraint=lane.request.constraint,
    )


# --- running ---------------------------------------------------------------------------------------
def lane_engine_choice(lane: Lane, model_override: str | None = None) -> EngineChoice:
    """Where the lane's model is and how it was loaded; verifies the file's sha256 first."""
    rc, backend = lane.receipt, lane.backend
    if backend.kind != "local":
        raise CannotRun(f"{backend.kind} lane: a remote server's model cannot be verified by hash, so it is not re-run")
    if not rc.prompt_text or not rc.prompt_tokens:
        raise CannotRun("the lane recorded no prompt (did it fail before starting?)")
    if not rc.model_sha256:
        raise CannotRun("the receipt has no model sha256 to verify")
    path = model_override or backend.model_path  # None: the embedded model
    try:
        model = resolve_model(path)
    except PlaygroundError as exc:
        if path is not None and model_override is None and rc.model_sha256 == EMBEDDED_SHA256:
            model, path = resolve_model(None), None  # recorded elsewhere, but it is the embedded model
        else:
            raise CannotRun(exc.message) from None
    if model.sha256 != rc.model_sha256:
        raise CannotRun(
            f"model hash differs: {model.path} has sha256 {model.sha256[:16]}..., the session was recorded "
            f"with {rc.model_sha256[:16]}... ({rc.model_name}); not the recorded model"
        )
    return EngineChoice(
        model_path=str(model.path) if path is not None else None,
        n_ctx=rc.n_ctx or 4096,
        n_gpu_layers=rc.n_gpu_layers,
        n_threads=rc.n_threads,
        prefill_chunk=rc.prefill_chunk or LEGACY_PREFILL_CHUNK,
    ).validate()


def _prefix_note(lane: Lane) -> str:
    """Only recordings from before the canonical schedule could reuse a prefix inexactly."""
    evaluated, total = lane.metrics.prompt_tokens_evaluated, len(lane.receipt.prompt_tokens)
    if lane.receipt.prefill_chunk is None and 0 < evaluated < total:
        return (f"the recording reused a cached prompt prefix ({evaluated} of {total} tokens evaluated) before "
                "prompt schedules were recorded; the check evaluates the whole prompt, which can shift the last digits")
    return ""


def check_lane(engine: Any, lane: Lane, index: int) -> LaneCheck:
    """Run ``lane`` again on ``engine`` (an Engine without prefix reuse) and compare."""
    request = rerun_request(lane)
    start: StartEvent | None = None
    tokens: list[TokenEvent] = []
    end: DoneEvent | FailedEvent | None = None
    for event in engine.stream(request):
        if isinstance(event, StartEvent):
            start = event
        elif isinstance(event, TokenEvent):
            tokens.append(event)
        else:
            end = event
    if isinstance(end, FailedEvent):
        return LaneCheck(index, "cannot_run", len(lane.tokens), len(tokens), reason=f"the re-run failed: {end.title}: {end.message}")
    note = _prefix_note(lane)
    if start is not None and tuple(start.prompt_tokens) != lane.receipt.prompt_tokens:
        return LaneCheck(index, "diverged", len(lane.tokens), len(tokens), reason="the prompt tokenizes differently now", note=note)
    recorded = lane.tokens
    rerun_end = end.finish_reason if isinstance(end, DoneEvent) else None
    if not is_complete(lane):
        tokens = tokens[: len(recorded)]  # an interrupted recording is compared as far as it went
        rerun_end = None
    divergence, delta = first_divergence(recorded, tokens, lane.finish_reason, rerun_end)
    status: Status = "identical" if divergence is None else "diverged"
    return LaneCheck(index, status, len(recorded), len(tokens), divergence, max_logprob_delta=delta, note=note)


def check_session(
    session: Session,
    *,
    model_override: str | None = None,
    on_lane: Callable[[LaneCheck], None] | None = None,
) -> CheckReport:
    """Verify every lane's model, then re-run each lane and compare (see the module docstring)."""
    plans: list[EngineChoice | LaneCheck] = []
    for k, lane in enumerate(session.lanes):
        try:
            choice = lane_engine_choice(lane, model_override)
            rerun_request(lane).validate()
            plans.append(choice)
        except (CannotRun, PlaygroundError) as exc:
            plans.append(LaneCheck(k, "cannot_run", len(lane.tokens), reason=getattr(exc, "message", None) or str(exc)))
    engines: dict[EngineChoice, Any] = {}
    results: list[LaneCheck] = []
    try:
        for k, (lane, plan) in enumerate(zip(session.lanes, plans)):
            if isinstance(plan, EngineChoice):
                try:
                    if plan not in engines:
                        engines[plan] = plan.load(reuse_prefix=False)
                    result = check_lane(engines[plan], lane, k)
                except PlaygroundError as exc:
                    result = LaneCheck(k, "cannot_run", len(lane.tokens), reason=f"{exc.title}: {exc.message}")
            else:
                result = plan
            results.append(result)
            if on_lane is not None:
                on_lane(result)
    finally:
        for engine in engines.values():
            engine.close()
    return CheckReport(tuple(results))
