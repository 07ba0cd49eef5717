"""Sessions: one JSON file per prompt and its lanes; save, load, history, record, replay, check.

Nothing here imports llama.cpp at import time; ``check`` loads the engine only when it runs.
"""

from playground.sessions.schema import (
    SCHEMA_VERSION,
    BackendSpec,
    Lane,
    PromptParts,
    Receipt,
    Session,
    TokenRecord,
)
from playground.sessions.store import Loaded, dumps, load, load_session, save

__all__ = [
    "SCHEMA_VERSION",
    "BackendSpec",
    "Lane",
    "Loaded",
    "PromptParts",
    "Receipt",
    "Session",
    "TokenRecord",
    "dumps",
    "load",
    "load_session",
    "save",
]
