"""The TUI on a remote backend: a real llama-cpp-python server, and a fault-injecting one.

The real server serves the embedded model; its greedy tokens and log-probabilities are compared
with the local engine's (see ``test_backend_llama_server.LOGPROB_TOL``). The fault server gives a
stream cut mid-way and a slow stream to cancel, which a healthy server cannot be made to do.
"""

from __future__ import annotations

import math

import pytest

from fault_server import FaultServer, completion_chunk, sse
from helpers import collect
from playground.backends.endpoints import Endpoint
from playground.config import Config
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import PromptSpec
from playground.sessions import history
from playground.sessions.store import load
from playground.ui.app import make_app
from playground.ui.settings import AppSettings
from playground.ui.text_cells import percent, token_label
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.inspector import NOT_AVAILABLE, TokenInspector
from llama_server import KEY
from test_backend_llama_server import LOGPROB_TOL, endpoint
from tests.ui_harness import one_thread_engine, until

SIZE = (160, 48)
GREEDY = SamplerParams(temperature=0.0, repeat_penalty=1.0)  # the server's default penalty is 1.1
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


def settings(tmp_path, endpoint_: Endpoint, **kw) -> AppSettings:
    base = dict(endpoint=endpoint_, sampler=GREEDY, max_tokens=8, top_n=5,
                prompt=PromptSpec(mode="freeform", text=PROMPT), config=Config(history_dir=tmp_path / "history"))
    return AppSettings(**{**base, **kw})




async def run_once(pilot, screen) -> None:
    await until(pilot, lambda: pilot.app.remote is not None, what="the backend")
    await pilot.press("ctrl+g")
    await until(pilot, lambda: not screen.running and screen.record.finished, what="the run")


def marks(view: CompletionView) -> list[str]:
    return [c.text.strip() for row in view.layout.rows for c in row if c.index < 0]


@pytest.mark.slow
async def test_remote_run_shows_the_servers_tokens_and_logprobs_and_says_what_it_lacks(
        server_url, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("PG_LLAMA_KEY", KEY)
    app = make_app(settings(tmp_path, endpoint(server_url)))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await run_once(pilot, screen)
        assert app.engine is None  # no local model was loaded for a remote run
        record = screen.record
        assert record.done is not None and record.done.finish_reason in ("length", "stop"), record.failed
        _, local, _ = collect(engine.stream(GenerationRequest(PROMPT, GREEDY, max_tokens=8, top_n=5)))
        assert [t.text for t in record.tokens] == [t.text for t in local]
        for remote, mine in zip(record.tokens, local):
            assert remote.logprob == pytest.approx(mine.logprob, abs=LOGPROB_TOL)
        view = screen.query_one(CompletionView)
        assert [view.text_of(i) for i in range(view.token_count)] == [t.text for t in local]
        assert "llama-server" in str(screen.query_one("#status").render())
        # the inspector: the server's probability, "not available" for what it does not give
        screen._inspect(1)
        token = record.tokens[1]
        text = str(screen.query_one(TokenInspector).render())
        assert percent(math.exp(token.logprob)) in text
        lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
        assert NOT_AVAILABLE in lines["sampled"] and NOT_AVAILABLE in lines["entropy"]
        assert NOT_AVAILABLE in lines["survivors"] and "at most 5 from this backend" in text
        (chosen,) = [line for line in text.splitlines() if line.startswith("▶")]  # no ids: matched by text
        assert chosen[1:].startswith(token_label(token.text)[:5])
        assert "rank 1" in text  # greedy: the top alternative
        assert NOT_AVAILABLE in str(screen.query_one(DistributionView).render())
        assert "tokens: not available from this backend" in str(screen.query_one("#prompt-count").render())
        await until(pilot, lambda: screen.last_kept is not None, what="the history")
    # kept in the history as a remote lane: the key's variable name, never the key
    text = screen.last_kept.read_text()
    lane = load(screen.last_kept).session.lanes[0]
    assert lane.backend.kind == "openai" and lane.backend.api_key_env == "PG_LLAMA_KEY" and KEY not in text
    assert [t.text for t in lane.tokens] == [t.text for t in local]
    assert all(t.p_sampled is None and t.dist is None for t in lane.tokens)


TOKENS = [("Hello", -0.25, {"Hello": -0.25, "Hi": -1.75}), (" there", -0.5, {" there": -0.5, " you": -1.0}),
          (",", -1.5, {",": -1.5, "!": -1.6})]


def fault_endpoint(url: str) -> Endpoint:
    return Endpoint("fault", "openai", url + "/v1", "m", read_timeout=5.0, connect_timeout=2.0)


async def test_a_stream_cut_mid_way_keeps_the_tokens_marked_interrupted(tmp_path):
    with FaultServer() as srv:
        srv.route("/v1/completions", lambda c: c.stream(sse([completion_chunk(*t) for t in TOKENS], done=False), cut=True))
        app = make_app(settings(tmp_path, fault_endpoint(srv.url)))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await run_once(pilot, screen)
            record = screen.record
            assert record.failed is not None and [t.text for t in record.tokens] == [t[0] for t in TOKENS]
            assert [t.logprob for t in record.tokens] == [t[1] for t in TOKENS]
            view = screen.query_one(CompletionView)
            assert view.token_count == 3 and "[interrupted: Backend]" in " ".join(marks(view))
            assert "failed after 3 tokens" in str(view.border_subtitle)
            (error,) = [n for n in app._notifications if n.severity == "error"]
            assert error.title == "Backend"
            assert error.message.startswith(f"fault ({srv.url}/v1)") and "cut after 3 tokens" in error.message
            # settings this endpoint does not take are named, not silently dropped
            assert "not sent to this backend: top-k, min-p, repeat pen." in str(screen.query_one("#unsent").render())
            await until(pilot, lambda: screen.last_kept is not None, what="the history")
    lane = load(screen.last_kept).session.lanes[0]
    assert lane.interrupted and lane.finish_reason == "error" and len(lane.tokens) == 3
    assert "cut after 3 tokens" in lane.error.message
    assert history.history_files(tmp_path / "history") == [screen.last_kept]


async def test_escape_closes_the_connection_and_keeps_what_arrived(tmp_path):
    slow = [completion_chunk(f" w{i}", -0.1) for i in range(400)]
    with FaultServer() as srv:
        srv.route("/v1/completions", lambda c: c.stream(sse(slow), delay=0.05))
        app = make_app(settings(tmp_path, fault_endpoint(srv.url), max_tokens=400))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await until(pilot, lambda: app.remote is not None, what="the backend")
            await pilot.press("ctrl+g")
            await until(pilot, lambda: len(screen.record.tokens) >= 3, what="three tokens")
            await pilot.press("escape")
            await until(pilot, lambda: screen.record.finished, timeout=5.0, what="the cancel")
            assert screen.record.done.finish_reason == "cancelled" and 3 <= len(screen.record.tokens) < 100
            assert "[cancelled]" in marks(screen.query_one(CompletionView))
            assert srv.disconnected.wait(5.0), "the server never saw the connection close"
            assert not [n for n in app._notifications if n.severity == "error"]
