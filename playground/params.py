"""Sampler and generation parameters, shared by every backend, the CLI and the UI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from playground.constraint import Constraint
from playground.errors import InvalidParameterError

#: Seed value meaning "pick a random seed"; the seed actually used is reported in the start event.
RANDOM_SEED = -1

MAX_TOP_N = 100

#: llama.cpp takes counts as C int32: a larger value would be silently truncated there.
INT32_MAX = 2**31 - 1

#: llama.cpp's command-line spellings (``--temp``, ``--top-k``...) -> SamplerParams field.
SAMPLER_OPTION_NAMES: dict[str, str] = {
    "temp": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "seed": "seed",
    "greedy": "greedy",
    "typical": "typical_p",
    "top_nsigma": "top_n_sigma",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
    "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length",
    "dry_penalty_last_n": "dry_penalty_last_n",
    "dry_sequence_breaker": "dry_sequence_breakers",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_lr": "mirostat_eta",
    "mirostat_ent": "mirostat_tau",
    "dynatemp_range": "dynatemp_range",
    "dynatemp_exp": "dynatemp_exponent",
    "logit_bias": "logit_bias",
    "samplers": "samplers",
}

#: llama.cpp's default order of the chain (``common_params_sampling::samplers``), canonical names.
DEFAULT_SAMPLERS: tuple[str, ...] = (
    "penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature",
)
#: Every spelling llama.cpp accepts in ``--samplers`` (common_sampler_types_from_names) -> canonical.
SAMPLER_ALIASES: dict[str, str] = {
    **{n: n for n in DEFAULT_SAMPLERS},
    **{n.replace("_", "-"): n for n in DEFAULT_SAMPLERS if "_" in n},
    **{n.replace("_", ""): n for n in DEFAULT_SAMPLERS if "_" in n},
    "nucleus": "top_p", "temp": "temperature", "typ": "typ_p",
}
#: llama.cpp's default DRY sequence breakers.
DEFAULT_DRY_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")
#: Largest |bias| accepted (a ban is a large negative bias: -100 leaves a token no chance).
MAX_LOGIT_BIAS = 1e4


def parse_sampler_order(text: str) -> tuple[str, ...]:
    """``--samplers`` value (``;``-separated, llama.cpp's names and aliases) -> canonical names.

    Raises:
        InvalidParameterError: an unknown name (llama.cpp only warns and drops it).
    """
    names = [part.strip() for part in text.replace(",", ";").split(";") if part.strip()]
    out = []
    for name in names:
        canonical = SAMPLER_ALIASES.get(name.lower())
        if canonical is None:
            raise InvalidParameterError(
                f"unknown sampler {name!r} in --samplers (known: {';'.join(DEFAULT_SAMPLERS)})"
            )
        out.append(canonical)
    return tuple(out)


@dataclass(frozen=True)
class LogitBias:
    """One ``--logit-bias``: a bias added to a token's logit, the token given by id or by text.

    Text is resolved to its token id when the engine builds the chain (it must be one token).
    """

    bias: float
    token: int | None = None
    text: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "LogitBias":
        """llama.cpp's ``TOKEN(+|-)BIAS`` (``15043+1``, ``15043-inf`` is refused); a TOKEN that is not
        all digits is text (``' Hello'-5``); quote digits to mean text: ``'"42"+1'``."""
        # the first sign after which a number follows splits it: "a-b+1" is text "a-b", "7+1e-3" id 7
        for i, ch in enumerate(spec):
            if i == 0 or ch not in "+-":
                continue
            try:
                value = float(spec[i + 1:])
            except ValueError:
                continue
            key, sign = spec[:i], ch
            break
        else:
            raise InvalidParameterError(f"logit bias must be TOKEN+BIAS or TOKEN-BIAS, not {spec!r}")
        bias = -value if sign == "-" else value
        if key.isdigit():
            return cls(bias, token=int(key))
        if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
            key = key[1:-1]
        return cls(bias, text=key)

    def label(self) -> str:
        """``15043+1`` or ``" Hello"-5`` (the CLI spelling, text quoted)."""
        key = str(self.token) if self.token is not None else '"' + (self.text or "") + '"'
        return f"{key}{'-' if self.bias < 0 else '+'}{abs(self.bias):g}"


@dataclass(frozen=True)
class SamplerParams:
    """The sampler settings, with llama-server's names (``--samplers`` picks the order).

    A value that disables a stage: ``top_k=0``, ``top_p=1.0``, ``min_p=0.0``, ``repeat_penalty=1.0``,
    ``typical_p=1.0``, ``top_n_sigma<=0``, ``xtc_probability=0``, ``dry_multiplier=0``,
    ``presence_penalty=frequency_penalty=0``, ``mirostat=0``, ``dynatemp_range=0``; the defaults are
    llama.cpp's, with every newer stage off. ``temperature <= 0`` or ``greedy`` picks the most likely
    token after the logit-changing stages (logit bias, penalties, DRY).
    """

    temperature: float = 0.8
    """Divides the logits before the final draw (llama.cpp applies it after the truncations)."""
    top_k: int = 40
    """Keep the k most likely tokens; 0 keeps all."""
    top_p: float = 0.95
    """Keep the smallest set whose probability mass reaches p; 1.0 keeps all."""
    min_p: float = 0.05
    """Keep tokens whose probability is at least min_p times the top token's; 0 keeps all."""
    repeat_penalty: float = 1.0
    """Divide positive (multiply negative) logits of tokens seen in the last ``repeat_last_n``."""
    repeat_last_n: int = 64
    """How many recent tokens the penalties (repeat, presence, frequency) look at."""
    seed: int = RANDOM_SEED
    """Seed of the final random draw (and of XTC's and mirostat's); -1 draws a random seed (reported)."""
    greedy: bool = False
    """Always take the most likely token after the penalties."""
    typical_p: float = 1.0
    """Locally typical sampling (``--typical``): keep the tokens closest to the entropy until mass p."""
    top_n_sigma: float = -1.0
    """Keep logits within n standard deviations of the top one (``--top-nsigma``); <= 0 is off."""
    xtc_probability: float = 0.0
    """Chance per token that XTC removes the top choices above the threshold (all but the least)."""
    xtc_threshold: float = 0.1
    """XTC's probability threshold; above 0.5 XTC does nothing."""
    dry_multiplier: float = 0.0
    """DRY penalty scale: ``multiplier * base^(repeat length - allowed length)``; 0 is off."""
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    """Repeats up to this long go unpunished."""
    dry_penalty_last_n: int = 64
    """How many recent tokens DRY scans; -1 = the whole context, 0 = off."""
    dry_sequence_breakers: tuple[str, ...] = DEFAULT_DRY_BREAKERS
    """Strings that end a repeat for DRY (``--dry-sequence-breaker``, repeatable)."""
    presence_penalty: float = 0.0
    """Subtracted once from the logit of every token seen in the last ``repeat_last_n``."""
    frequency_penalty: float = 0.0
    """Subtracted per occurrence in the last ``repeat_last_n``."""
    mirostat: int = 0
    """0 = off, 1 = Mirostat, 2 = Mirostat 2.0 (replaces the whole chain but logit bias and temperature)."""
    mirostat_eta: float = 0.1
    """Mirostat learning rate (``--mirostat-lr``)."""
    mirostat_tau: float = 5.0
    """Mirostat target entropy (``--mirostat-ent``)."""
    dynatemp_range: float = 0.0
    """Dynamic temperature: temperature ± range, by the candidates' normalised entropy; 0 is off."""
    dynatemp_exponent: float = 1.0
    logit_bias: tuple[LogitBias, ...] = ()
    """Added to chosen tokens' logits before everything else (``--logit-bias``, repeatable)."""
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    """The chain's order (``--samplers``), llama.cpp's canonical names."""

    def __post_init__(self) -> None:
        # lists from JSON, CLI or code: keep the frozen value hashable and comparable
        for name in ("dry_sequence_breakers", "samplers"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        biases = self.logit_bias
        if not isinstance(biases, tuple) or any(isinstance(b, dict) for b in biases):
            object.__setattr__(self, "logit_bias", tuple(b if isinstance(b, LogitBias) else LogitBias(**b) for b in biases))

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature <= 0.0

    def validate(self) -> "SamplerParams":
        """Raise InvalidParameterError for any value out of range; return self."""
        checks = [
            (0.0 <= self.temperature <= 100.0, "temperature must be between 0 and 100"),
            (0 <= self.top_k <= INT32_MAX, f"top-k must be 0 (off) or between 1 and {INT32_MAX}"),
            (0.0 < self.top_p <= 1.0, "top-p must be in (0, 1]"),
            (0.0 <= self.min_p <= 1.0, "min-p must be in [0, 1]"),
            # NaN fails every comparison, so these also reject nan; inf is refused by the bound.
            (0.0 < self.repeat_penalty <= 100.0, "repeat penalty must be in (0, 100] (1.0 = off)"),
            (-1 <= self.repeat_last_n <= INT32_MAX, f"repeat-last-n must be -1 (whole context), 0 (off) or up to {INT32_MAX}"),
            (self.seed >= -1 and self.seed < 2**32, "seed must be -1 (random) or in [0, 2^32)"),
            (0.0 < self.typical_p <= 1.0, "typical must be in (0, 1] (1.0 = off)"),
            (-1.0 <= self.top_n_sigma <= 100.0, "top-nsigma must be between -1 (off) and 100"),
            (0.0 <= self.xtc_probability <= 1.0, "xtc-probability must be in [0, 1] (0 = off)"),
            (0.0 <= self.xtc_threshold <= 1.0, "xtc-threshold must be in [0, 1] (above 0.5 = off)"),
            (0.0 <= self.dry_multiplier <= 100.0, "dry-multiplier must be between 0 (off) and 100"),
            (1.0 <= self.dry_base <= 100.0, "dry-base must be between 1 and 100"),
            (0 <= self.dry_allowed_length <= INT32_MAX, f"dry-allowed-length must be between 0 and {INT32_MAX}"),
            (-1 <= self.dry_penalty_last_n <= INT32_MAX, f"dry-penalty-last-n must be -1 (whole context), 0 (off) or up to {INT32_MAX}"),
            (all(isinstance(b, str) and b for b in self.dry_sequence_breakers), "a DRY sequence breaker must be a non-empty string"),
            (-100.0 <= self.presence_penalty <= 100.0, "presence-penalty must be between -100 and 100 (0 = off)"),
            (-100.0 <= self.frequency_penalty <= 100.0, "frequency-penalty must be between -100 and 100 (0 = off)"),
            (self.mirostat in (0, 1, 2) and not isinstance(self.mirostat, bool), "mirostat must be 0 (off), 1 or 2"),
            (0.0 < self.mirostat_eta <= 1.0, "mirostat-lr must be in (0, 1]"),
            (0.0 < self.mirostat_tau <= 100.0, "mirostat-ent must be in (0, 100]"),
            (0.0 <= self.dynatemp_range <= 100.0, "dynatemp-range must be between 0 (off) and 100"),
            (0.0 <= self.dynatemp_exponent <= 100.0, "dynatemp-exp must be between 0 and 100"),
            (all(s in DEFAULT_SAMPLERS for s in self.samplers),
             f"samplers must be names among {';'.join(DEFAULT_SAMPLERS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidParameterError(message)
        for b in self.logit_bias:
            if not -MAX_LOGIT_BIAS <= b.bias <= MAX_LOGIT_BIAS:  # also refuses nan and ±inf
                raise InvalidParameterError(
                    f"logit bias {b.label()} must be finite, within ±{MAX_LOGIT_BIAS:g} (-100 is already a ban)"
                )
            if (b.token is None) == (b.text is None):
                raise InvalidParameterError("a logit bias names its token by id or by text, one of the two")
            if b.token is not None and not 0 <= b.token <= INT32_MAX:
                raise InvalidParameterError(f"logit bias token id must be >= 0, not {b.token}")
            if b.text is not None and not b.text:
                raise InvalidParameterError("a logit bias text must not be empty")
        return self

    @property
    def active_stages(self) -> tuple[str, ...]:
        """The stages that act, in chain order, as the engine builds them (names as in ``samplers``,
        plus ``logit_bias``, ``mirostat``/``mirostat_v2`` and ``greedy``/``dist``)."""
        head = ("logit_bias",) if self.logit_bias else ()
        if self.is_greedy:
            acting = tuple(s for s in self.samplers if s in ("penalties", "dry") and self.stage_on(s))
            return head + acting + ("greedy",)
        if self.mirostat:
            return head + ("temperature", "mirostat" if self.mirostat == 1 else "mirostat_v2")
        return head + tuple(s for s in self.samplers if self.stage_on(s)) + ("dist",)

    def stage_on(self, name: str) -> bool:
        """Whether stage ``name`` (a ``samplers`` name) changes anything with these settings."""
        if name == "penalties":
            return self.repeat_last_n != 0 and (
                self.repeat_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0
            )
        if name == "dry":
            return self.dry_multiplier != 0.0 and self.dry_penalty_last_n != 0
        if name == "top_n_sigma":
            return self.top_n_sigma > 0.0
        if name == "top_k":
            return self.top_k > 0
        if name == "typ_p":
            return self.typical_p < 1.0
        if name == "top_p":
            return self.top_p < 1.0
        if name == "min_p":
            return self.min_p > 0.0
        if name == "xtc":
            return self.xtc_probability > 0.0 and self.xtc_threshold <= 0.5
        return name == "temperature"

    def replace(self, **changes: Any) -> "SamplerParams":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # JSON-friendly: lists, and each bias only with the key it has
        data["dry_sequence_breakers"] = list(self.dry_sequence_breakers)
        data["samplers"] = list(self.samplers)
        data["logit_bias"] = [
            {"bias": b.bias, **({"token": b.token} if b.token is not None else {"text": b.text})} for b in self.logit_bias
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplerParams":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to produce: the prompt text and how to sample it."""

    prompt: str
    sampler: SamplerParams = field(default_factory=SamplerParams)
    max_tokens: int = 256
    """Maximum new tokens; generation also stops at an end-of-generation token or a stop string."""
    stop: tuple[str, ...] = ()
    top_n: int = 10
    """How many raw alternatives to report per token (0..100)."""
    add_special: bool = True
    """Let the tokenizer add BOS if the model wants one (chat-templated prompts already carry it)."""
    messages: tuple[tuple[str, str], ...] | None = None
    """(role, content) pairs when the prompt is a chat; ``prompt`` then holds its rendering by the
    model's template. Chat endpoints of remote servers are sent the messages, not the rendering."""
    force_ids: tuple[int, ...] = ()
    """Token ids that continue the prompt before anything is sampled (a branch, or a given
    completion prefix): the local engine teacher-forces them and reports them as token events
    marked ``forced``; ``max_tokens`` counts the new tokens after them (see ``engine/forced.py``)."""
    constraint: Constraint | None = None
    """The shape the output must take (a JSON schema, a GBNF grammar, a choice list): locally
    llama.cpp's grammar sampler in the chain (``engine/constraint.py``), remotely the server's own
    (``backends/constraints.py``); None samples freely."""

    def validate(self) -> "GenerationRequest":
        self.sampler.validate()
        if not 1 <= self.max_tokens <= INT32_MAX:
            raise InvalidParameterError(f"max tokens must be between 1 and {INT32_MAX}")
        if not 0 <= self.top_n <= MAX_TOP_N:
            raise InvalidParameterError(f"top-n must be between 0 and {MAX_TOP_N}")
        if any(s == "" for s in self.stop):
            raise InvalidParameterError("a stop string must not be empty")
        if any(not isinstance(t, int) or t < 0 for t in self.force_ids):
            raise InvalidParameterError("forced token ids must be non-negative integers")
        if self.constraint is not None:
            if not isinstance(self.constraint, Constraint):
                raise InvalidParameterError("the constraint must be a Constraint")
            self.constraint.validate()
        return self
