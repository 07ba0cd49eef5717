"""The run history: every finished run kept as a session file, newest first.

Files are named ``YYYYMMDD-HHMMSS-micro-KIND-slug.json`` (UTC) in the history directory
(``locations.history_dir()`` unless a directory is given), so names sort by time. Only files with
that shape are ever pruned; anything else a user puts there is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from playground import locations
from playground.errors import PlaygroundError, SessionFileError
from playground.sessions.schema import Session
from playground.sessions.store import load, save

#: The history keeps this many runs; older ones are removed when a new run is kept.
DEFAULT_MAX_FILES = 1000

NAME_RE = re.compile(r"^\d{8}-\d{6}-\d{6}-[a-z]+(-[a-z0-9]+)*\.json$")


@dataclass(frozen=True)
class HistoryEntry:
    """One history file: a summary of its session, or the error that kept it from loading."""

    path: Path
    session: Session | None
    error: str | None = None

    @property
    def preview(self) -> str:
        if self.session is None:
            return ""
        lane = self.session.lanes[0] if self.session.lanes else None
        text = (lane.receipt.prompt_text if lane else "") or self.session.prompt.text or self.session.prompt.input
        line = " ".join(text.split())
        return line if len(line) <= 50 else line[:49] + "…"


def _slug(session: Session) -> str:
    text = session.prompt.text or session.prompt.input or session.prompt.instruction
    if not text and session.lanes:
        text = session.lanes[0].receipt.prompt_text
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = "-".join(words)[:32].strip("-")
    return slug or "run"


def history_dir(directory: str | Path | None = None) -> Path:
    return Path(directory).expanduser() if directory is not None else locations.history_dir()


def keep(session: Session, directory: str | Path | None = None, *, max_files: int = DEFAULT_MAX_FILES) -> Path:
    """Save ``session`` into the history (creating the directory) and prune the oldest runs."""
    folder = history_dir(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionFileError(f"{folder}: cannot create the history directory ({exc.strerror})") from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    kind = re.sub(r"[^a-z]", "", session.kind.lower()) or "run"
    name = f"{stamp}-{kind}-{_slug(session)}"
    path = folder / f"{name}.json"
    n = 2
    while path.exists():  # two runs in the same microsecond (tests, fast machines)
        path = folder / f"{name}-{n}.json"
        n += 1
    save(session, path)
    prune(folder, max_files)
    return path


def history_files(directory: str | Path | None = None) -> list[Path]:
    """The history's session files, newest first."""
    folder = history_dir(directory)
    try:
        names = [p for p in folder.iterdir() if NAME_RE.match(p.name) and p.is_file()]
    except OSError:
        return []
    return sorted(names, key=lambda p: p.name, reverse=True)


def prune(directory: str | Path | None = None, max_files: int = DEFAULT_MAX_FILES) -> list[Path]:
    """Remove the oldest history files beyond ``max_files``; returns what was removed."""
    removed = []
    for path in history_files(directory)[max(0, max_files):]:
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass  # another process pruned it first, or it is read-only: not worth failing a run
    return removed


def list_history(directory: str | Path | None = None, limit: int | None = None) -> list[HistoryEntry]:
    """The newest ``limit`` runs (all when None), each loaded; broken files are listed with their error."""
    entries = []
    for path in history_files(directory)[:limit]:
        try:
            entries.append(HistoryEntry(path, load(path).session))
        except PlaygroundError as exc:
            entries.append(HistoryEntry(path, None, exc.message))
    return entries
