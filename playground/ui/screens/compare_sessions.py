"""Multi-lane sessions on the compare screen: shown whole, or replayed at their recorded timing.

A replay streams ``sessions.replay.areplay``'s merged timeline (every lane at its recorded time)
through the same run driver and lane panes a live run uses; divergences are computed from the recorded
tokens with ``compare.divergence``, and a recorded vote is re-tallied from its recorded answers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

from playground.compare.divergence import divergences
from playground.compare.events import LaneEvent
from playground.compare.lane_spec import LaneSpec
from playground.compare.vote import tally
from playground.sessions.replay import areplay, timeline
from playground.sessions.schema import Session
from playground.ui.run_record import RunRecord
from playground.ui.widgets.lane_vote import VotePanel


class CompareSessions:
    """Show and replay sessions; mixed into ``CompareScreen``."""

    session_path: Path | None = None

    async def show_session(self, session: Session, path: Path, speed: float | None = None) -> None:
        """All of ``session``'s lanes side by side (a vote session: its samples and the vote)."""
        await self.ready.wait()
        if self.running:
            self.notify("A run is going on; escape stops it first.", severity="warning")
            return
        self.session_path = path
        source = "replay" if speed is not None else "session"
        self.mode = "vote" if session.vote is not None else "lanes"
        if self.mode == "lanes":
            # the session's lanes, where they ran (a remote lane's endpoint by its config name is
            # not recorded: those lanes re-run on the compare engine)
            self.lanes = [LaneSpec(lane.sampler) for lane in session.lanes[:6]] or self.lanes
            lanes = session.lanes[:6]
        else:  # the samples' settings; the user's lanes stay as they are for `l`
            self.vote_params = session.lanes[0].sampler if session.lanes else self.vote_params
            self._lanes_view = ([], {}, None)
            lanes = session.lanes
        if len(session.lanes) > len(lanes):
            self.notify(f"{len(session.lanes)} lanes: the first {len(lanes)} are shown.", severity="warning")
        self.records = [RunRecord(source=source, session=session, lane_index=k) for k in range(len(lanes))]
        self.divergences, self.vote, self.batch = {}, None, None
        self.selected = 0
        await self.rebuild()
        if self.mode == "vote":
            extractor = session.vote.extractor + (f" {session.vote.pattern}" if session.vote.pattern else "")
            self.query_one(VotePanel).start(len(lanes), f"{extractor} (recorded)")
        self.set_status(f"{source} {path.name}" + ("… (esc stops)" if speed else ""))
        kept = set(range(len(lanes)))
        if speed is None or speed == 0:
            self.driver.show([LaneEvent(i.lane, i.event) for i in timeline(session) if i.lane in kept])
            self.finish_session(session)
            return
        self.driver.start_async(lambda put: _replay(session, speed, kept, put), kind="replay")

    def finish_session(self, session: Session, stopped: bool = False) -> None:
        """Divergences of the recorded lanes and the recorded vote, then the usual end of a run."""
        if self.mode == "lanes" and len(self.records) > 1:
            self.divergences = {d.lane: d for d in divergences([r.tokens for r in self.records])}
        if self.mode == "vote" and session.vote is not None:
            self.vote = tally(list(session.vote.answers))
        self.finish(stopped=stopped)
        title = f" · {session.title}" if session.title else ""
        self.query_one("#compare-summary").update(
            f"recorded {session.kind} session{title}\n{len(session.lanes)} lanes, metrics as recorded\n"
            "ctrl+g re-runs these lanes on the main screen's prompt (now the session's)")
        if self.session_path is not None:
            self.set_status(("replay stopped · " if stopped else "") + self.session_path.name)


async def _replay(session: Session, speed: float, kept: set[int], put: Callable[[LaneEvent], None]) -> None:
    """Put the kept lanes' recorded events at their times / ``speed``."""
    async with aclosing(areplay(session, speed)) as items:
        async for item in items:
            if item.lane in kept:
                put(LaneEvent(item.lane, item.event))
