"""A real OpenAI-compatible server for the tests: llama-cpp-python's, on the embedded model.

One per test session (it takes a few seconds to start), on a free port of 127.0.0.1, with an API key
and flash attention on, like the local engine. conftest.py exposes ``server_url`` as a fixture.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from fault_server import free_port

KEY = "sk-llama-server-51d0"
ENV = {"PG_LLAMA_KEY": KEY}


@pytest.fixture(scope="session")
def server_url(embedded_path, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--flash_attn", "true", "--api_key", KEY]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


