"""Recording sessions from event streams, replaying them at recorded timing, and the history."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import pytest

from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.events import Alternative, DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.model_file import EMBEDDED_SHA256
from playground.params import GenerationRequest, SamplerParams
from playground.sessions import history
from playground.sessions.record import SessionRecorder, record
from playground.sessions.replay import areplay, replay, timeline
from playground.sessions.schema import Lane, Session, TokenRecord
from playground.sessions.store import load, save
from helpers import CHAT


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def start(seed: int = 5, backend: str = "llama.cpp", **model) -> StartEvent:
    model = {"path": "/x/m.gguf", "name": "m.gguf", "size": 10, "sha256": "ab" * 32, "n_ctx": 512, "n_gpu_layers": 0,
             "n_threads": 2, "llama_cpp_python": "0.3.36", **model}
    params = {**SamplerParams(temperature=0.7).to_dict(), "seed": seed, "max_tokens": 9, "stop": ["\n"], "top_n": 2}
    return StartEvent(model=model, prompt="Hi", prompt_tokens=(1, 2), params=params, backend=backend)


def token(i: int, t: float) -> TokenEvent:
    top = (Alternative(10 + i, f" a{i}", -0.1234567891), Alternative(3, " b", -2.5))
    return TokenEvent(i=i, id=10 + i, text=f" a{i}", logprob=-0.1234567891, p_sampled=0.912345678912, top=top, t=t,
                      n_candidates=7, entropy=0.55)


def synthetic_session(times=(0.1, 0.2, 0.3), offset: float = 0.0) -> Session:
    clock = FakeClock()
    rec = SessionRecorder(clock=clock)
    rec.feed(start(), 0)
    clock.now += offset
    rec.feed(start(seed=6), 1)
    for i, t in enumerate(times):
        rec.feed(token(i, t), 0)
        rec.feed(token(i, t), 1)
    clock.now += times[-1] + 0.05
    rec.feed(DoneEvent("length", len(times), 0.1, 50.0, 10.0, 2, seed=5), 0)
    rec.feed(FailedEvent("Backend", "connection reset", len(times)), 1)
    return rec.session()


# --- recording --------------------------------------------------------------------------------------
def test_recorder_builds_lanes_from_events():
    session = synthetic_session(offset=0.5)
    done, failed = session.lanes
    assert done.receipt.model_name == "m.gguf" and done.receipt.seed == 5 and failed.receipt.seed == 6
    assert done.receipt.prompt_text == "Hi" and done.receipt.prompt_tokens == (1, 2)
    assert done.backend.kind == "local" and done.backend.model_path == "/x/m.gguf"  # not the embedded model
    assert done.sampler.temperature == 0.7 and done.request.stop == ("\n",) and done.request.top_n == 2
    assert done.finish_reason == "length" and done.metrics.decode_tok_s == 10.0 and not done.interrupted
    assert [t.logprob for t in done.tokens] == [-0.123457] * 3  # rounded as the JSON lines round
    assert done.tokens[0].top[1] == Alternative(3, " b", -2.5)
    assert failed.finish_reason == "error" and failed.interrupted and failed.error.message == "connection reset"
    assert len(failed.tokens) == 3  # tokens received before the failure are kept
    assert failed.offset_s == pytest.approx(0.5) and done.offset_s == 0.0
    assert done.metrics.elapsed_s == pytest.approx(0.85)
    assert session.prompt.text == "Hi"


def test_snapshot_of_a_running_lane_is_unfinished():
    rec = SessionRecorder()
    rec.feed(start())
    rec.feed(token(0, 0.1))
    lane = rec.session().lanes[0]
    assert lane.finish_reason is None and len(lane.tokens) == 1 and not rec.finished


def test_declared_request_keeps_random_seed_and_embedded_model_has_no_path():
    request = GenerationRequest("Hi", SamplerParams(seed=-1), add_special=False)
    rec = SessionRecorder()
    rec.lane(0, request=request)
    rec.feed(start(seed=4242, sha256=EMBEDDED_SHA256))
    lane = rec.session().lanes[0]
    assert lane.sampler.seed == -1 and lane.receipt.seed == 4242
    assert lane.request.add_special is False
    assert lane.backend.model_path is None


def test_remote_start_is_recorded_without_secrets():
    ev = start(backend="openai", kind="openai", name="gpt-x", endpoint="vllm", mode="chat",
               base_url="http://user:sk-secret-abcdef123456@127.0.0.1:9/v1?key=sk-secret-abcdef123456",
               api_key="sk-secret-abcdef123456", headers={"Authorization": "Bearer sk-secret-abcdef123456"})
    lane = record([ev]).lanes[0]
    assert lane.backend.kind == "openai" and lane.backend.model == "gpt-x" and lane.backend.endpoint == "chat"
    assert lane.backend.base_url == "http://127.0.0.1:9/v1"
    from playground.sessions.store import dumps

    assert "sk-secret" not in dumps(record([ev]))


# --- replay -----------------------------------------------------------------------------------------
def test_timeline_merges_lanes_at_their_offsets():
    session = synthetic_session(offset=0.5)
    items = timeline(session)
    assert [round(i.at, 6) for i in items if i.lane == 1][:2] == [0.5, 0.6]
    assert all(a.at <= b.at for a, b in zip(items, items[1:]))
    kinds = [type(i.event).__name__ for i in items if i.lane == 0]
    assert kinds == ["StartEvent", "TokenEvent", "TokenEvent", "TokenEvent", "DoneEvent"]
    assert isinstance(items[-1].event, FailedEvent)
    replayed = [i.event for i in items if i.lane == 0 and isinstance(i.event, TokenEvent)]
    assert [(e.id, e.text, e.logprob, e.p_sampled, e.top, e.t) for e in replayed] == [
        (t.id, t.text, t.logprob, t.p_sampled, t.top, t.t) for t in session.lanes[0].tokens
    ]


def test_replay_waits_for_recorded_time_over_speed():
    session = synthetic_session(times=(0.2, 0.4, 1.0))
    clock = FakeClock()
    due = []

    def sleep(seconds: float) -> None:
        clock.now += seconds

    for item in replay(session, speed=4, sleep=sleep, clock=clock):
        due.append((round(clock.now - 100.0, 6), item.at))
    assert all(now == pytest.approx(at / 4) for now, at in due)


@pytest.mark.parametrize("speed, expected", [(4.0, 0.15), (1.0, 0.6), (0.0, 0.0)])
def test_replay_real_timing(speed, expected):
    session = synthetic_session(times=(0.2, 0.4, 0.55))  # ends at 0.6 s (the done event)
    assert max(i.at for i in timeline(session)) == pytest.approx(0.6)
    t0 = time.perf_counter()
    n = sum(1 for _ in replay(session, speed))
    elapsed = time.perf_counter() - t0
    assert n == 10
    assert expected - 0.01 <= elapsed <= expected + 0.25


async def test_async_replay_timing():
    session = synthetic_session(times=(0.2, 0.4, 0.55))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    items = [item async for item in areplay(session, speed=2)]
    assert len(items) == 10
    assert 0.29 <= loop.time() - t0 <= 0.3 + 0.25


def test_bad_speed():
    with pytest.raises(InvalidParameterError):
        list(replay(synthetic_session(), -1))
    with pytest.raises(InvalidParameterError):
        list(replay(synthetic_session(), math.nan))


def test_replay_of_real_run_rebuilds_probabilities_and_distribution(tmp_path):
    """Recorded on the real model with a distribution head: replayed events carry the same numbers."""
    engine = EngineChoice(n_ctx=512, n_threads=1).load(reuse_prefix=False)
    try:
        request = GenerationRequest(CHAT.format("Name a colour."), SamplerParams(temperature=0.9, seed=11),
                                    max_tokens=12, top_n=5, add_special=False)
        live = list(engine.stream(request, dist_size=16))
        n_vocab = engine.model.n_vocab
    finally:
        engine.close()
    rec = SessionRecorder(keep_dist=16)
    rec.lane(0, request=request)
    for event in live:
        rec.feed(event)
    path = save(rec.session(), tmp_path / "s.json")
    session = load(path).session
    assert session.lanes[0].receipt.n_vocab == n_vocab
    live_tokens = [e for e in live if isinstance(e, TokenEvent)]
    replayed = [i.event for i in replay(session, 0) if isinstance(i.event, TokenEvent)]
    assert len(replayed) == len(live_tokens) > 0
    for a, b in zip(live_tokens, replayed):
        assert (a.id, a.text, a.n_candidates) == (b.id, b.text, b.n_candidates)
        assert b.logprob == pytest.approx(a.logprob, abs=1e-6) and b.p_sampled == pytest.approx(a.p_sampled, abs=1e-7)
        assert [x.id for x in a.top] == [x.id for x in b.top]
        assert b.dist is not None and b.dist.n_vocab == n_vocab
        assert b.dist.ids.tolist() == a.dist.ids.tolist()
        assert b.dist.logprobs.tolist() == pytest.approx(a.dist.logprobs.tolist(), abs=1e-6)
        assert b.dist.log_z == pytest.approx(a.dist.log_z, abs=1e-5)
        assert b.dist.tail_mass == pytest.approx(a.dist.tail_mass, abs=1e-5)
    done = [i.event for i in replay(session, 0) if isinstance(i.event, DoneEvent)][0]
    assert done.seed == 11 and done.n_tokens == len(live_tokens)


# --- history ----------------------------------------------------------------------------------------
def test_history_keeps_lists_and_prunes(tmp_path):
    folder = tmp_path / "hist"
    paths = [history.keep(dataclasses.replace(synthetic_session(), title=str(k)), folder, max_files=3) for k in range(5)]
    assert all(p.parent == folder for p in paths)
    kept = history.history_files(folder)
    assert kept == sorted(paths[-3:], reverse=True)  # newest first, the two oldest pruned
    (folder / "notes.txt").write_text("mine")  # other files are never touched nor listed
    (folder / ".20250101-000000-000000-generate-x.json.abc.tmp").write_text("{")
    kept[0].write_text("{ broken")
    entries = history.list_history(folder)
    assert [e.path for e in entries] == kept
    assert entries[0].session is None and "not valid JSON" in entries[0].error
    assert entries[1].session.title == "3" and entries[1].preview == "Hi"
    history.prune(folder, 0)
    assert sorted(p.name for p in folder.iterdir()) == [".20250101-000000-000000-generate-x.json.abc.tmp", "notes.txt"]


def test_history_uses_the_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = history.keep(Session(lanes=(Lane(tokens=(TokenRecord(0, 1, "x"),)),)))
    assert path.parent == tmp_path / "data" / "playground" / "sessions"
    assert history.list_history()[0].session.lanes[0].text == "x"
