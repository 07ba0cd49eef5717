"""``max_concurrency``: a comparison's remote lanes on one endpoint send at most that many requests
at once, over one client whose connections are reused (fault server: it counts what is in flight)."""

from __future__ import annotations

import threading
import time

import pytest

from fault_server import FaultServer, completion_chunk, sse
from playground.backends.endpoints import Endpoint, endpoint_from_mapping
from playground.compare.events import LaneEvent
from playground.compare.mixed import LaneTarget, MixedRunner
from playground.errors import ConfigError
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

REQ = GenerationRequest("Hi", SamplerParams(temperature=0.0), max_tokens=4, top_n=1)


class InFlight:
    """A script that streams a few slow tokens and records how many requests overlapped."""

    def __init__(self, chunks: list[str], delay: float = 0.05) -> None:
        self.chunks, self.delay = chunks, delay
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __call__(self, call) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            call.stream(self._paced(call))
        finally:
            with self.lock:
                self.now -= 1

    def _paced(self, call):
        """The chunks with a pause before each but the first (none after the last: the response
        is over when the client has read it, and its connection can serve the next request)."""
        for k, chunk in enumerate(self.chunks):
            if k and call.released.wait(self.delay):
                return
            if k == len(self.chunks) - 1:
                with self.lock:
                    self.now -= 1  # the last chunk: the client may start its next request now
            yield chunk
        with self.lock:
            self.now += 1  # balanced by the finally above


OPENAI_CHUNKS = sse([completion_chunk(t, -0.1) for t in ("a", "b", "c")] + [completion_chunk("", finish="length")])


def run_lanes(targets: list[LaneTarget], n: int | None = None) -> dict[int, list]:
    runner = MixedRunner(targets, {}, "", {})
    events: dict[int, list] = {}
    for item in runner.stream([REQ] * (n or len(targets))):
        assert isinstance(item, LaneEvent)
        events.setdefault(item.lane, []).append(item.event)
    return events


def openai(url: str, **kw) -> Endpoint:
    return Endpoint("srv", "openai", url + "/v1", "m", read_timeout=5.0, **kw)


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_lanes_on_one_endpoint_overlap_up_to_the_limit_and_reuse_connections(limit):
    script = InFlight(OPENAI_CHUNKS)
    with FaultServer() as srv:
        srv.route("/v1/completions", script)
        events = run_lanes([LaneTarget(openai(srv.url, max_concurrency=limit))] * 6)
        clients = {r.client for r in srv.requests}
    assert sorted(events) == list(range(6))
    for lane in events.values():
        assert isinstance(lane[-1], DoneEvent), lane[-1]
        assert "".join(e.text for e in lane if isinstance(e, TokenEvent)) == "abc"
    assert script.most == limit  # as many as allowed at once, never more
    assert len(srv.requests) == 6 and len(clients) <= limit  # kept-alive connections serve the next lanes


def test_a_llamacpp_lane_with_raw_logprobs_counts_as_two_requests():
    chunks = sse([{"content": t, "tokens": [i], "stop": False} for i, t in enumerate("ab")]
                 + [{"content": "", "stop": True, "stop_type": "limit"}], done=False)
    script = InFlight(chunks)
    with FaultServer() as srv:
        srv.route("/completion", script)
        endpoint = Endpoint("ls", "llamacpp", srv.url, "llama-server", read_timeout=5.0, max_concurrency=4)
        events = run_lanes([LaneTarget(endpoint)] * 4)
        clients = {r.client for r in srv.requests}
    assert all(isinstance(lane[-1], DoneEvent) for lane in events.values()), events
    assert len(srv.requests) == 8 and script.most == 4  # two lanes at a time, two requests each
    assert len(clients) <= 4  # both requests' connections serve the next lane


def test_each_endpoint_has_its_own_limit():
    a, b = InFlight(OPENAI_CHUNKS), InFlight(OPENAI_CHUNKS)
    with FaultServer() as sa, FaultServer() as sb:
        sa.route("/v1/completions", a)
        sb.route("/v1/completions", b)
        ea = openai(sa.url, max_concurrency=1)
        eb = Endpoint("other", "openai", sb.url + "/v1", "m", read_timeout=5.0, max_concurrency=2)
        events = run_lanes([LaneTarget(ea), LaneTarget(eb)] * 3)
    assert all(isinstance(lane[-1], DoneEvent) for lane in events.values())
    assert (a.most, b.most) == (1, 2)


def test_concurrent_lanes_take_about_a_slot_share_of_the_time():
    # 4 lanes of ~0.4 s each: one at a time ~1.6 s, four at a time ~0.4 s.
    chunks = sse([completion_chunk(t, -0.1) for t in "abcdefg"] + [completion_chunk("", finish="length")])
    walls = {}
    with FaultServer() as srv:
        srv.route("/v1/completions", InFlight(chunks, delay=0.05))
        for limit in (1, 4):
            t0 = time.perf_counter()
            events = run_lanes([LaneTarget(openai(srv.url, max_concurrency=limit))] * 4)
            walls[limit] = time.perf_counter() - t0
            assert all(isinstance(lane[-1], DoneEvent) for lane in events.values())
    assert walls[4] < 0.6 * walls[1], walls


def test_a_lane_that_fails_frees_its_slot():
    def script(call):
        if call.n == 0:
            call.json(500, {"error": "boom"})
        else:
            call.stream(OPENAI_CHUNKS)

    with FaultServer() as srv:
        srv.route("/v1/completions", script)
        events = run_lanes([LaneTarget(openai(srv.url, max_concurrency=1))] * 3)
    ends = [events[k][-1] for k in range(3)]
    assert isinstance(ends[0], FailedEvent) and "HTTP 500" in ends[0].message
    assert all(isinstance(e, DoneEvent) for e in ends[1:])


def test_max_concurrency_default_and_validation():
    assert endpoint_from_mapping("box", {"model": "m"}).max_concurrency == 4
    assert endpoint_from_mapping("box", {"model": "m", "max_concurrency": 16}).max_concurrency == 16
    assert endpoint_from_mapping("box", {"model": "m", "max_concurrency": 16}).to_dict()["max_concurrency"] == 16
    for bad in (0, 65, 1.5, True, "4"):
        with pytest.raises(ConfigError, match="max_concurrency must be a whole number from 1 to 64"):
            endpoint_from_mapping("box", {"model": "m", "max_concurrency": bad})
