"""Which local model to load and how: validated, serialisable, no llama.cpp import."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from playground.errors import InvalidParameterError


@dataclass(frozen=True)
class EngineChoice:
    model_path: str | None = None
    """GGUF path; None = the embedded SmolLM2-135M-Instruct."""
    n_ctx: int = 4096
    n_gpu_layers: int | None = None
    n_threads: int | None = None

    def validate(self) -> "EngineChoice":
        if self.n_ctx < 16:
            raise InvalidParameterError("context size must be at least 16 tokens")
        if self.n_threads is not None and self.n_threads < 1:
            raise InvalidParameterError("threads must be at least 1")
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            raise InvalidParameterError("GPU layers must be -1 (all), 0 or positive")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self, *, n_seq_max: int = 1, reuse_prefix: bool = True):  # -> Engine (lazy import)
        from playground.engine.llama_model import ModelOptions
        from playground.engine.loader import load_engine

        ngl = 999 if self.n_gpu_layers == -1 else self.n_gpu_layers
        options = ModelOptions(n_ctx=self.n_ctx, n_gpu_layers=ngl, n_threads=self.n_threads, n_seq_max=n_seq_max)
        return load_engine(self.model_path, options, reuse_prefix=reuse_prefix)
