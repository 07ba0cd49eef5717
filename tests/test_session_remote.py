"""Remote lanes in sessions: recorded as data with the key's variable name only, never its value."""

from __future__ import annotations

import json
import subprocess

from conftest import playground_cmd, subprocess_env
from fault_server import FaultServer, completion_chunk, sse
from playground.sessions.store import load

KEY = "sk-test-5e2d8b7a6c1f"
PATH = "/v1/completions"


def generate(tmp_path, url: str, save_to) -> subprocess.CompletedProcess:
    env = {**subprocess_env(tmp_path), "PG_SESSION_KEY": KEY}
    args = ["generate", "--base-url", url + "/v1", "--api-model", "m", "--api-key-env", "PG_SESSION_KEY",
            "--top-n", "2", "--save", str(save_to), "Hi"]
    return subprocess.run(playground_cmd() + args, capture_output=True, text=True, timeout=60, env=env)


def test_remote_run_is_saved_without_the_key(tmp_path):
    chunks = [completion_chunk(" a", -0.25, {" a": -0.25, " b": -1.5}), completion_chunk(" c", -0.5, finish="stop")]
    with FaultServer() as server:
        server.route(PATH, lambda c: c.stream(sse(chunks)))
        proc = generate(tmp_path, server.url, tmp_path / "remote.json")
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # the key was really used
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "remote.json").read_text()
    assert KEY not in text and "PG_SESSION_KEY" in text
    lane = load(tmp_path / "remote.json").session.lanes[0]
    assert (lane.backend.kind, lane.backend.model, lane.backend.api_key_env) == ("openai", "m", "PG_SESSION_KEY")
    assert lane.backend.base_url == server.url + "/v1" and lane.backend.model_path is None
    assert lane.text == " a c" and lane.tokens[0].logprob == -0.25 and lane.finish_reason == "stop"
    assert [alt.text for alt in lane.tokens[0].top] == [" a", " b"]
    history = list((tmp_path / "data" / "playground" / "sessions").glob("*.json"))
    assert len(history) == 1 and KEY not in history[0].read_text()
    check = subprocess.run(playground_cmd() + ["replay", str(tmp_path / "remote.json"), "--check", "--json"],
                           capture_output=True, text=True, timeout=60, env=subprocess_env(tmp_path))
    assert check.returncode == 2 and "remote" in json.loads(check.stdout)["lanes"][0]["reason"]


def test_cut_stream_is_kept_as_interrupted_and_an_echoed_key_is_not_saved(tmp_path):
    chunks = [completion_chunk(" a", -0.25), completion_chunk(" b", -0.75)]
    with FaultServer() as server:
        server.route(PATH, lambda c: c.stream(sse(chunks, done=False), cut=True))
        proc = generate(tmp_path, server.url, tmp_path / "cut.json")
    assert proc.returncode == 1
    lane = load(tmp_path / "cut.json").session.lanes[0]
    assert lane.interrupted and lane.finish_reason == "error" and lane.error is not None
    assert lane.text == " a b"  # what arrived before the cut is kept
    with FaultServer() as server:
        server.route(PATH, lambda c: c.json(401, {"error": {"message": f"Incorrect API key provided: {KEY}."}}))
        proc = generate(tmp_path, server.url, tmp_path / "echo.json")
    assert proc.returncode == 1
    text = (tmp_path / "echo.json").read_text()
    assert KEY not in text and "401" in text
