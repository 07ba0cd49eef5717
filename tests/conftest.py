"""Shared fixtures: the real embedded model (it loads in well under a second), isolated XDG dirs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from llama_server import server_url  # noqa: F401 - a session fixture shared by three modules

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep config, data and history out of the user's home; the hash cache may be shared."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_shared_cache(tmp_path_factory)))


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "shared-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def engine():
    """One loaded engine for the whole run (tests that need a fresh KV cache make their own)."""
    from playground.engine_options import EngineChoice

    # One thread: llama.cpp workers stall badly when another process competes for a 2-core machine.
    eng = EngineChoice(n_ctx=2048, n_threads=1).load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    from playground.model_file import embedded_model_path

    return embedded_model_path()


def playground_cmd() -> list[str]:
    return [sys.executable, "-m", "playground"]


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env
