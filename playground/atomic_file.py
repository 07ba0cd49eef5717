"""Files written atomically: a temporary file beside the target, flushed, fsync'ed, then swapped in.

A crash or a full disk mid-write leaves the old file whole; the temporary file is removed on any
failure. The one writer for sessions, results files, the UI state and the model-hash cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` in one step; OSError if the folder cannot be written."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """``write_bytes_atomic`` of ``text`` as UTF-8 (newlines as given)."""
    return write_bytes_atomic(path, text.encode("utf-8"))
