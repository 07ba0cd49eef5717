"""llama.cpp's own C++ ``llama-server`` for the tests, built from the pinned sdist's vendored llama.cpp.

``tests/build_llama_server.sh`` builds it once (about 7 minutes on 2 cores) and caches the binary
under ``${XDG_CACHE_HOME:-~/.cache}/playground-tests/llama-server-<version>/``; later runs reuse it.
``PLAYGROUND_LLAMA_SERVER=/path/to/llama-server`` uses that binary instead. The server runs on a free
port of 127.0.0.1 with the embedded model, flash attention on (like the local engine), one thread;
``llama_servers`` starts servers of a test's own (other ``--parallel``, killed and restarted).
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


class LlamaServer:
    """One llama-server process on 127.0.0.1; ``kill()`` and ``start()`` again reuse its port."""

    def __init__(self, binary: Path, model: Path, log_dir: Path, *, parallel: int = 2, threads: int = 1,
                 port: int | None = None) -> None:
        self.binary, self.model, self.log_dir = binary, model, log_dir
        self.parallel, self.threads = parallel, threads
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, ready_s: float = 120.0) -> "LlamaServer":
        """Start it and wait until ``/health`` answers 200 (pytest.fail with its log otherwise)."""
        self.starts += 1
        log = self.log_dir / f"server-{self.port}-{self.starts}.log"
        cmd = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port), "-c", "4096",
               "-t", str(self.threads), "-tb", str(self.threads), "-fa", "on", "--parallel", str(self.parallel)]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"llama-server exited with {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"llama-server not ready after {ready_s:g} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no goodbye on open connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def llamacpp_binary(tmp_path_factory) -> Path:
    return llama_server_binary(tmp_path_factory)


@pytest.fixture
def llama_servers(llamacpp_binary, embedded_path, tmp_path):
    """``llama_servers(parallel=1)``: a started server of this test's own, stopped afterwards."""
    servers: list[LlamaServer] = []

    def start(**kw) -> LlamaServer:
        server = LlamaServer(llamacpp_binary, embedded_path, tmp_path, **kw)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def llamacpp_url(llamacpp_binary, embedded_path, tmp_path_factory):
    """Root URL of a running llama-server (no API key, ``--parallel 2``), stopped after the session."""
    server = LlamaServer(llamacpp_binary, embedded_path, tmp_path_factory.mktemp("llama-server-run"))
    try:
        yield server.start().url
    finally:
        server.stop()
