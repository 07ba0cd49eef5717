"""The last guard before a session reaches disk: no API key value may be in it.

The schema has no place for a key (a backend keeps only the *name* of its variable), so this only
fires if a key slipped into free text, e.g. an error message that echoed a request header.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from playground.errors import SessionFileError
from playground.sessions.schema import Session

#: Variables that commonly hold keys, checked even when no lane names them.
WELL_KNOWN_KEY_VARS = ("OPENAI_API_KEY", "OLLAMA_API_KEY", "PLAYGROUND_API_KEY")

#: Shorter values are too likely to occur by chance in ordinary text (and are not real keys).
_MIN_KEY_LENGTH = 8


def key_values(session: Session) -> list[str]:
    """The values of every key variable the session's lanes name, plus the well-known ones."""
    names = set(WELL_KNOWN_KEY_VARS)
    names.update(lane.backend.api_key_env for lane in session.lanes if lane.backend.api_key_env)
    values = (os.environ.get(name, "") for name in sorted(names))
    return [v for v in values if len(v.strip()) >= _MIN_KEY_LENGTH]


def check_no_secrets(text: str, session: Session, target: Path) -> None:
    """Raise SessionFileError, writing nothing, if any key value occurs in ``text``."""
    for value in key_values(session):
        value = value.strip()
        if value in text or json.dumps(value)[1:-1] in text:
            raise SessionFileError(
                f"{target}: refusing to write: the session text contains the value of an API key variable"
            )
