"""Which local model to load and how: validated, serialisable, no llama.cpp import."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from playground.errors import InvalidParameterError

#: The largest context a command accepts; llama.cpp's KV cache for it alone is many gigabytes.
MAX_CTX = 1 << 20


def available_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """llama.cpp threads when none are asked for, in the TUI and every headless command alike:
    all cores but one.

    llama.cpp's workers spin at a barrier after every step, so one busy core (the UI, a compile,
    another run) stalls all of them: measured on 2 cores with one competing process, ``-t 2``
    decoded at 1-3 tok/s while ``-t 1`` held 45 tok/s. Leaving a core free costs at most one core's
    share on a quiet machine and keeps the rate steady on a busy one.
    """
    return max(1, available_cores() - 1)


def max_threads() -> int:
    """More threads than this only oversubscribe the cores (and a huge count aborts in C++)."""
    return max(4, 4 * available_cores())


@dataclass(frozen=True)
class EngineChoice:
    model_path: str | None = None
    """GGUF path; None = the embedded SmolLM2-135M-Instruct."""
    n_ctx: int = 4096
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    prefill_chunk: int | None = None
    """Prompt tokens per decode in the canonical schedule; None = the engine's default. A session
    check passes the recorded one, so that the re-run evaluates the prompt as the recording did."""
    beyond_train: str = "refuse"
    """A context larger than the model's trained one: "refuse" (a clear error), "clamp" (sized
    automatically), "allow" (``--ctx-beyond-train``)."""

    def validate(self) -> "EngineChoice":
        if not 16 <= self.n_ctx <= MAX_CTX:
            raise InvalidParameterError(f"context size must be between 16 and {MAX_CTX} tokens")
        if self.n_threads is not None and not 1 <= self.n_threads <= max_threads():
            raise InvalidParameterError(
                f"threads must be between 1 and {max_threads()} (4 per core: this machine has {available_cores()})")
        if self.prefill_chunk is not None and not 1 <= self.prefill_chunk <= MAX_CTX:
            raise InvalidParameterError("the prefill chunk must be at least 1 token")
        if self.beyond_train not in ("refuse", "clamp", "allow"):
            raise InvalidParameterError("beyond_train must be refuse, clamp or allow")
        if self.n_gpu_layers is not None and not -1 <= self.n_gpu_layers <= 100_000:
            raise InvalidParameterError("GPU layers must be -1 (all), 0 or a layer count")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self, *, n_seq_max: int = 1, reuse_prefix: bool = True):  # -> Engine (lazy import)
        from playground.engine.llama_model import ModelOptions
        from playground.engine.loader import load_engine

        ngl = 999 if self.n_gpu_layers == -1 else self.n_gpu_layers
        options = ModelOptions(n_ctx=self.n_ctx, n_gpu_layers=ngl, n_threads=self.n_threads or default_threads(),
                               n_seq_max=n_seq_max, beyond_train=self.beyond_train,  # type: ignore[arg-type]
                               **({} if self.prefill_chunk is None else {"prefill_chunk": self.prefill_chunk}))
        return load_engine(self.model_path, options, reuse_prefix=reuse_prefix)
