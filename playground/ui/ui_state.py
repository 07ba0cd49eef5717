"""What the TUI remembers between runs (the theme picked in the palette), in a small JSON file.

The file lives in the user's config folder (``state.json``), is written atomically (a temporary
file, then a rename) and is only a convenience: a missing or damaged file means "nothing remembered".
"""

from __future__ import annotations

import json
from pathlib import Path

from playground.atomic_file import write_text_atomic
from playground.locations import config_dir

STATE_VERSION = 1


def state_file() -> Path:
    return config_dir() / "state.json"


def load_state(path: Path | None = None) -> dict[str, str]:
    """The remembered values (empty when there is no file or it cannot be read)."""
    path = path or state_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def save_state(values: dict[str, str], path: Path | None = None) -> None:
    """Merge ``values`` into the file, atomically.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path = path or state_file()
    merged = {**load_state(path), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"schema_version": str(STATE_VERSION), **merged}, indent=1, sort_keys=True))
