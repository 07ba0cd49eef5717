"""Making a session storable: the writer's side of ``limits``, applied before anything is written.

A run is kept whenever possible. A token whose numbers a damaged model or a broken server made
NaN, infinite or impossible keeps its place and text: those values become null (alternatives and
distribution entries that cannot be stored are dropped) and the token lists them in
``bad_values``. A string past ``MAX_TEXT_CHARS`` is cut. When the file would still be larger than
the reader accepts, ``store`` drops the distribution heads, then the alternatives (``drop_*``
below). Each change is one line in ``Session.trimmed``, so the file says what is not whole.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from functools import lru_cache
from typing import Any

from playground.events import Alternative
from playground.sessions import limits as L
from playground.sessions.schema import DistHead, Lane, Session, TokenRecord

_TEXT_MARK = "…[cut]"


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _cut(text: str) -> str:
    return text[: L.MAX_TEXT_CHARS - len(_TEXT_MARK)] + _TEXT_MARK


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _logprob(value: float | None) -> tuple[float | None, bool]:
    """A storable log-probability and whether the original was bad (NaN, inf, or > 0)."""
    if value is None:
        return None, False
    if value == -math.inf or (_finite(value) and value < L.MIN_LOGPROB):
        return L.MIN_LOGPROB, False  # probability 0, as events.round_logprob writes it
    if not _finite(value) or value > L.LOGPROB_SLACK:
        return None, True
    return value, False


def _id_ok(value: int) -> bool:
    return L.MIN_TOKEN_ID <= value <= L.MAX_TOKEN_ID


def _alternatives(top: tuple[Alternative, ...]) -> tuple[tuple[Alternative, ...], bool]:
    kept, bad = [], False
    for alt in top:
        logprob, wrong = _logprob(alt.logprob)
        if wrong or logprob is None or not _id_ok(alt.id):
            bad = True
            continue
        text = alt.text if len(alt.text) <= L.MAX_TEXT_CHARS else _cut(alt.text)
        kept.append(alt if (logprob == alt.logprob and text is alt.text) else Alternative(alt.id, text, logprob))
    if len(kept) > L.MAX_ALTERNATIVES:
        kept, bad = kept[: L.MAX_ALTERNATIVES], True
    return (top if not bad and all(a is b for a, b in zip(kept, top)) else tuple(kept)), bad


def _dist(dist: DistHead | None) -> tuple[DistHead | None, bool]:
    if dist is None:
        return None, False
    if len(dist.ids) != len(dist.logprobs) or not all(_id_ok(i) for i in dist.ids):
        return None, True
    logprobs = []
    for value in dist.logprobs:
        fixed, wrong = _logprob(value)
        if wrong or fixed is None:
            return None, True
        logprobs.append(fixed)
    n = min(len(dist.ids), L.MAX_DIST_HEAD)  # the head is sorted: a shorter head is still a head
    if n == len(dist.ids) and tuple(logprobs) == dist.logprobs:
        return dist, False
    return DistHead(tuple(dist.ids[:n]), tuple(logprobs[:n])), False


def fit_token(tok: TokenRecord, index: int, previous_t: float) -> TokenRecord:
    """``tok`` with every value the reader would refuse nulled (or dropped) and listed in ``bad_values``."""
    bad: list[str] = []
    changes: dict[str, Any] = {}

    def mark(name: str, value: Any) -> None:
        changes[name] = value
        bad.append(name)

    if tok.i != index:
        mark("i", index)
    if not _id_ok(tok.id):
        mark("id", -1)  # -1: "not given", as from a remote backend
    if len(tok.text) > L.MAX_TEXT_CHARS:
        mark("text", _cut(tok.text))
    logprob, wrong = _logprob(tok.logprob)
    if wrong:
        mark("logprob", None)
    elif logprob != tok.logprob:
        changes["logprob"] = logprob
    p = tok.p_sampled
    if p is not None and not (_finite(p) and 0.0 <= p <= 1.0 + 1e-6):
        mark("p_sampled", None)
    top, wrong = _alternatives(tok.top)
    if top is not tok.top:
        changes["top"] = top
    if wrong:
        bad.append("top")
    t = tok.t
    if not (_finite(t) and 0.0 <= t <= L.MAX_SECONDS and t + 1e-6 >= previous_t):
        mark("t", previous_t)  # keeps the trace in time order
    n = tok.n_candidates
    if n is not None and not 0 <= n <= L.MAX_INT32:
        mark("n_candidates", None)
    if tok.entropy is not None and not _finite(tok.entropy):
        mark("entropy", None)
    if tok.log_z is not None and not (_finite(tok.log_z) and abs(tok.log_z) <= L.MAX_ABS_LOG_Z):
        mark("log_z", None)
    removed = tok.constraint_mass_removed
    if removed is not None and not (_finite(removed) and 0.0 <= removed <= 1.0 + 1e-6):
        mark("constraint_mass_removed", None)
    if tok.unconstrained_id is not None and not _id_ok(tok.unconstrained_id):
        mark("unconstrained_id", None)
    if tok.unconstrained_text is not None and len(tok.unconstrained_text) > L.MAX_TEXT_CHARS:
        mark("unconstrained_text", _cut(tok.unconstrained_text))
    dist, wrong = _dist(tok.dist)
    if dist is not tok.dist:
        changes["dist"] = dist
    if wrong:
        bad.append("dist")
    if not changes and not bad:
        return tok
    if bad:
        changes["bad_values"] = tuple(dict.fromkeys((*tok.bad_values, *bad)))
    return dataclasses.replace(tok, **changes)


def _fit_value(value: Any, path: str, notes: list[str]) -> Any:
    """Generic pass over everything but token traces: cut long strings, null non-finite numbers."""
    if isinstance(value, str):
        if len(value) > L.MAX_TEXT_CHARS:
            notes.append(f"{path}: cut from {len(value)} to {L.MAX_TEXT_CHARS} characters")
            return _cut(value)
        return value
    if isinstance(value, tuple):
        items = tuple(_fit_value(v, f"{path}[{i}]", notes) for i, v in enumerate(value))
        return value if all(a is b for a, b in zip(items, value)) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes: dict[str, Any] = {}
        hints = _hints(type(value))
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            sub = f"{path}.{f.name}" if path else f.name
            if isinstance(item, float) and not math.isfinite(item):
                optional = type(None) in typing.get_args(hints[f.name])
                fallback = None if optional else f.default
                notes.append(f"{sub}: {item} is not a number a file can hold; stored as {fallback}")
                changes[f.name] = fallback
                continue
            if isinstance(value, Lane) and f.name == "tokens":
                continue  # fit_lane's job
            fixed = _fit_value(item, sub, notes)
            if fixed is not item:
                changes[f.name] = fixed
        return dataclasses.replace(value, **changes) if changes else value
    return value


def _seconds(value: float | None) -> bool:
    return value is None or 0.0 <= value <= L.MAX_SECONDS


def fit_lane(lane: Lane, path: str, notes: list[str]) -> Lane:
    lane = _fit_value(lane, path, notes)
    tokens, previous_t, n_bad = [], 0.0, 0
    for j, tok in enumerate(lane.tokens):
        fixed = fit_token(tok, j, previous_t)
        n_bad += len(fixed.bad_values) > len(tok.bad_values)
        tokens.append(fixed)
        previous_t = fixed.t
    if n_bad:
        notes.append(f"{path}.tokens: {n_bad} token(s) had NaN, infinite or impossible values, stored as null "
                     "(each lists them in bad_values)")
    changes: dict[str, Any] = {}
    if any(a is not b for a, b in zip(tokens, lane.tokens)):
        changes["tokens"] = tuple(tokens)
    if not _seconds(lane.offset_s):
        notes.append(f"{path}.offset_s: {lane.offset_s} is not a possible time; stored as 0")
        changes["offset_s"] = 0.0
    metrics = lane.metrics
    for name in ("ttft_s", "elapsed_s"):
        if not _seconds(getattr(metrics, name)):
            notes.append(f"{path}.metrics.{name}: {getattr(metrics, name)} is not a possible time; stored as null")
            metrics = dataclasses.replace(metrics, **{name: None})
    if metrics is not lane.metrics:
        changes["metrics"] = metrics
    return dataclasses.replace(lane, **changes) if changes else lane


def fit(session: Session) -> Session:
    """``session`` within the reader's limits (equal to it when it already is)."""
    notes: list[str] = []
    head = _fit_value(dataclasses.replace(session, lanes=()), "", notes)
    lanes = tuple(fit_lane(lane, f"lanes[{k}]", notes) for k, lane in enumerate(session.lanes))
    return dataclasses.replace(head, lanes=lanes, trimmed=(*head.trimmed, *notes))


def drop_dists(session: Session, reason: str) -> Session:
    """Without the kept distribution heads (replay then shows the alternatives instead)."""
    return _map_tokens(session, lambda t: dataclasses.replace(t, dist=None) if t.dist is not None else t,
                       f"lanes[*].tokens[*].dist: distribution heads dropped ({reason})")


def drop_alternatives(session: Session, reason: str) -> Session:
    """Without the alternatives per token (the sampled tokens and their probabilities stay)."""
    return _map_tokens(session, lambda t: dataclasses.replace(t, top=()) if t.top else t,
                       f"lanes[*].tokens[*].top: alternatives dropped ({reason})")


def _map_tokens(session: Session, change: Any, note: str) -> Session:
    lanes = tuple(dataclasses.replace(lane, tokens=tuple(change(t) for t in lane.tokens)) for lane in session.lanes)
    return dataclasses.replace(session, lanes=lanes, trimmed=(*session.trimmed, note))
