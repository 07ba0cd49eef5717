"""Reading and writing session files: atomic, human-diffable, and strict about what they accept.

The file is indented JSON with one token per line, so a diff of two runs shows the tokens that
changed. Loading never writes: an older version is upgraded in memory; anything wrong (not UTF-8,
not JSON, truncated, too large, unknown version, a hand edit that breaks the schema) raises
``SessionFileError`` naming the file and the problem.

The writer and the reader share ``limits``: before writing, ``prepare`` nulls what a file cannot
hold (NaN, infinities), cuts over-long strings, drops distribution heads and then alternatives
while the file would be too large, and checks the result as the reader will. So whatever is
written loads again.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.atomic_file import write_bytes_atomic
from playground.errors import SessionFileError
from playground.sessions import codec
from playground.sessions.codec import SchemaError
from playground.sessions.fit import drop_alternatives, drop_dists, fit
from playground.sessions.limits import MAX_SESSION_BYTES
from playground.sessions.schema import SCHEMA_VERSION, Session
from playground.sessions.secrets import check_no_secrets
from playground.sessions.upgrade import upgrade
from playground.sessions.validate import validate_session

__all__ = ["MAX_SESSION_BYTES", "Loaded", "Prepared", "Saved", "clean_stale_temps", "dumps", "load", "load_session",
           "parse", "prepare", "save", "write"]

#: Arrays whose items are written one per line, compactly (the token traces).
_ONE_PER_LINE = frozenset({"tokens"})

#: A temporary file of ``save`` (``.NAME.XXXXXXXX.tmp``, the shape ``tempfile.mkstemp`` gives it).
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")

#: A temporary file older than this was left by a save that was killed (see ``clean_stale_temps``).
STALE_TEMP_S = 60.0

_SURROGATE = re.compile("[\ud800-\udfff]")


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


def _dump(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    # A lone surrogate cannot be written as UTF-8: that one value is written with \u escapes.
    return json.dumps(value, ensure_ascii=True, allow_nan=False) if _SURROGATE.search(text) else text


def _write(value: Any, indent: int, key: str | None, out: list[str]) -> None:
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and value:
        out.append("{\n")
        for n, (k, v) in enumerate(value.items()):
            out.append(f"{pad}{_dump(k)}: ")
            _write(v, indent + 1, k, out)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "}")
    elif isinstance(value, list) and value and not all(_is_scalar(v) for v in value):
        out.append("[\n")
        for n, v in enumerate(value):
            out.append(pad)
            if key in _ONE_PER_LINE:
                out.append(_dump(v))
            else:
                _write(v, indent + 1, None, out)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append("  " * indent + "]")
    else:
        out.append(_dump(value))  # scalars and arrays of scalars stay on one line


def _text(session: Session) -> bytes:
    out: list[str] = []
    _write(codec.encode(session), 0, None, out)
    return ("".join(out) + "\n").encode("utf-8")


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


@dataclass(frozen=True)
class Prepared:
    """A session as it will be written (``trimmed`` says what had to change) and its bytes."""

    session: Session
    data: bytes

    @property
    def trimmed(self) -> tuple[str, ...]:
        return self.session.trimmed


def prepare(session: Session, where: str = "<session>", *, max_bytes: int = MAX_SESSION_BYTES) -> Prepared:
    """The file's bytes for ``session``, within the limits the reader enforces (see the module doc).

    Raises:
        SessionFileError: the session cannot be stored even trimmed (``where`` names the file).
    """
    fitted = fit(session)
    data = _text(fitted)
    for step in (drop_dists, drop_alternatives):
        if len(data) <= max_bytes:
            break
        fitted = step(fitted, f"the file would have been {_size(len(data))}, "
                              f"more than the {_size(max_bytes)} a session file may be")
        data = _text(fitted)
    if len(data) > max_bytes:
        raise SessionFileError(
            f"{where}: refusing to write: the session is {_size(len(data))} even without distributions "
            f"and alternatives, more than the {_size(max_bytes)} a session file may be"
        )
    try:
        validate_session(fitted)
    except SchemaError as exc:  # a setting out of range (not a token value: those were nulled)
        raise SessionFileError(f"{where}: refusing to write: {exc.path or 'top level'}: {exc.problem}") from None
    return Prepared(fitted, data)


def dumps(session: Session) -> str:
    """The file text for ``session``: stable field order, defaults omitted, one token per line."""
    return prepare(session).data.decode("utf-8")


def save(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write ``session`` to ``path`` atomically; a crash mid-write leaves the old file intact.

    The text goes to a temporary file in the same directory, is flushed and fsync'ed, then
    ``os.replace`` swaps it in (atomic on POSIX and Windows) and the directory is fsync'ed.
    What ``prepare`` had to trim is listed in the file's ``trimmed`` (see ``write`` to get it).

    Raises:
        SessionFileError: the directory is missing or not writable, the session cannot be
            stored within the limits, or it would carry an API key.
    """
    return write(session, path).path


@dataclass(frozen=True)
class Saved:
    """Where a session was written, and what had to be trimmed to write it."""

    path: Path
    trimmed: tuple[str, ...]


def write(session: Session, path: str | os.PathLike[str]) -> Saved:
    """``save``, returning what was trimmed too (to tell the user)."""
    target = Path(path).expanduser()
    prepared = prepare(session, str(target))
    data = prepared.data
    check_no_secrets(data.decode("utf-8"), session, target)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SessionFileError(f"{target}: the directory {directory} does not exist")
    clean_stale_temps(directory)
    try:
        write_bytes_atomic(target, data)
    except OSError as exc:
        raise SessionFileError(f"{target}: cannot write in {directory} ({exc.strerror or exc})") from None
    _fsync_dir(directory)
    new_notes = prepared.session.trimmed[len(session.trimmed):]
    return Saved(target, tuple(new_notes))


def clean_stale_temps(directory: Path, *, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove temporary files that killed saves left in ``directory``; returns what was removed.

    Stale means untouched for ``older_than_s``: a live save writes its temporary file and renames
    it within moments, while a PID check would miss saves from another machine sharing the
    directory and be fooled by a reused PID. Only regular files of ``save``'s own shape whose
    content starts like a session (or is empty) are touched; anything else is left alone.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = [p for p in directory.iterdir() if _TEMP_NAME.match(p.name)]
    except OSError:
        return removed
    for path in candidates:
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < older_than_s:
                continue
            with path.open("rb") as handle:
                head = handle.read(1)
            if head not in (b"", b"{"):
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            continue  # another save cleaned it first, or it is not ours to remove
    return removed


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
        raise SessionFileError(f"{path}: larger than {_size(max_bytes)}, the most a session file may be; not loaded")
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
        raise SessionFileError(f"{where}: expected a JSON object at the top, found {codec.kind(raw)}")
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
