"""One place that turns "what to run" (a remote Endpoint or a local EngineChoice) into a Backend."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from playground.backends.base import Backend
from playground.backends.endpoints import Endpoint, resolve_api_key
from playground.engine_options import EngineChoice


def remote_backend(
    endpoint: Endpoint,
    environ: Mapping[str, str] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Backend:
    """The backend for a remote endpoint, with its key read from ``endpoint.api_key_env``."""
    from playground.backends.llamacpp import LlamaCppBackend
    from playground.backends.ollama import OllamaBackend
    from playground.backends.openai_compat import OpenAIBackend

    key = resolve_api_key(endpoint, os.environ if environ is None else environ)
    cls = {"ollama": OllamaBackend, "llamacpp": LlamaCppBackend}.get(endpoint.kind, OpenAIBackend)
    return cls(endpoint, key, transport=transport)


def local_backend(choice: EngineChoice, *, dist_size: int = 0, name: str = "local") -> Backend:
    """Load the local model (blocking: call it from a thread worker in the UI)."""
    from playground.backends.local import LocalBackend

    return LocalBackend(choice.load(), dist_size=dist_size, name=name)


def build_backend(target: Endpoint | EngineChoice, **kwargs) -> Backend:
    """Either kind of target; keyword arguments go to ``remote_backend`` or ``local_backend``."""
    if isinstance(target, Endpoint):
        return remote_backend(target, **kwargs)
    return local_backend(target, **kwargs)
