"""The main screen's session actions: save (ctrl+s), open (ctrl+o), the history, replay.

A mixin of ``MainScreen``: file reads and writes run in thread workers, a replay in an async
worker; every failure goes to ``app.report`` (the one place errors become notifications).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from textual import work

from playground.errors import PlaygroundError
from playground.locations import example_sessions_dir
from playground.prompt_builder import PromptSpec
from playground.sessions import history
from playground.sessions.schema import Session
from playground.sessions.store import load
from playground.ui.run_record import RunRecord
from playground.ui.screens.session_files import OpenSessionScreen, SaveSessionScreen
from playground.ui.session_io import (
    default_save_path,
    history_session,
    lanes_note,
    one_lane,
    panes_of,
    recent_files,
    run_of,
    session_to_save,
    write_session_file,
)
from playground.ui.streams import replay_into
from playground.ui.widgets.examples_panel import ExamplesPanel
from playground.ui.widgets.prompt_panel import PromptPanel
from playground.ui.widgets.sampler_panel import SamplerPanel

PROMPT_EDITED = ("the prompt changed since the last run: the panes' prompt is saved, and the run "
                 "keeps the exact prompt it was given in its receipt")


class SessionActions:
    """Save, open, keep in the history and replay; mixed into ``MainScreen``."""

    last_saved: Path | None = None
    """The file the last ctrl+s wrote."""
    last_kept: Path | None = None
    """The history file of the last finished run."""

    # --- save ------------------------------------------------------------------------------
    def action_save_session(self) -> None:
        spec = self.current_spec()
        note = PROMPT_EDITED if self.record.source == "live" and self.record.spec not in (None, spec) else ""
        self.app.push_screen(SaveSessionScreen(default_save_path(self.settings.history_dir, spec), note),
                             self._save_chosen)

    def _save_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        record = dataclasses.replace(self.record, tokens=list(self.record.tokens))  # the run may go on
        options = dict(keep_dist=self.settings.dist_size, sampler=self.sampler, max_tokens=self.max_tokens,
                       stop=self.stop, top_n=self.settings.top_n, backend=self.app.backend_spec())
        self._write_session(path, self.current_spec(), record, options)

    @work(thread=True, group="session-io", exit_on_error=False)
    def _write_session(self, path: Path, spec: PromptSpec, record: RunRecord, options: dict) -> None:
        try:
            saved = write_session_file(session_to_save(spec, record, **options), path, self.settings.history_dir)
        except PlaygroundError as exc:
            self.app.call_from_thread(self.app.report, exc)
            return
        self.app.call_from_thread(self._saved, saved)

    def _saved(self, path: Path) -> None:
        self.last_saved = path
        self.clean_spec = self.current_spec()
        self.notify(str(path), title="Session saved")

    # --- history ---------------------------------------------------------------------------
    def keep_in_history(self) -> None:
        """Keep the finished live run (called once per run, from ``_finish``)."""
        if self.settings.keep_history and self.record.source == "live":
            self._keep(self.record.spec or self.current_spec(), self.record)

    @work(thread=True, group="history", exit_on_error=False)
    def _keep(self, spec: PromptSpec, record: RunRecord) -> None:
        try:
            path = history.keep(history_session(spec, record), self.settings.history_dir)
        except PlaygroundError as exc:  # the run itself is fine: say so, as a warning
            error = PlaygroundError(f"this run was not kept in the history: {exc.message}", title="History")
            self.app.call_from_thread(self.app.report, error, "warning")
            return
        self.app.call_from_thread(setattr, self, "last_kept", path)

    # --- open ------------------------------------------------------------------------------
    def action_open_session(self) -> None:
        if self.running:
            self.notify("A run is going on; escape stops it first.", severity="warning")
            return
        folder = self.settings.history_dir
        recent = recent_files([folder])
        examples = sorted(example_sessions_dir().glob("*.json"))
        recent += [(p, f"example           {p.name}") for p in examples]
        self.app.push_screen(OpenSessionScreen(str(folder) + os.sep, recent, str(folder)), self._open_chosen)

    def _open_chosen(self, path: Path | None) -> None:
        if path is not None:
            self.open_file(path)

    @work(thread=True, group="session-io", exit_on_error=False)
    def open_file(self, path: Path, speed: float | None = None) -> None:
        """Load ``path`` (a thread: files may be large) and show it, or replay it at ``speed``."""
        try:
            loaded = load(path)
        except PlaygroundError as exc:
            self.app.call_from_thread(self.app.report, exc)
            return
        self.app.call_from_thread(self.show_session, loaded.session, loaded.path, speed)

    def show_session(self, session: Session, path: Path, speed: float | None = None) -> None:
        """Fill the panes from ``session`` and show its (first) lane: whole, or replayed at ``speed``."""
        if self.running:
            self.notify("A run is going on; escape stops it first.", severity="warning")
            return
        panes = panes_of(session)
        self._base_spec = panes.spec
        self.query_one(PromptPanel).set_spec(panes.spec)
        self.query_one(ExamplesPanel).set_examples(panes.spec.examples, panes.spec.example_format)
        sampler = self.query_one(SamplerPanel)
        sampler.set_params(panes.sampler, panes.max_tokens, stop=panes.stop)
        sampler.show_seed_used(panes.seed_used)
        self.sampler, self.max_tokens, self.stop = panes.sampler, panes.max_tokens, panes.stop
        self.clean_spec = self.current_spec()
        if len(session.lanes) > 1:
            # Several lanes: side by side (or replayed) on the compare screen; this screen keeps
            # the session whole behind it (lane 1 shown), so ctrl+s here still saves every lane.
            self.app.call_later(self.app.show_compare, session, path, speed)
            speed = None
        note = lanes_note(session)
        what = f"{'replay' if speed is not None else 'session'} {path.name}"
        self.set_note(f"{what} · {note}" if note else what)
        if note:
            self.notify(note, title="Session", timeout=10)  # read beside the compare screen opening
        if not session.lanes:
            self.begin_run(RunRecord(source="session", session=session))
            self._finish()
            return
        if speed is None:  # the same path as a live run, all at once
            self.begin_run(RunRecord(source="session", session=session))
            self.driver.show(run_of(session).events())
            return
        self.begin_run(RunRecord(source="replay", session=session))
        shown = one_lane(session)
        self.driver.start_async(lambda put: replay_into(shown, speed, put), kind="replay")
