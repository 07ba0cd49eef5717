"""The one run job: a single lane, batched lanes and a remote lane, against independent runs."""

from __future__ import annotations

import threading

import pytest

from fault_server import FaultServer, completion_chunk, sse
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.compare.events import BatchDone, LaneEvent
from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.engine_options import EngineChoice
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

PROMPT = "The three primary colours are"
CHOICE = EngineChoice(n_ctx=1024, n_threads=1)


def request(**sampler) -> GenerationRequest:
    return GenerationRequest(PROMPT, SamplerParams(**sampler), max_tokens=12, top_n=3)


def lane_events(items, lane: int):
    return [item.event for item in items if isinstance(item, LaneEvent) and item.lane == lane]


def signature(tokens):
    return [(t.id, t.text, t.logprob, t.p_sampled, [(a.id, a.logprob) for a in t.top]) for t in tokens]


@pytest.fixture
def pool():
    p = EnginePool(CHOICE)
    yield p
    p.close()


def test_one_lane_is_exactly_a_single_run(pool, engine):
    req = request(temperature=0.7, seed=11)
    items = list(RunJob([LanePlan(req)], pool).stream())
    _, job_tokens, job_end = collect(lane_events(items, 0))
    # independent: the engine's own loop on a separately loaded model
    _, ref_tokens, ref_end = collect(engine.stream(req))
    assert signature(job_tokens) == signature(ref_tokens)
    assert isinstance(job_end, DoneEvent) and job_end.finish_reason == ref_end.finish_reason
    (batch,) = [i for i in items if isinstance(i, BatchDone)]
    assert batch.n_lanes == 1 and batch.n_tokens == len(job_tokens)


def test_lanes_of_a_job_equal_their_single_runs(pool, engine):
    reqs = [request(temperature=0.0), request(temperature=1.0, seed=3), request(temperature=0.9, top_k=5, seed=8)]
    job = RunJob([LanePlan(r) for r in reqs], pool, diverge=True)
    items = list(job.stream())
    for k, req in enumerate(reqs):
        _, ref_tokens, _ = collect(engine.stream(req))
        assert [t.id for t in job.transcripts[k].tokens] == [t.id for t in ref_tokens]
        assert job.transcripts[k].text == "".join(t.text for t in ref_tokens)
    assert sum(isinstance(i, BatchDone) for i in items) == 1


def test_a_job_mixes_a_local_and_a_remote_lane(pool):
    with FaultServer() as server:
        chunks = [completion_chunk(" red", -0.3), completion_chunk(",", -0.1), completion_chunk("", finish="stop")]
        server.route("/v1/completions", lambda c: c.stream(sse(chunks)))
        remote = LaneTarget(Endpoint("srv", "openai", server.url + "/v1", "m"))
        job = RunJob([LanePlan(request(temperature=0.0)), LanePlan(request(temperature=0.0), remote)], pool,
                     environ={})
        list(job.stream())
    assert job.transcripts[1].text == " red,"
    assert [t.logprob for t in job.transcripts[1].tokens] == [-0.3, -0.1]
    assert job.transcripts[0].tokens and isinstance(job.transcripts[0].end, DoneEvent)


def test_cancel_ends_every_lane_between_tokens(pool):
    job = RunJob([LanePlan(request(temperature=1.0, seed=s)) for s in (1, 2)], pool)
    seen = 0
    for item in job.stream():
        if isinstance(item, LaneEvent) and isinstance(item.event, TokenEvent):
            seen += 1
            if seen == 2:
                job.cancel()
    ends = [t.end for t in job.transcripts]
    assert all(isinstance(e, DoneEvent) and e.finish_reason == "cancelled" for e in ends)
    assert all(len(t.tokens) < 12 for t in job.transcripts)


def test_a_lane_that_breaks_keeps_its_tokens(pool):
    """A fault no real component gives on demand: the source raises a bug after some tokens."""
    job = RunJob([LanePlan(request(temperature=0.0)), LanePlan(request(temperature=1.0, seed=4))], pool)
    job.prepare()
    backend = job.local_backend()
    real = backend.stream_lanes

    def breaking(requests, cancel: threading.Event | None = None, *, dist_size: int = 0):
        for n, item in enumerate(real(requests, cancel, dist_size=dist_size)):
            if n == 6:
                raise TypeError("a bug")
            yield item

    backend.stream_lanes = breaking  # type: ignore[method-assign]
    list(job.stream())
    for transcript in job.transcripts:
        assert isinstance(transcript.end, FailedEvent) and "a bug" in transcript.end.message
        assert transcript.end.n_tokens == len(transcript.tokens)
    assert sum(len(t.tokens) for t in job.transcripts) > 0
