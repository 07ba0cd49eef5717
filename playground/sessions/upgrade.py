"""Upgrades of older session files, one function per schema version, applied in order on load.

Each ``UPGRADES[n]`` takes the raw JSON object of version ``n`` and returns that of ``n + 1``; the
result is then decoded and validated like any current file. The file itself is never rewritten.

Version 0 (the early single-run format, kept for its test fixture) was flat::

    {"schema_version": 0, "created": ..., "prompt": "...", "prompt_tokens": [...],
     "model": {"name", "size", "sha256", "path"}, "settings": {sampler fields, seed (used),
     max_tokens, stop, top_n}, "n_ctx": .., "n_threads": .., "tokens": [{"id", "text",
     "logprob", "t"}], "finish_reason": ...}

Version 1 had no conversations, lane prompts, variants, forced prefixes nor constraints, and files
written before the full sampler set hold only the first eight sampler settings (see ``upgrade_v1_to_v2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playground.model_file import EMBEDDED_SHA256
from playground.sessions.codec import SchemaError
from playground.sessions.schema import SCHEMA_VERSION

Raw = dict[str, Any]

_SAMPLER_KEYS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "greedy")


def _obj(data: Raw, key: str, path: str = "") -> Raw:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SchemaError(f"{path}{key}", "expected an object")
    return value


def upgrade_v0_to_v1(data: Raw) -> Raw:
    """One flat run -> a session with one lane, its receipt and trace."""
    model = _obj(data, "model")
    settings = _obj(data, "settings")
    tokens = data.get("tokens", [])
    if not isinstance(tokens, list):
        raise SchemaError("tokens", "expected an array")
    seed = settings.get("seed")
    sha = model.get("sha256")
    # The embedded model is found again by its hash; other models keep their path.
    model_path = None if sha == EMBEDDED_SHA256 else model.get("path")
    lane: Raw = {
        "backend": {"kind": "local", "model": model.get("name", ""), "model_path": model_path},
        "sampler": {**{k: settings[k] for k in _SAMPLER_KEYS if k in settings}, "seed": seed if seed is not None else -1},
        "request": {k: settings[k] for k in ("max_tokens", "stop", "top_n") if k in settings},
        "receipt": {
            "model_name": model.get("name", ""),
            "model_size": model.get("size"),
            "model_sha256": sha,
            "n_ctx": data.get("n_ctx"),
            "n_threads": data.get("n_threads"),
            "seed": seed,
            "prompt_text": data.get("prompt", ""),
            "prompt_tokens": data.get("prompt_tokens", []),
        },
        "tokens": [
            {**tok, "i": i} if isinstance(tok, dict) else tok  # v0 had no index; a bad item fails decoding
            for i, tok in enumerate(tokens)
        ],
        "metrics": {"n_tokens": len(tokens)},
        "finish_reason": data.get("finish_reason"),
    }
    lane["backend"] = {k: v for k, v in lane["backend"].items() if v is not None}
    lane["receipt"] = {k: v for k, v in lane["receipt"].items() if v is not None}
    return {
        "schema_version": 1,
        "created": data.get("created", ""),
        "kind": "generate",
        "prompt": {"mode": "freeform", "text": data.get("prompt", "")},
        "lanes": [lane],
    }


#: The sampler settings version 1 files may lack (written before the full llama.cpp sampler set),
#: with the values those runs had: every newer stage off, llama.cpp's chain order. Spelled out here,
#: not read from ``SamplerParams``: a later change of a default must not change a recorded run.
V1_SAMPLER_DEFAULTS: dict[str, Any] = {
    "typical_p": 1.0,
    "top_n_sigma": -1.0,
    "xtc_probability": 0.0,
    "xtc_threshold": 0.1,
    "dry_multiplier": 0.0,
    "dry_base": 1.75,
    "dry_allowed_length": 2,
    "dry_penalty_last_n": 64,
    "dry_sequence_breakers": ["\n", ":", '"', "*"],
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "mirostat": 0,
    "mirostat_eta": 0.1,
    "mirostat_tau": 5.0,
    "dynatemp_range": 0.0,
    "dynatemp_exponent": 1.0,
    "logit_bias": [],
    "samplers": ["penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"],
}


def upgrade_v1_to_v2(data: Raw) -> Raw:
    """Version 2 added conversations, lanes' own prompts and variant names, forced prefixes and
    constraints (request and per token), all absent = as before; a v1 lane's sampler is completed
    with the settings it ran under (``V1_SAMPLER_DEFAULTS``), so that it stays the same run."""
    lanes = data.get("lanes", [])
    if not isinstance(lanes, list):
        raise SchemaError("lanes", "expected an array")
    upgraded = []
    for k, lane in enumerate(lanes):
        if isinstance(lane, dict):
            sampler = _obj(lane, "sampler", f"lanes[{k}].")
            lane = {**lane, "sampler": {**sampler, **{key: value for key, value in V1_SAMPLER_DEFAULTS.items()
                                                      if key not in sampler}}}
        upgraded.append(lane)  # anything else fails decoding, with its path
    return {**data, "schema_version": 2, "lanes": upgraded}


#: version n -> function turning a version-n object into a version n+1 object
UPGRADES: dict[int, Callable[[Raw], Raw]] = {0: upgrade_v0_to_v1, 1: upgrade_v1_to_v2}


def upgrade(data: Raw) -> tuple[Raw, int]:
    """Bring a raw session object to the current version; returns it and the version it had.

    Raises:
        SchemaError: no usable ``schema_version``, one newer than this program, or an older one
            whose upgrade does not apply.
    """
    version = data.get("schema_version")
    if version is None:
        raise SchemaError("schema_version", "missing (is this a playground session file?)")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError("schema_version", f"expected an integer, got {version!r:.40}")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            "schema_version", f"{version} is newer than this playground understands ({SCHEMA_VERSION}); upgrade playground"
        )
    if version < min(UPGRADES, default=SCHEMA_VERSION):
        raise SchemaError("schema_version", f"{version} is not a known version")
    original = version
    while version < SCHEMA_VERSION:
        data = UPGRADES[version](data)
        version += 1
    return data, original
