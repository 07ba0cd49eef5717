"""What the real llama-server does under load and when it dies, and how a run reports it.

- Busy (``--parallel 1``, two requests at once): llama-server sends no 503 and no Retry-After; it
  queues the second request until a slot is free and then serves it (a 503, without Retry-After,
  comes only while it is still loading the model). So a busy server costs time, not a failure: a
  second lane starts streaming when the first has ended, and a llamacpp lane's own second request
  (raw log-probabilities) waits for its first without stalling it.
- Killed mid-stream (SIGKILL, as a crash or an OOM kill) and restarted on the same port: the
  tokens already received are kept, the run ends with one failure that says how many tokens came
  (recorded in the session as interrupted), and the next run on the same client works.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from conftest import playground_cmd, subprocess_env
from helpers import collect
from llama_server_cpp import llama_servers, llamacpp_binary  # noqa: F401 - fixtures
from playground.backends.endpoints import Endpoint
from playground.backends.factory import remote_backend
from playground.compare.events import LaneEvent
from playground.compare.mixed import LaneTarget, MixedRunner
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

pytestmark = pytest.mark.slow
PROMPT = "Once upon a time, in a land far away,"
SAMPLED = SamplerParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.0, repeat_penalty=1.0, seed=7)


def native(url: str, **kw) -> Endpoint:
    return Endpoint("ls", "llamacpp", url, "llama-server", read_timeout=120, **kw)


def test_a_busy_server_queues_the_second_request_instead_of_a_503(llama_servers):
    server = llama_servers(parallel=1)
    request = GenerationRequest(PROMPT, SAMPLED, max_tokens=24, top_n=1)
    order: list[int] = []
    ends: dict[int, object] = {}
    for item in MixedRunner([LaneTarget(native(server.url, raw_logprobs=False, max_concurrency=2))] * 2, {}, "", {}).stream(
            [request, request]):
        assert isinstance(item, LaneEvent)
        if isinstance(item.event, TokenEvent):
            order.append(item.lane)
        elif isinstance(item.event, (DoneEvent, FailedEvent)):
            ends[item.lane] = item.event
    assert all(isinstance(e, DoneEvent) for e in ends.values()), ends
    assert order.count(0) >= 12 and order.count(1) >= 12
    # one slot: one lane's tokens all came before the other's first (queued, not interleaved)
    first = order[0]
    assert order == [first] * order.count(first) + [1 - first] * order.count(1 - first), order


async def test_the_raw_second_request_waits_for_the_only_slot_without_stalling(llama_servers, engine):
    server = llama_servers(parallel=1)
    request = GenerationRequest(PROMPT, SAMPLED, max_tokens=16, top_n=3)
    backend = remote_backend(native(server.url), {})
    try:
        _, tokens, done = collect([e async for e in backend.stream(request)])
    finally:
        await backend.aclose()
    _, local, _ = collect(engine.stream(request))
    assert isinstance(done, DoneEvent), done
    assert [t.id for t in tokens] == [t.id for t in local]
    assert all(t.p_sampled is not None and t.logprob is not None for t in tokens)  # both requests joined


@pytest.mark.parametrize("kind", ["llamacpp", "openai"])
async def test_a_server_killed_mid_stream_keeps_the_tokens_and_says_so_once(llama_servers, kind):
    server = llama_servers(parallel=1)
    endpoint = native(server.url) if kind == "llamacpp" else Endpoint("ls", "openai", server.url + "/v1", "m", read_timeout=120)
    request = GenerationRequest(PROMPT, SAMPLED, max_tokens=400, top_n=2)
    backend = remote_backend(endpoint, {})
    events = []
    try:
        async for event in backend.stream(request):
            events.append(event)
            if sum(isinstance(e, TokenEvent) for e in events) == 5:
                server.kill()
        _, tokens, end = collect(events)
        assert isinstance(end, FailedEvent), end
        assert sum(isinstance(e, FailedEvent) for e in events) == 1 and events[-1] is end
        assert 5 <= len(tokens) < 400 and end.n_tokens == len(tokens)
        assert f"after {len(tokens)} tokens" in end.message and "\n" not in end.message
        assert ("connection was cut" in end.message or "connection was lost" in end.message
                or "ended before the server said it was done" in end.message), end.message
        # restarted on the same port: the same backend (its pool held the dead connection) works
        server.start()
        _, again, done = collect([e async for e in backend.stream(GenerationRequest(PROMPT, SAMPLED, max_tokens=8, top_n=2))])
        assert isinstance(done, DoneEvent), done
        n = min(len(tokens), len(again))
        assert n >= 5 and [t.text for t in again[:n]] == [t.text for t in tokens[:n]]  # same seed, same start
    finally:
        await backend.aclose()


def test_a_killed_server_leaves_an_interrupted_session_from_the_cli(llama_servers, tmp_path):
    server = llama_servers(parallel=1)
    saved = tmp_path / "run.json"
    cmd = playground_cmd() + ["generate", PROMPT, "--api-kind", "llamacpp", "--base-url", server.url, "--json",
                              "--save", str(saved), "-n", "400", "--temp", "1", "--seed", "7", "--no-history"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(tmp_path))
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(json.loads(line))
            if sum(e.get("event") == "token" for e in lines) == 5:
                server.kill()
        rc = proc.wait(60)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 1, stderr
    types = [e.get("event") for e in lines]
    assert types.count("failed") == 1 and types[-1] == "failed", types
    n = types.count("token")
    assert n >= 5 and lines[-1]["n_tokens"] == n
    lane = json.loads(saved.read_text())["lanes"][0]
    assert lane["interrupted"] is True and lane["finish_reason"] == "error"
    assert len(lane["tokens"]) == n and f"after {n} tokens" in lane["error"]["message"]


def test_busy_health_and_a_queued_request_are_not_503(llama_servers):
    """The wire-level facts the module docstring states, read directly."""
    server = llama_servers(parallel=1)
    body = {"prompt": PROMPT, "n_predict": 48, "temperature": 1.0, "seed": 1, "stream": True}
    with httpx.Client(timeout=120) as a, httpx.Client(timeout=120) as b:
        with a.stream("POST", server.url + "/completion", json=body) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped iterator would close the response (a cancel)
            next(lines)  # the first is generating now
            health = b.get(server.url + "/health")
            t0 = time.monotonic()
            second = b.post(server.url + "/completion", json={**body, "stream": False, "n_predict": 4})
            waited = time.monotonic() - t0
            rest = [line for line in lines if line.startswith("data: ")]
    assert health.status_code == 200
    assert second.status_code == 200 and "retry-after" not in second.headers
    assert second.json()["tokens_predicted"] == 4
    assert json.loads(rest[-1][len("data: "):])["tokens_predicted"] == 48  # the first was served in full,
    assert waited > 0.2  # before the second, which waited for the slot
