"""Reading and writing session files: atomic, human-diffable, and strict about what they accept.

The file is indented JSON with one token per line, so a diff of two runs shows the tokens that
changed. Loading never writes: an older version is upgraded in memory; anything wrong (not UTF-8,
not JSON, truncated, too large, unknown version, a hand edit that breaks the schema) raises
``SessionFileError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.errors import SessionFileError
from playground.sessions import codec
from playground.sessions.codec import SchemaError
from playground.sessions.schema import SCHEMA_VERSION, Session
from playground.sessions.secrets import check_no_secrets
from playground.sessions.upgrade import upgrade
from playground.sessions.validate import validate_session

#: A session larger than this is refused (6 lanes x 4096 tokens x 100 alternatives stays well below).
MAX_SESSION_BYTES = 64 * 1024 * 1024

#: Arrays whose items are written one per line, compactly (the token traces).
_ONE_PER_LINE = frozenset({"tokens"})


@dataclass(frozen=True)
class Loaded:
    """A loaded session and the schema version its file had (older ones were upgraded)."""

    session: Session
    path: Path
    file_version: int

    @property
    def upgraded(self) -> bool:
        return self.file_version != SCHEMA_VERSION


# --- writing -----------------------------------------------------------------------------------
def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _write(value: Any, indent: int, key: str | None, out: list[str], ascii_only: bool) -> None:
    pad = "  " * (indent + 1)
    dump = lambda v: json.dumps(v, ensure_ascii=ascii_only, allow_nan=False)  # noqa: E731
    if isinstance(value, dict) and value:
        out.append("{\n")
        for n, (k, v) in enumerate(value.items()):
            out.append(f"{pad}{dump(k)}: ")
            _write(v, indent + 1, k, out, ascii_only)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "}")
    elif isinstance(value, list) and value and not all(_is_scalar(v) for v in value):
        out.append("[\n")
        for n, v in enumerate(value):
            out.append(pad)
            if key in _ONE_PER_LINE:
                out.append(dump(v))
            else:
                _write(v, indent + 1, None, out, ascii_only)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "]")
    else:
        out.append(dump(value))  # scalars and arrays of scalars stay on one line


def dumps(session: Session) -> str:
    """The file text for ``session``: stable field order, defaults omitted, one token per line."""
    data = codec.encode(session)
    for ascii_only in (False, True):
        out: list[str] = []
        _write(data, 0, None, out, ascii_only)
        text = "".join(out) + "\n"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            continue  # a lone surrogate: write \u escapes instead of raw characters
        return text
    raise AssertionError("unreachable: ASCII output always encodes")


def save(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write ``session`` to ``path`` atomically; a crash mid-write leaves the old file intact.

    The text goes to a temporary file in the same directory, is flushed and fsync'ed, then
    ``os.replace`` swaps it in (atomic on POSIX and Windows) and the directory is fsync'ed.

    Raises:
        SessionFileError: the directory is missing or not writable, or the session would carry
            an API key.
    """
    target = Path(path).expanduser()
    text = dumps(session)
    check_no_secrets(text, session, target)
    data = text.encode("utf-8")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SessionFileError(f"{target}: the directory {directory} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SessionFileError(f"{target}: cannot write in {directory} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise SessionFileError(f"{target}: cannot write ({exc.strerror or exc})") from None
        raise
    _fsync_dir(directory)
    return target


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- reading -----------------------------------------------------------------------------------
def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise SessionFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SessionFileError(f"{path}: is a directory, not a session file") from None
    except OSError as exc:
        raise SessionFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise SessionFileError(
            f"{path}: larger than {max_bytes // (1024 * 1024)} MiB, the most a session file may be; not loaded"
        )
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse(data: bytes, source: str = "<session>") -> Loaded:
    """Decode the bytes of a session file (see ``load``); ``source`` names it in errors."""
    where = source
    if not data.strip():
        raise SessionFileError(f"{where}: empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionFileError(f"{where}: not UTF-8 text (bad byte at offset {exc.start}); not a session file") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        near_end = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated (the JSON ends early)" if near_end else "not valid JSON"
        raise SessionFileError(f"{where}: {what}: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise SessionFileError(f"{where}: not a session file (JSON nested too deeply)") from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise SessionFileError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise SessionFileError(f"{where}: expected a JSON object at the top, found {codec._kind(raw)}")
    try:
        current, version = upgrade(raw)
        session = codec.decode(Session, current)
        validate_session(session)
    except SchemaError as exc:
        raise SessionFileError(f"{where}: {exc.path or 'top level'}: {exc.problem}") from None
    except RecursionError:
        raise SessionFileError(f"{where}: nested too deeply") from None
    return Loaded(session, Path(source), version)


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_SESSION_BYTES) -> Loaded:
    """Read and check a session file, upgrading an older version in memory; never writes it.

    Raises:
        SessionFileError: naming the file and what is wrong with it.
    """
    target = Path(path).expanduser()
    loaded = parse(_read_bytes(target, max_bytes), str(target))
    return Loaded(loaded.session, target, loaded.file_version)


def load_session(path: str | os.PathLike[str]) -> Session:
    """Just the session (see ``load``)."""
    return load(path).session
