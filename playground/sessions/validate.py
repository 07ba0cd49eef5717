"""Checks a decoded session for values that are well-typed but impossible (a hand edit gone wrong).

The bounds are ``limits``: the writer (``fit``) keeps to the same ones, so every file it writes
passes here, and a file that passes cannot stall a replay, overflow a numpy int32 or a C int.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from playground.errors import InvalidParameterError
from playground.sessions import limits as L
from playground.sessions.codec import SchemaError
from playground.sessions.schema import ENV_NAME, SHA256_HEX, Lane, Session, TokenRecord


def _require(ok: bool, path: str, problem: str) -> None:
    if not ok:
        raise SchemaError(path, problem)


def validate_session(session: Session) -> Session:
    """Raise SchemaError (with the path of the bad value) unless every value is possible."""
    check_strings(dataclasses.replace(session, lanes=()), "")
    for k, lane in enumerate(session.lanes):
        _validate_lane(lane, f"lanes[{k}]")
    if session.vote is not None:
        n = len(session.vote.answers)
        _require(n in (0, len(session.lanes)), "vote.answers", f"{n} answers for {len(session.lanes)} lanes")
        agreement = session.vote.agreement
        _require(agreement is None or 0.0 <= agreement <= 1.0, "vote.agreement", "must be between 0 and 1")
    return session


def check_strings(value: Any, path: str) -> None:
    """No string anywhere in ``value`` (token traces aside: see ``_validate_token``) is too long."""
    if isinstance(value, str):
        _require(len(value) <= L.MAX_TEXT_CHARS, path, f"longer than {L.MAX_TEXT_CHARS} characters")
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            check_strings(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if not (isinstance(value, Lane) and f.name == "tokens"):
                check_strings(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)


def _int_in(value: int | None, low: int, high: int, path: str) -> None:
    _require(value is None or low <= value <= high, path, f"must be between {low} and {high}")


def _seconds(value: float | None, path: str) -> None:
    _require(value is None or 0.0 <= value <= L.MAX_SECONDS, path,
             f"must be between 0 and {L.MAX_SECONDS:.0f} seconds (a week)")


def _validate_lane(lane: Lane, path: str) -> None:
    check_strings(lane, path)
    try:
        lane.sampler.validate()
    except InvalidParameterError as exc:
        raise SchemaError(f"{path}.sampler", exc.message) from None
    for name in ("top_k", "repeat_last_n"):
        _int_in(getattr(lane.sampler, name), -1, L.MAX_INT32, f"{path}.sampler.{name}")
    req = lane.request
    _int_in(req.max_tokens, 1, L.MAX_INT32, f"{path}.request.max_tokens")
    _require(0 <= req.top_n <= L.MAX_ALTERNATIVES, f"{path}.request.top_n", f"must be between 0 and {L.MAX_ALTERNATIVES}")
    _require(all(req.stop), f"{path}.request.stop", "a stop string must not be empty")
    _require(all(0 <= t <= L.MAX_TOKEN_ID for t in req.force_ids), f"{path}.request.force_ids",
             f"token ids are between 0 and {L.MAX_TOKEN_ID}")
    if req.constraint is not None:
        try:
            req.constraint.validate()
        except InvalidParameterError as exc:
            raise SchemaError(f"{path}.request.constraint", exc.message) from None
    backend = lane.backend
    _require(
        backend.api_key_env is None or bool(ENV_NAME.match(backend.api_key_env)),
        f"{path}.backend.api_key_env",
        "must be the NAME of an environment variable (never the key itself)",
    )
    _require(backend.kind == "local" or backend.model_path is None, f"{path}.backend.model_path", "only local lanes have a model file")
    rc = lane.receipt
    _require(rc.seed is None or 0 <= rc.seed < 2**32, f"{path}.receipt.seed", "must be in [0, 2^32)")
    _require(rc.model_sha256 is None or bool(SHA256_HEX.match(rc.model_sha256)), f"{path}.receipt.model_sha256",
             "must be 64 lower-case hex digits")
    _int_in(rc.model_size, 0, L.MAX_INT64, f"{path}.receipt.model_size")
    for name in ("n_ctx", "n_threads", "n_vocab"):
        _int_in(getattr(rc, name), 1, L.MAX_INT32, f"{path}.receipt.{name}")
    _int_in(rc.n_gpu_layers, -1, L.MAX_INT32, f"{path}.receipt.n_gpu_layers")
    _require(all(0 <= t <= L.MAX_TOKEN_ID for t in rc.prompt_tokens), f"{path}.receipt.prompt_tokens",
             f"token ids are between 0 and {L.MAX_TOKEN_ID}")
    _seconds(lane.offset_s, f"{path}.offset_s")
    m = lane.metrics
    _int_in(m.n_tokens, 0, L.MAX_INT32, f"{path}.metrics.n_tokens")
    _int_in(m.prompt_tokens_evaluated, 0, L.MAX_INT32, f"{path}.metrics.prompt_tokens_evaluated")
    _seconds(m.ttft_s, f"{path}.metrics.ttft_s")
    _seconds(m.elapsed_s, f"{path}.metrics.elapsed_s")
    previous_t = 0.0
    for j, tok in enumerate(lane.tokens):
        if not _token_ok(tok, j, previous_t):  # the fast check; the slow one says what and where
            _validate_token(tok, j, previous_t, f"{path}.tokens[{j}]")
        previous_t = tok.t


def _token_ok(tok: TokenRecord, j: int, previous_t: float) -> bool:
    lo_id, hi_id, lo_lp, hi_lp, chars = L.MIN_TOKEN_ID, L.MAX_TOKEN_ID, L.MIN_LOGPROB, L.LOGPROB_SLACK, L.MAX_TEXT_CHARS
    return (
        tok.i == j and lo_id <= tok.id <= hi_id and len(tok.text) <= chars
        and 0 <= tok.t <= L.MAX_SECONDS and tok.t + 1e-6 >= previous_t
        and (tok.logprob is None or lo_lp <= tok.logprob <= hi_lp)
        and (tok.p_sampled is None or 0.0 <= tok.p_sampled <= 1.0 + 1e-6)
        and len(tok.top) <= L.MAX_ALTERNATIVES
        and all(lo_id <= a.id <= hi_id and lo_lp <= a.logprob <= hi_lp and len(a.text) <= chars for a in tok.top)
        and (tok.n_candidates is None or 0 <= tok.n_candidates <= L.MAX_INT32)
        and (tok.log_z is None or abs(tok.log_z) <= L.MAX_ABS_LOG_Z)
        and (tok.constraint_mass_removed is None or 0.0 <= tok.constraint_mass_removed <= 1.0 + 1e-6)
        and (tok.unconstrained_id is None or lo_id <= tok.unconstrained_id <= hi_id)
        and (tok.unconstrained_text is None or len(tok.unconstrained_text) <= chars)
        and (tok.dist is None or (
            len(tok.dist.ids) == len(tok.dist.logprobs) and len(tok.dist.ids) <= L.MAX_DIST_HEAD
            and all(lo_id <= i <= hi_id for i in tok.dist.ids) and all(lo_lp <= x <= hi_lp for x in tok.dist.logprobs)
        ))
    )


def _logprob(value: float | None, path: str) -> None:
    _require(value is None or L.MIN_LOGPROB <= value <= L.LOGPROB_SLACK, path,
             f"a log-probability is <= 0 (and >= {L.MIN_LOGPROB:g})")


def _token_id(value: int, path: str) -> None:
    _require(L.MIN_TOKEN_ID <= value <= L.MAX_TOKEN_ID, path,
             f"token ids are between {L.MIN_TOKEN_ID} (not given) and {L.MAX_TOKEN_ID}")


def _validate_token(tok: TokenRecord, j: int, previous_t: float, tp: str) -> None:
    _require(tok.i == j, f"{tp}.i", f"is {tok.i}, expected {j} (tokens must be in order)")
    _token_id(tok.id, f"{tp}.id")
    _require(len(tok.text) <= L.MAX_TEXT_CHARS, f"{tp}.text", f"longer than {L.MAX_TEXT_CHARS} characters")
    _require(tok.t >= 0, f"{tp}.t", "must not be negative")
    _require(tok.t <= L.MAX_SECONDS, f"{tp}.t", f"more than {L.MAX_SECONDS:.0f} seconds (a week) into the run")
    _require(tok.t + 1e-6 >= previous_t, f"{tp}.t", "goes back in time")
    _logprob(tok.logprob, f"{tp}.logprob")
    _require(tok.p_sampled is None or 0.0 <= tok.p_sampled <= 1.0 + 1e-6, f"{tp}.p_sampled", "a probability is in [0, 1]")
    _require(len(tok.top) <= L.MAX_ALTERNATIVES, f"{tp}.top", f"more than {L.MAX_ALTERNATIVES} alternatives")
    for a, alt in enumerate(tok.top):
        _token_id(alt.id, f"{tp}.top[{a}][0]")
        _require(len(alt.text) <= L.MAX_TEXT_CHARS, f"{tp}.top[{a}][1]", f"longer than {L.MAX_TEXT_CHARS} characters")
        _logprob(alt.logprob, f"{tp}.top[{a}][2]")
    _int_in(tok.n_candidates, 0, L.MAX_INT32, f"{tp}.n_candidates")
    _require(tok.log_z is None or abs(tok.log_z) <= L.MAX_ABS_LOG_Z, f"{tp}.log_z", f"must be within ±{L.MAX_ABS_LOG_Z:g}")
    removed = tok.constraint_mass_removed
    _require(removed is None or 0.0 <= removed <= 1.0 + 1e-6, f"{tp}.constraint_mass_removed", "a probability is in [0, 1]")
    if tok.unconstrained_id is not None:
        _token_id(tok.unconstrained_id, f"{tp}.unconstrained_id")
    _require(tok.unconstrained_text is None or len(tok.unconstrained_text) <= L.MAX_TEXT_CHARS, f"{tp}.unconstrained_text",
             f"longer than {L.MAX_TEXT_CHARS} characters")
    if tok.dist is not None:
        _require(len(tok.dist.ids) == len(tok.dist.logprobs), f"{tp}.dist", "ids and logprobs differ in length")
        _require(len(tok.dist.ids) <= L.MAX_DIST_HEAD, f"{tp}.dist", f"more than {L.MAX_DIST_HEAD} entries")
        for d, (i, lp) in enumerate(zip(tok.dist.ids, tok.dist.logprobs)):
            _token_id(i, f"{tp}.dist.ids[{d}]")
            _logprob(lp, f"{tp}.dist.logprobs[{d}]")
