"""``playground generate`` with a remote backend, end to end (the server is the local fault server)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import playground_cmd, subprocess_env
from fault_server import FaultServer, completion_chunk, free_port, sse

KEY = "sk-cli-0c7d1e2f"


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


def run_cli(args, tmp_path, **env):
    environ = {k: v for k, v in subprocess_env(tmp_path).items() if not k.startswith("OPENAI_")}
    return subprocess.run(playground_cmd() + ["generate", *args], capture_output=True, text=True, timeout=60, env={**environ, **env})


def test_json_lines_from_a_remote_server(srv, tmp_path):
    stream = [completion_chunk("Paris", -0.25, {"Paris": -0.25, "Lyon": -2.0}), completion_chunk(".", -0.5), completion_chunk("", finish="stop")]
    srv.route("/v1/completions", lambda c: c.stream(sse(stream)))
    proc = run_cli(["--base-url", srv.url + "/v1", "--model-name", "smol", "--json", "--temp", "0", "--top-n", "2",
                    "The capital of France is"], tmp_path, OPENAI_API_KEY=KEY)
    assert proc.returncode == 0, proc.stderr
    start, *tokens, done = [json.loads(line) for line in proc.stdout.splitlines()]
    assert start["event"] == "start" and start["backend"] == "openai" and start["model"]["name"] == "smol"
    assert [(t["text"], t["logprob"], t["p_sampled"], t["id"]) for t in tokens] == [("Paris", -0.25, None, -1), (".", -0.5, None, -1)]
    assert tokens[0]["top"] == [{"id": -1, "text": "Paris", "logprob": -0.25}, {"id": -1, "text": "Lyon", "logprob": -2.0}]
    assert done["event"] == "done" and done["finish_reason"] == "stop" and done["n_tokens"] == 2
    assert srv.requests[0].headers["authorization"] == f"Bearer {KEY}" and srv.requests[0].body["temperature"] == 0.0
    assert KEY not in proc.stdout + proc.stderr


def test_a_failed_remote_run_exits_1_with_one_line(tmp_path):
    port = free_port()
    proc = run_cli(["--base-url", f"http://127.0.0.1:{port}/v1", "--api-model", "m", "hi"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "could not connect" in lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--backend", "nowhere", "hi"], "no backend named 'nowhere'"),
        (["--api-model", "m", "hi"], "needs --base-url"),
        (["--base-url", "http://127.0.0.1:9/v1", "-m", "x.gguf", "--api-model", "m", "hi"], "not both"),
        (["--base-url", "http://127.0.0.1:9/v1", "--api-model", "m", "--api-extra", "typical_p", "hi"], "unknown extra_params"),
    ],
)
def test_bad_remote_options_one_line_exit_2(tmp_path, args, needle):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
