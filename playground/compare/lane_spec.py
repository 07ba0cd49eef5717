"""Lane specs: ``"temp=1.0,top_k=40,seed=3"`` -> SamplerParams, and back for display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.errors import InvalidParameterError
from playground.params import SAMPLER_OPTION_NAMES, LogitBias, SamplerParams, parse_sampler_order

#: spelling in a spec -> SamplerParams field (llama.cpp's CLI names, with - or _, or the field's own)
_KEYS = {**SAMPLER_OPTION_NAMES, **{f: f for f in SAMPLER_OPTION_NAMES.values()}}
_INTS = {"top_k", "repeat_last_n", "seed", "dry_allowed_length", "dry_penalty_last_n", "mirostat"}
#: keys that may be repeated, each adding one item
_REPEATABLE = {"logit_bias", "dry_sequence_breakers"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: fields format_lane_spec shows its own way
_SHOWN = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "greedy"}

#: keys that choose where a lane runs rather than how it samples
_TARGETS = {"backend", "model"}

SPEC_HELP = (
    "comma-separated key=value: temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, "
    "greedy (alone or =true/false), llama.cpp's other sampler names (typical, top_nsigma, xtc_probability, "
    "xtc_threshold, dry_multiplier, dry_base, dry_allowed_length, dry_penalty_last_n, dry_sequence_breaker, "
    "presence_penalty, frequency_penalty, mirostat, mirostat_lr, mirostat_ent, dynatemp_range, dynatemp_exp, "
    "logit_bias=TOKEN+BIAS (repeatable), samplers=a;b;c), and where it runs: backend=NAME (a [backends.NAME] endpoint of the "
    "config) or model=PATH (another local GGUF); e.g. 'temp=0' or 'temp=1.0,top_k=40,seed=3,backend=vllm'"
)


@dataclass(frozen=True)
class LaneSpec:
    """One parsed ``--lane``: its sampler, and where it runs (both None: the command's local model)."""

    sampler: SamplerParams
    backend: str | None = None
    """Name of a configured remote endpoint."""
    model: str | None = None
    """Path of another local GGUF model."""


def _value(field: str, raw: str) -> Any:
    if field == "samplers":
        return parse_sampler_order(raw)  # ';'-separated, as llama.cpp's --samplers
    if field == "logit_bias":
        return LogitBias.parse(raw)
    if field == "dry_sequence_breakers":
        return raw
    if field == "greedy":
        low = raw.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise InvalidParameterError(f"greedy must be true or false, not {raw!r}")
    try:
        return int(raw) if field in _INTS else float(raw)
    except ValueError:
        kind = "an integer" if field in _INTS else "a number"
        raise InvalidParameterError(f"{field} must be {kind}, not {raw!r}") from None


def parse_lane_spec(spec: str, base: SamplerParams | None = None) -> SamplerParams:
    """The sampler of one lane: ``base`` (the command's sampler options) with the spec's changes.

    Raises:
        InvalidParameterError: unknown key, repeated key, bad value, out-of-range setting, or a
            ``backend``/``model`` key (use ``parse_lane`` where lanes may run elsewhere).
    """
    lane = parse_lane(spec, base)
    if lane.backend is not None or lane.model is not None:
        raise InvalidParameterError(f"backend= and model= are not accepted here: {spec!r}")
    return lane.sampler


def parse_lane(spec: str, base: SamplerParams | None = None) -> LaneSpec:
    """A whole lane spec: sampler changes over ``base``, plus optional ``backend=``/``model=``.

    A model path cannot contain a comma (commas separate the settings).

    Raises:
        InvalidParameterError: as ``parse_lane_spec``, or both backend= and model= given.
    """
    changes: dict[str, Any] = {}
    target: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        name = key.strip().lower()
        if name in _TARGETS:
            if name in target:
                raise InvalidParameterError(f"{name} is given twice in {spec!r}")
            if not raw.strip():
                raise InvalidParameterError(f"{name} needs a value in {spec!r} ({name}=...)")
            target[name] = raw.strip()
            continue
        field = _KEYS.get(name.replace("-", "_"))
        if field is None:
            raise InvalidParameterError(f"unknown lane setting {key.strip()!r} in {spec!r} ({SPEC_HELP})")
        if field in changes and field not in _REPEATABLE:
            raise InvalidParameterError(f"{key.strip()} is given twice in {spec!r}")
        if not sep:
            if field != "greedy":
                raise InvalidParameterError(f"{key.strip()} needs a value in {spec!r} (key=value)")
            raw = "true"
        if field in _REPEATABLE:  # a breaker keeps its spaces; "none" clears, as on the command line
            value = _value(field, raw if field == "dry_sequence_breakers" else raw.strip())
            items = () if value == "none" else (*changes.get(field, ()), value)
            changes[field] = items
            continue
        changes[field] = _value(field, raw.strip())
    if len(target) > 1:
        raise InvalidParameterError(f"a lane runs on backend= or model=, not both: {spec!r}")
    sampler = (base or SamplerParams()).replace(**changes).validate()
    return LaneSpec(sampler, target.get("backend"), target.get("model"))


def format_lane_spec(params: SamplerParams) -> str:
    """A short label: the settings that act (greedy lanes do not show the truncations)."""
    if params.is_greedy:
        parts = ["greedy"]
    else:
        parts = [f"temp={params.temperature:g}"]
        if params.top_k > 0:
            parts.append(f"top_k={params.top_k}")
        if params.top_p < 1.0:
            parts.append(f"top_p={params.top_p:g}")
        if params.min_p > 0.0:
            parts.append(f"min_p={params.min_p:g}")
    if params.repeat_penalty != 1.0 and params.repeat_last_n != 0:
        parts.append(f"repeat_penalty={params.repeat_penalty:g}")
    d = SamplerParams()
    for key, field in SAMPLER_OPTION_NAMES.items():  # the newer stages, when set
        if field in _SHOWN or getattr(params, field) == getattr(d, field):
            continue
        value = getattr(params, field)
        if field == "logit_bias":
            parts.extend(f"logit_bias={b.label()}" for b in value)
        elif field == "samplers":
            parts.append("samplers=" + ";".join(value))
        elif field == "dry_sequence_breakers":
            parts.extend(f"dry_sequence_breaker={b}" for b in value) if value else parts.append("dry_sequence_breaker=none")
        else:
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    if not params.is_greedy and params.seed >= 0:
        parts.append(f"seed={params.seed}")
    return ",".join(parts)
