"""Checks a decoded session for values that are well-typed but impossible (a hand edit gone wrong)."""

from __future__ import annotations

from playground.errors import InvalidParameterError
from playground.params import MAX_TOP_N
from playground.sessions.codec import SchemaError
from playground.sessions.schema import ENV_NAME, SHA256_HEX, Lane, Session

# Raw log-probabilities come from float32 logits: a certain token can round to a hair above 0.
_LOGPROB_SLACK = 1e-3


def _require(ok: bool, path: str, problem: str) -> None:
    if not ok:
        raise SchemaError(path, problem)


def validate_session(session: Session) -> Session:
    """Raise SchemaError (with the path of the bad value) unless every value is possible."""
    for k, lane in enumerate(session.lanes):
        _validate_lane(lane, f"lanes[{k}]")
    if session.vote is not None:
        n = len(session.vote.answers)
        _require(n in (0, len(session.lanes)), "vote.answers", f"{n} answers for {len(session.lanes)} lanes")
        agreement = session.vote.agreement
        _require(agreement is None or 0.0 <= agreement <= 1.0, "vote.agreement", "must be between 0 and 1")
    return session


def _validate_lane(lane: Lane, path: str) -> None:
    try:
        lane.sampler.validate()
    except InvalidParameterError as exc:
        raise SchemaError(f"{path}.sampler", exc.message) from None
    req = lane.request
    _require(req.max_tokens >= 1, f"{path}.request.max_tokens", "must be at least 1")
    _require(0 <= req.top_n <= MAX_TOP_N, f"{path}.request.top_n", f"must be between 0 and {MAX_TOP_N}")
    _require(all(req.stop), f"{path}.request.stop", "a stop string must not be empty")
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
    _require(rc.model_size is None or rc.model_size >= 0, f"{path}.receipt.model_size", "must not be negative")
    for name in ("n_ctx", "n_threads", "n_vocab"):
        value = getattr(rc, name)
        _require(value is None or value >= 1, f"{path}.receipt.{name}", "must be positive")
    _require(all(t >= 0 for t in rc.prompt_tokens), f"{path}.receipt.prompt_tokens", "token ids are not negative")
    _require(lane.offset_s >= 0, f"{path}.offset_s", "must not be negative")
    _require(lane.metrics.n_tokens >= 0, f"{path}.metrics.n_tokens", "must not be negative")
    previous_t = 0.0
    for j, tok in enumerate(lane.tokens):
        tp = f"{path}.tokens[{j}]"
        _require(tok.i == j, f"{tp}.i", f"is {tok.i}, expected {j} (tokens must be in order)")
        _require(tok.t >= 0, f"{tp}.t", "must not be negative")
        _require(tok.t + 1e-6 >= previous_t, f"{tp}.t", "goes back in time")
        previous_t = tok.t
        _require(tok.logprob is None or tok.logprob <= _LOGPROB_SLACK, f"{tp}.logprob", "a log-probability is <= 0")
        _require(tok.p_sampled is None or 0.0 <= tok.p_sampled <= 1.0 + 1e-6, f"{tp}.p_sampled", "a probability is in [0, 1]")
        _require(all(alt.logprob <= _LOGPROB_SLACK for alt in tok.top), f"{tp}.top", "a log-probability is <= 0")
        if tok.dist is not None:
            _require(len(tok.dist.ids) == len(tok.dist.logprobs), f"{tp}.dist", "ids and logprobs differ in length")
