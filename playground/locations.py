"""Every path the playground reads or writes, in one place (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "playground"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def config_dir() -> Path:
    """Where config.toml and user themes live."""
    return _xdg("XDG_CONFIG_HOME", ".config") / APP_NAME


def config_file() -> Path:
    return config_dir() / "config.toml"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / APP_NAME


def history_dir() -> Path:
    """Where every finished run is kept automatically."""
    return data_dir() / "sessions"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / APP_NAME


def project_root() -> Path:
    """The checkout (or install prefix) that holds ``themes/`` and ``sessions/``."""
    return Path(__file__).resolve().parent.parent


def builtin_themes_dir() -> Path:
    return project_root() / "themes"


def example_sessions_dir() -> Path:
    return project_root() / "sessions"
