"""Every example session in ``sessions/`` opens, replays and reproduces on the embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.compare.extract import last_number
from playground.events import DoneEvent, StartEvent, TokenEvent
from playground.locations import example_sessions_dir
from playground.sessions.check import check_session
from playground.sessions.replay import replay
from playground.sessions.store import load
from playground.sessions.summary import session_summary

EXAMPLES = sorted(example_sessions_dir().glob("*.json"))


def test_the_examples_are_there():
    kinds = {load(path).session.kind for path in EXAMPLES}
    assert len(EXAMPLES) >= 3 and kinds >= {"generate", "compare", "vote"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_opens_replays_and_checks(path: Path):
    loaded = load(path)
    session = loaded.session
    assert not loaded.upgraded and session.lanes
    assert session_summary(session)
    items = list(replay(session, 0))
    for k, lane in enumerate(session.lanes):
        events = [i.event for i in items if i.lane == k]
        assert isinstance(events[0], StartEvent) and isinstance(events[-1], DoneEvent)
        tokens = [e for e in events if isinstance(e, TokenEvent)]
        assert [t.id for t in tokens] == [t.id for t in lane.tokens]
        assert all(t.logprob is not None and t.dist is not None for t in tokens)  # inspector and distribution view
        assert lane.receipt.prompt_tokens and lane.receipt.model_sha256 and lane.receipt.seed is not None
    report = check_session(session)
    assert report.exit_code == 0, report


def test_vote_example_is_consistent():
    (path,) = [p for p in EXAMPLES if load(p).session.kind == "vote"]
    session = load(path).session
    vote = session.vote
    assert vote is not None and vote.extractor == "last_number"
    assert list(vote.answers) == [last_number(lane.text) for lane in session.lanes]  # re-extracted independently
    counts = {a: vote.answers.count(a) for a in vote.answers if a is not None}
    assert counts[vote.majority] == max(counts.values())
    assert vote.agreement == pytest.approx(counts[vote.majority] / len(session.lanes), abs=1e-6)
