"""Sampler and generation parameters, shared by every backend, the CLI and the UI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
}


@dataclass(frozen=True)
class SamplerParams:
    """The sampler settings, named as llama.cpp names them.

    A value that disables a stage: ``top_k=0``, ``top_p=1.0``, ``min_p=0.0``, ``repeat_penalty=1.0``.
    ``temperature <= 0`` or ``greedy`` picks the most likely token.
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
    """How many recent tokens the repeat penalty looks at."""
    seed: int = RANDOM_SEED
    """Seed of the final random draw; -1 draws a random seed (reported)."""
    greedy: bool = False
    """Always take the most likely token after the penalties."""

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
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidParameterError(message)
        return self

    def replace(self, **changes: Any) -> "SamplerParams":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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

    def validate(self) -> "GenerationRequest":
        self.sampler.validate()
        if not 1 <= self.max_tokens <= INT32_MAX:
            raise InvalidParameterError(f"max tokens must be between 1 and {INT32_MAX}")
        if not 0 <= self.top_n <= MAX_TOP_N:
            raise InvalidParameterError(f"top-n must be between 0 and {MAX_TOP_N}")
        if any(s == "" for s in self.stop):
            raise InvalidParameterError("a stop string must not be empty")
        return self
