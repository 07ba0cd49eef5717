"""Lane specs: ``"temp=1.0,top_k=40,seed=3"`` -> SamplerParams, and back for display."""

from __future__ import annotations

from typing import Any

from playground.errors import InvalidParameterError
from playground.params import SamplerParams

#: spelling in a spec -> SamplerParams field (llama.cpp's CLI names, with - or _)
_KEYS = {
    "temp": "temperature",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "seed": "seed",
    "greedy": "greedy",
}
_INTS = {"top_k", "repeat_last_n", "seed"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

SPEC_HELP = (
    "comma-separated key=value: temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, "
    "greedy (alone or =true/false); e.g. 'temp=0' or 'temp=1.0,top_k=40,seed=3'"
)


def _value(field: str, raw: str) -> Any:
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
        InvalidParameterError: unknown key, repeated key, bad value or out-of-range setting.
    """
    changes: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        field = _KEYS.get(key.strip().lower().replace("-", "_"))
        if field is None:
            raise InvalidParameterError(f"unknown lane setting {key.strip()!r} in {spec!r} ({SPEC_HELP})")
        if field in changes:
            raise InvalidParameterError(f"{key.strip()} is given twice in {spec!r}")
        if not sep:
            if field != "greedy":
                raise InvalidParameterError(f"{key.strip()} needs a value in {spec!r} (key=value)")
            raw = "true"
        changes[field] = _value(field, raw.strip())
    return (base or SamplerParams()).replace(**changes).validate()


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
    if not params.is_greedy and params.seed >= 0:
        parts.append(f"seed={params.seed}")
    return ",".join(parts)
