"""Saving the compare screen's live runs (ctrl+s) and keeping each finished one in the history.

A live run is recorded as ``playground compare --save`` records it: a ``SessionRecorder`` fed every
item of ``run_compare`` in the run's own thread worker (``feed_compare``: lanes, seeds, traces,
receipts, and a vote with its extractor). Saves and history writes run in thread workers; every
failure goes to ``app.report``. Opened or replayed sessions are saved by the main screen, which
holds them whole, and are never kept in the history (they are not runs).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work

from playground.errors import PlaygroundError
from playground.params import GenerationRequest
from playground.prompt_builder import PromptSpec
from playground.sessions import history
from playground.sessions.prompt import prompt_fields
from playground.sessions.record import SessionRecorder
from playground.sessions.schema import DistHead, Session
from playground.ui.screens.session_files import SaveSessionScreen
from playground.ui.session_io import HISTORY_DIST, default_save_path, write_session_file

if TYPE_CHECKING:
    from playground.ui.screens.compare_forms import VoteSetup


def compare_recorder(spec: PromptSpec, requests: list[GenerationRequest], keep_dist: int,
                     vote: "VoteSetup | None" = None, backends: list | None = None) -> SessionRecorder:
    """A recorder for one compare run (or vote) on the panes' prompt ``spec``, lanes declared up front
    (so a random seed stays -1 in the settings, and no lane is created while a save reads it);
    ``backends``: per lane, the ``BackendSpec`` of a remote lane (None: local)."""
    recorder = SessionRecorder(kind="vote" if vote is not None else "compare", keep_dist=keep_dist,
                               **prompt_fields(spec))
    if vote is not None:
        recorder.extractor, recorder.extractor_pattern = vote.kind, vote.pattern
    for k, request in enumerate(requests):
        recorder.lane(k, request=request, backend=backends[k] if backends else None)
    return recorder


def trim_dist(session: Session, keep: int = HISTORY_DIST) -> Session:
    """``session`` with each token's raw distribution head cut to ``keep`` entries (what the
    history keeps, as for the main screen's runs; a head no longer than the top-n list is dropped)."""
    lanes = []
    for lane in session.lanes:
        tokens = []
        for token in lane.tokens:
            dist = token.dist
            if dist is not None and len(dist.ids) > keep:
                dist = DistHead(dist.ids[:keep], dist.logprobs[:keep]) if keep > len(token.top) else None
                token = dataclasses.replace(token, dist=dist)
            tokens.append(token)
        lanes.append(dataclasses.replace(lane, tokens=tuple(tokens)))
    return dataclasses.replace(session, lanes=tuple(lanes))


class CompareSaving:
    """ctrl+s and the history for live compare runs; mixed into ``CompareScreen``."""

    recorder: SessionRecorder | None = None
    """The last live run's recording (fed by the run's worker thread)."""
    last_saved: Path | None = None
    """The file the last ctrl+s wrote."""
    last_kept: Path | None = None
    """The history file of the last finished live run."""

    def action_save_session(self) -> None:
        """An opened session is held whole by the main screen: its save writes every lane."""
        if self.records and self.records[0].source in ("session", "replay"):
            self.app._main_screen().action_save_session()
            return
        if self.recorder is None:
            self.notify("Nothing to save yet: ctrl+g runs the lanes first.", severity="warning")
            return
        spec = self.workspace.spec
        note = "the run is still going: what has arrived so far is saved" if self.running else ""
        self.app.push_screen(SaveSessionScreen(default_save_path(self.settings.history_dir, spec), note),
                             self.save_to)

    def save_to(self, path: Path | None) -> None:
        """Write the last live run to ``path`` (in a thread); None (a cancelled modal) does nothing."""
        if path is not None and self.recorder is not None:
            self._write_run(path, self.recorder)

    @work(thread=True, group="session-io", exit_on_error=False)
    def _write_run(self, path: Path, recorder: SessionRecorder) -> None:
        try:
            saved = write_session_file(recorder.session(), path, self.settings.history_dir)
        except PlaygroundError as exc:
            self.app.call_from_thread(self.app.report, exc)
            return
        self.app.call_from_thread(self._saved, saved)

    def _saved(self, path: Path) -> None:
        self.last_saved = path
        self.notify(str(path), title="Session saved")

    def keep_in_history(self) -> None:
        """Keep the finished live run (called once per run, when its worker has ended)."""
        live = bool(self.records) and self.records[0].source == "live"
        if self.settings.keep_history and live and self.recorder is not None and self.recorder.lanes:
            self._keep(self.recorder)

    @work(thread=True, group="history", exit_on_error=False)
    def _keep(self, recorder: SessionRecorder) -> None:
        try:
            path = history.keep(trim_dist(recorder.session()), self.settings.history_dir)
        except PlaygroundError as exc:  # the run itself is fine: say so, as a warning
            error = PlaygroundError(f"this run was not kept in the history: {exc.message}", title="History")
            self.app.call_from_thread(self.app.report, error, "warning")
            return
        self.app.call_from_thread(setattr, self, "last_kept", path)
