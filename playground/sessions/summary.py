"""Plain-text summaries of sessions and check reports, for the headless commands."""

from __future__ import annotations

import math

from playground.sessions.check import CheckReport, Divergence, LaneCheck, TokenSide
from playground.sessions.schema import Lane, Session

NOT_AVAILABLE = "not available from this backend"


def _short(text: str, width: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def sampler_line(lane: Lane) -> str:
    s = lane.sampler
    if s.is_greedy:
        core = "greedy"
    else:
        core = f"temp={s.temperature:g} top_k={s.top_k} top_p={s.top_p:g} min_p={s.min_p:g}"
    if s.repeat_penalty != 1.0:
        core += f" repeat_penalty={s.repeat_penalty:g}/{s.repeat_last_n}"
    if not s.is_greedy:  # a greedy run ignores its seed
        seed = lane.receipt.seed if lane.receipt.seed is not None else s.seed
        core += f" seed={seed}"
    return f"{core} max_tokens={lane.request.max_tokens}"


def backend_line(lane: Lane) -> str:
    b = lane.backend
    if b.kind == "local":
        where = b.model_path or "embedded"
        return f"local {lane.receipt.model_name or b.model} ({where})"
    return f"{b.kind} {b.model} at {b.base_url or '?'}"


def lane_outcome(lane: Lane) -> str:
    if lane.error is not None:
        return f"interrupted after {len(lane.tokens)} tokens: {lane.error.title}: {lane.error.message}"
    if lane.finish_reason is None:
        return f"unfinished when saved, {len(lane.tokens)} tokens"
    parts = [f"{len(lane.tokens)} tokens, {lane.finish_reason}"]
    m = lane.metrics
    if m.ttft_s is not None:
        parts.append(f"ttft {m.ttft_s * 1000:.0f} ms")
    if m.decode_tok_s is not None:
        parts.append(f"{m.decode_tok_s:.1f} tok/s")
    return ", ".join(parts)


def session_summary(session: Session, *, source: str = "", upgraded_from: int | None = None) -> str:
    """A few lines per lane: what was run, on what, and what came out."""
    lines = []
    head = f"{source}: " if source else ""
    lines.append(f"{head}{session.kind} session, {len(session.lanes)} lane(s), created {session.created or 'unknown'}")
    if upgraded_from is not None:
        lines.append(f"  (schema version {upgraded_from}, upgraded on load; the file was not changed)")
    if session.title:
        lines.append(f"  title: {session.title}")
    p = session.prompt
    if p.mode == "structured":
        for name in ("instruction", "context", "input"):
            if getattr(p, name):
                lines.append(f"  {name}: {_short(getattr(p, name))}")
    elif p.mode == "conversation":
        if p.system:
            lines.append(f"  system: {_short(p.system)}")
        lines.append(f"  conversation: {len(p.turns)} turn(s)"
                     + (f", last ({p.turns[-1].role}): {_short(p.turns[-1].content)}" if p.turns else ""))
    else:
        lines.append(f"  prompt: {_short(p.text)}")
    if session.examples:
        enabled = sum(e.enabled for e in session.examples)
        lines.append(f"  examples: {enabled} of {len(session.examples)} enabled, format {session.example_format!r}")
    lines.append(f"  template: {session.template_mode}")
    for k, lane in enumerate(session.lanes):
        label = f" {lane.label}" if lane.label else ""
        variant = f" [variant {lane.variant}]" if lane.variant else ""
        lines.append(f"lane {k}{variant}{label}: {backend_line(lane)}")
        lines.append(f"  {sampler_line(lane)}")
        if lane.request.force_ids:
            lines.append(f"  forced prefix: {len(lane.request.force_ids)} token(s)")
        if lane.request.constraint is not None:
            lines.append(f"  constraint: {lane.request.constraint.label} {_short(lane.request.constraint.source, 50)}")
        lines.append(f"  {lane_outcome(lane)}")
        n_bad = sum(bool(tok.bad_values) for tok in lane.tokens)
        if n_bad:
            lines.append(f"  {n_bad} token(s) had NaN, infinite or impossible values, stored as null")
        lines.append(f"  > {_short(lane.text, 100)}")
    for note in session.trimmed[:10]:
        lines.append(f"trimmed when saved: {_short(note, 200)}")
    if len(session.trimmed) > 10:
        lines.append(f"trimmed when saved: ... and {len(session.trimmed) - 10} more")
    if session.vote is not None:
        v = session.vote
        agree = f"{v.agreement:.0%}" if v.agreement is not None else "?"
        lines.append(f"vote ({v.extractor}): majority {v.majority!r}, agreement {agree}")
    return "\n".join(lines)


def _prob(logprob: float | None) -> str:
    return NOT_AVAILABLE if logprob is None else f"p={math.exp(logprob):.4f}"


def _side(side: TokenSide | None, end: str | None) -> str:
    if side is None:
        return f"(ended: {end or 'unknown'})"
    sampled = "" if side.p_sampled is None else f", sampled p={side.p_sampled:.4f}"
    return f"{side.text!r} (id {side.id}, {_prob(side.logprob)}{sampled})"


def divergence_line(d: Divergence) -> str:
    return (f"diverges at token {d.index}: recorded {_side(d.recorded, d.recorded_end)}, "
            f"re-run {_side(d.rerun, d.rerun_end)}")


def lane_check_line(result: LaneCheck) -> str:
    head = f"lane {result.lane}: "
    if result.status == "cannot_run":
        text = head + f"cannot run: {result.reason}"
    elif result.status == "identical":
        delta = "" if result.max_logprob_delta is None else f", max |logprob diff| {result.max_logprob_delta:.2g}"
        text = head + f"identical ({result.n_recorded} tokens{delta})"
    elif result.divergence is not None:
        text = head + divergence_line(result.divergence)
    else:
        text = head + f"diverges: {result.reason}"
    return text + (f" [note: {result.note}]" if result.note and result.status != "identical" else "")


def report_summary(report: CheckReport) -> str:
    verdict = {0: "all lanes identical", 1: "some lane diverges", 2: "cannot run"}[report.exit_code]
    return "\n".join([*(lane_check_line(r) for r in report.lanes), f"check: {verdict}"])
