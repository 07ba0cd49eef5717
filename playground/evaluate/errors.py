"""The error a bad suite, case file or variants file raises: one line naming file, case and field."""

from __future__ import annotations

from playground.errors import PlaygroundError


class SuiteError(PlaygroundError):
    """A suite file is unreadable, not TOML/JSONL, or has a field of the wrong kind or value."""

    title = "Suite file"


def where(file: str, place: str, field: str | None = None) -> str:
    """``suite.toml: case 3: 'choices'``: the prefix every suite error message starts with."""
    parts = [file, place] + ([f"'{field}'"] if field else [])
    return ": ".join(p for p in parts if p)
