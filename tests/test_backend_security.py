"""The API key goes to the configured base URL only, and never appears in events, errors, reprs
or logs, even when a server echoes it back."""

from __future__ import annotations

import logging

import pytest

from fault_server import FaultServer, completion_chunk, sse
from helpers import collect
from playground import jsonlines
from playground.backends.endpoints import Endpoint
from playground.backends.factory import remote_backend
from playground.events import FailedEvent
from playground.params import GenerationRequest

KEY = "sk-test-4f1c9a7e0d2b"
PATH = "/v1/completions"


@pytest.fixture
def servers():
    with FaultServer() as main, FaultServer() as other:
        yield main, other


def endpoint(url: str, **kw) -> Endpoint:
    return Endpoint("secure", "openai", url + "/v1", "m", api_key_env="PG_TEST_KEY", read_timeout=2, **kw)


async def run(e: Endpoint, environ: dict[str, str]):
    b = remote_backend(e, environ)
    try:
        return b, [ev async for ev in b.stream(GenerationRequest("Hi", top_n=2))]
    finally:
        await b.aclose()


def assert_no_key(backend, events) -> None:
    texts = [repr(backend), str(backend), repr(vars(backend)), repr(backend.endpoint), str(backend.endpoint.to_dict())]
    texts += [repr(e) for e in events] + [jsonlines.dumps(e) for e in events]
    for text in texts:
        assert KEY not in text


async def test_key_is_sent_to_the_configured_url_only(servers):
    main, _ = servers
    main.route(PATH, lambda c: c.stream(sse([completion_chunk("ok", -0.1, finish="stop")])))
    backend, events = await run(endpoint(main.url), {"PG_TEST_KEY": KEY})
    assert main.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert collect(events)[2].finish_reason == "stop"
    assert_no_key(backend, events)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_to_another_host_is_not_followed(servers, status):
    main, other = servers
    other.route(PATH, lambda c: c.stream(sse([completion_chunk("stolen", -0.1, finish="stop")])))
    main.route(PATH, lambda c: c.raw(status, b"", {"Location": other.url + PATH}))
    backend, events = await run(endpoint(main.url), {"PG_TEST_KEY": KEY})
    end = events[-1]
    assert isinstance(end, FailedEvent) and f"redirected (HTTP {status}) to {other.url}{PATH}" in end.message
    assert other.requests == []  # neither the key nor the prompt reached the other host
    assert_no_key(backend, events)


async def test_a_server_echoing_the_key_is_redacted(servers):
    main, _ = servers
    main.route(PATH, lambda c: c.json(401, {"error": {"message": f"Incorrect API key provided: {KEY}."}}))
    backend, events = await run(endpoint(main.url), {"PG_TEST_KEY": KEY})
    end = events[-1]
    assert isinstance(end, FailedEvent) and "Incorrect API key provided: ***" in end.message
    assert "$PG_TEST_KEY" in end.message
    assert_no_key(backend, events)


async def test_missing_key_is_named_not_guessed(servers):
    main, _ = servers
    main.route(PATH, lambda c: c.json(401, {"detail": "Invalid API key"}))
    _, events = await run(endpoint(main.url), {})
    assert "authorization" not in main.requests[0].headers
    assert "check the key in $PG_TEST_KEY (it is not set)" in events[-1].message


async def test_no_key_in_logs(servers, caplog):
    main, _ = servers
    main.route(PATH, lambda c: c.stream(sse([completion_chunk("ok", -0.1, finish="stop")])))
    with caplog.at_level(logging.DEBUG):
        await run(endpoint(main.url), {"PG_TEST_KEY": KEY})
    assert caplog.records  # httpx/httpcore did log the exchange
    assert all(KEY not in r.getMessage() and KEY not in repr(r.args) for r in caplog.records)
