"""llama.cpp's own C++ ``llama-server`` for the tests, built from the pinned sdist's vendored llama.cpp.

``tests/build_llama_server.sh`` builds it once (about 7 minutes on 2 cores) and caches the binary
under ``${XDG_CACHE_HOME:-~/.cache}/playground-tests/llama-server-<version>/``; later runs reuse it.
``PLAYGROUND_LLAMA_SERVER=/path/to/llama-server`` uses that binary instead. The server runs on a free
port of 127.0.0.1 with the embedded model, flash attention on (like the local engine), one thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from fault_server import free_port

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_llama_server.sh"
BUILD_TIMEOUT_S = 3 * 3600  # a loaded 2-core machine can take far longer than the quiet 7 minutes


def llama_server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cached llama-server, built first if missing; pytest.fail says why a build failed."""
    given = os.environ.get("PLAYGROUND_LLAMA_SERVER")
    if given:
        return Path(given)
    env = dict(os.environ)
    # The autouse fixture points XDG_CACHE_HOME into the test's tmp dir: the binary must outlive it.
    if str(tmp_path_factory.getbasetemp()) in env.get("XDG_CACHE_HOME", ""):
        env.pop("XDG_CACHE_HOME")
    env["PYTHON"] = sys.executable
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cached = cache / "playground-tests" / f"llama-server-{version('llama-cpp-python')}" / "llama-server"
    if not cached.is_file() and os.environ.get("PLAYGROUND_BUILD_LLAMA_SERVER") != "1":
        # The build takes 7 minutes on a quiet 2-core machine and over an hour on a busy one: it is
        # asked for (tests/build_llama_server.sh, or PLAYGROUND_BUILD_LLAMA_SERVER=1), never implied.
        pytest.skip(f"llama-server is not built ({cached}): run tests/build_llama_server.sh "
                    "or set PLAYGROUND_BUILD_LLAMA_SERVER=1")
    log = tmp_path_factory.mktemp("llama-server-build") / "build.log"
    with log.open("w") as err:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), version("llama-cpp-python")], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=env, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"building llama-server failed (exit {proc.returncode}); end of {log}:\n{log.read_text()[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def llamacpp_url(embedded_path, tmp_path_factory):
    """Root URL of a running llama-server (no API key), stopped after the session."""
    binary = llama_server_binary(tmp_path_factory)
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server-run") / "server.log"
    cmd = [str(binary), "-m", str(embedded_path), "--host", "127.0.0.1", "--port", str(port), "-c", "4096",
           "-t", "1", "-tb", "1", "-fa", "on", "--parallel", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama-server not ready after 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
