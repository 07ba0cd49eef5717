"""Sessions for the TUI, as pure functions (no Textual): a run -> a Session, a Session -> the panes.

The recording itself is ``sessions.record.LaneRecorder``'s; it is fed from the run's events once
the run is over (or at a save), not token by token, so a fast stream costs the UI thread nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from playground.errors import SessionFileError
from playground.params import SamplerParams
from playground.prompt_builder import PromptSpec
from playground.sessions.history import NAME_RE
from playground.sessions.prompt import prompt_fields, prompt_spec
from playground.sessions.record import LaneRecorder, utc_now
from playground.sessions.replay import lane_events
from playground.sessions.store import save
from playground.sessions.schema import BackendSpec, Lane, RequestSettings, Session
from playground.ui.run_record import RunRecord

HISTORY_DIST = 64
"""Entries of each token's raw distribution head kept in the automatic history.

A saved session (ctrl+s) keeps the app's whole ``dist_size`` head (512 by default, ~9 kB per
token); the history keeps every run, so it keeps less. A shorter head only makes the distribution
view of an opened run flag more positions as approximate ("≈"); it never changes a number.
"""


@dataclass(frozen=True)
class PaneState:
    """What the prompt, examples and sampler panes show for a session's lane."""

    spec: PromptSpec
    sampler: SamplerParams
    """As the lane requested it (a random seed stays -1; the seed used is ``seed_used``)."""
    max_tokens: int
    stop: tuple[str, ...]
    seed_used: int | None


def lane_from_run(record: RunRecord, *, keep_dist: int) -> Lane:
    """The lane a live run recorded so far (unfinished runs have ``finish_reason`` None)."""
    recorder = LaneRecorder(backend=record.backend, request=record.request, keep_dist=keep_dist, transcript=record)
    lane = recorder.lane()
    return dataclasses.replace(lane, started=record.started_utc or lane.started)


def session_to_save(
    spec: PromptSpec,
    record: RunRecord,
    *,
    keep_dist: int,
    sampler: SamplerParams,
    max_tokens: int,
    stop: tuple[str, ...],
    top_n: int,
    backend: BackendSpec | None = None,
) -> Session:
    """The session ctrl+s writes: the panes' prompt, and the last run's lane(s).

    An opened (or replayed) session keeps all its lanes, untouched. Before any run, one lane with
    no tokens holds the sliders, so that a prompt and its settings can be saved too.
    """
    fields = prompt_fields(spec)
    if record.session is not None:
        return dataclasses.replace(record.session, **fields)
    if record.start is None:
        lane = Lane(backend=backend or BackendSpec(), sampler=sampler,
                    request=RequestSettings(max_tokens, tuple(stop), top_n))
        return Session(created=utc_now(), **fields, lanes=(lane,))
    lane = lane_from_run(record, keep_dist=keep_dist)
    return Session(created=record.started_utc or utc_now(), kind="generate", **fields, lanes=(lane,))


def history_session(spec: PromptSpec, record: RunRecord) -> Session:
    """What the history keeps of a finished live run (a shorter distribution head)."""
    lane = lane_from_run(record, keep_dist=HISTORY_DIST)
    return Session(created=record.started_utc or utc_now(), kind="generate", **prompt_fields(spec), lanes=(lane,))


def panes_of(session: Session, lane_index: int = 0) -> PaneState:
    """The panes' content for ``session`` shown at lane ``lane_index`` (a variant lane's own prompt)."""
    spec = prompt_spec(session, lane_index)
    if not session.lanes:
        return PaneState(spec, SamplerParams(), RequestSettings.max_tokens, (), None)
    lane = session.lanes[lane_index]
    return PaneState(spec, lane.sampler, lane.request.max_tokens, tuple(lane.request.stop), lane.receipt.seed)


