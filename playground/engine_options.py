"""Which local model to load and how: validated, serialisable, no llama.cpp import."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from playground.cores import available_cores, default_threads, max_threads  # noqa: F401 - re-exported
from playground.errors import InvalidParameterError

#: The largest context a command accepts; llama.cpp's KV cache for it alone is many gigabytes.
MAX_CTX = 1 << 20


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
