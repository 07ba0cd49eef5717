"""One call from "which model, which options" to a ready Engine."""

from __future__ import annotations

from playground.engine.generator import Engine
from playground.engine.llama_model import LlamaModel, ModelOptions
from playground.model_file import resolve_model


def load_engine(model_path: str | None = None, options: ModelOptions = ModelOptions(), *, reuse_prefix: bool = True) -> Engine:
    """Resolve the model file (embedded default when ``model_path`` is None), load it, wrap it."""
    return Engine(LlamaModel(resolve_model(model_path), options), reuse_prefix=reuse_prefix)