def run_of(session: Session, lane_index: int = 0) -> RunRecord:
    """A record holding lane ``lane_index``'s events, as an opened session shows them."""
    record = RunRecord(source="session", session=session, lane_index=lane_index)
    if session.lanes:
        for _, event in lane_events(session.lanes[lane_index]):
            record.add(event)
    return record


def one_lane(session: Session, lane_index: int = 0) -> Session:
    """``session`` cut down to one lane starting at once (what a replay of that lane streams)."""
    lane = dataclasses.replace(session.lanes[lane_index], offset_s=0.0)
    return dataclasses.replace(session, lanes=(lane,))


def lanes_note(session: Session, lane_index: int = 0) -> str:
    """"" for one lane; else which lane the main screen shows (the compare screen shows them all)."""
    n = len(session.lanes)
    if n <= 1:
        return ""
    label = session.lanes[lane_index].label
    return f"{n} lanes — all on the compare screen (ctrl+l); here lane {lane_index + 1}" + (f" ({label})" if label else "")


def token_texts(record: RunRecord) -> dict[int, str]:
    """Token id -> piece text, from the alternatives a run recorded (ids the backend gave)."""
    known: dict[int, str] = {}
    for token in record.tokens:
        for alt in token.top:
            if alt.id >= 0:
                known.setdefault(alt.id, alt.text)
    return known


def same_model(record: RunRecord, sha256: str | None) -> bool:
    """Whether ``record`` was produced by the local model whose file hash is ``sha256``."""
    start = record.start
    return bool(sha256) and start is not None and start.backend == "llama.cpp" and start.model.get("sha256") == sha256


def token_text_for(record: RunRecord, engine: object | None) -> Callable[[int], str | None]:
    """How the distribution view names a token id: the loaded model when it made the run, else the
    texts recorded with the run, else nothing (the view shows the id; another model's vocabulary
    would give the wrong text)."""
    model = getattr(engine, "model", None)
    file = getattr(model, "file", None)
    if model is not None and same_model(record, getattr(file, "sha256", None)):
        return model.piece_text
    known = token_texts(record)
    return known.get


def default_save_path(folder: Path, spec: PromptSpec) -> Path:
    """``folder/saved-YYYYMMDD-HHMMSS-slug.json`` (not a history name: never pruned)."""
    text = spec.text if spec.mode == "freeform" else (spec.input or spec.instruction)
    slug = "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:32].strip("-") or "session"
    return folder / f"saved-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug}.json"


def recent_files(folders: list[Path], limit: int = 30) -> list[tuple[Path, str]]:
    """(path, label) of the newest session files in ``folders`` (history runs by their names)."""
    found: list[tuple[float, Path]] = []
    for folder in folders:
        try:
            found.extend((p.stat().st_mtime, p) for p in folder.glob("*.json") if p.is_file())
        except OSError:
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [(path, file_label(path, mtime)) for mtime, path in found[:limit]]


def file_label(path: Path, mtime: float) -> str:
    """"2026-11-22 03:17  generate  the capital of france" for a history file, else its name."""
    if NAME_RE.match(path.name):
        stamp, _, rest = path.stem[:15], path.stem[16:22], path.stem[23:]
        kind, _, slug = rest.partition("-")
        when = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"
        return f"{when}  {kind:8}  {slug.replace('-', ' ')}"
    when = datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")
    return f"{when}  {path.name}"


def write_session_file(session: Session, path: Path, history_dir: Path) -> Path:
    """Save ``session`` atomically to ``path`` (creating the history folder when it is the target)."""
    if path.parent == history_dir:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionFileError(f"{path.parent}: cannot create the directory ({exc.strerror})") from None
    return save(session, path)


def branches_session(spec: PromptSpec, records: list[RunRecord], title: str) -> Session:
    """Branches of one completion as the lanes of a compare session (shown side by side)."""
    lanes = tuple(lane_from_run(record, keep_dist=HISTORY_DIST) for record in records)
    return Session(created=utc_now(), kind="compare", title=title, **prompt_fields(spec), lanes=lanes)
