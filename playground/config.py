"""The user's settings: one TOML file under ``locations.config_file()``, read into typed dataclasses.

Example ``config.toml``::

    theme = "playground-light"

    [model]
    path = "~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf"
    ctx_size = 8192

    [sampler]
    temperature = 0.7
    top_k = 0
    max_tokens = 512

    [keymap]            # binding id -> keys (comma separated)
    generate = "ctrl+g,f5"

A broken file or a bad value is reported (``load_config`` returns the errors) and the defaults are
used for what could not be read, so the app always starts.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground import locations
from playground.errors import ConfigError, PlaygroundError
from playground.params import SamplerParams
from playground.themes import DEFAULT_THEME


@dataclass(frozen=True)
class ModelConfig:
    """Which local model to open by default (the ``-m/-c/-ngl/-t`` options override it)."""

    path: str | None = None
    """GGUF file; None = the embedded SmolLM2-135M-Instruct."""
    ctx_size: int = 4096
    """Context window in tokens."""
    gpu_layers: int | None = None
    """Layers to offload; None = all when the build supports a GPU."""
    threads: int | None = None
    """CPU threads; None = all cores."""


@dataclass(frozen=True)
class GenerationConfig:
    """Defaults of a run that are not sampler settings."""

    max_tokens: int = 256
    """Maximum new tokens per run."""
    top_n: int = 10
    """Alternatives reported per token."""
    dist_size: int = 512
    """Head of the raw distribution kept per token for the live sampler view."""


@dataclass(frozen=True)
class Config:
    """All settings."""

    theme: str = DEFAULT_THEME
    """Theme name (built-in, user theme, or one of Textual's)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Default model."""
    sampler: SamplerParams = field(default_factory=SamplerParams)
    """Default sampler settings."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Default limits of a run."""
    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> keys, e.g. ``{"generate": "ctrl+g,f5"}``; see the app's BINDINGS for ids."""
    history_dir: Path = field(default_factory=locations.history_dir)
    """Where finished runs are kept."""


def _accepts(annotation: str, value: Any) -> bool:
    """Whether a TOML value fits a field annotated ``annotation`` (e.g. "int | None")."""
    for name in (part.strip() for part in annotation.split("|")):
        if name == "bool" and isinstance(value, bool):
            return True
        if name in ("int", "float") and isinstance(value, int) and not isinstance(value, bool):
            return True
        if name == "float" and isinstance(value, float):
            return True
        if name == "str" and isinstance(value, str):
            return True
    return False


def _typed(section: str, cls: type, data: Any, errors: list[ConfigError], aliases: dict[str, str] | None = None):
    """Build ``cls`` from a TOML table, keeping defaults for bad or unknown keys (reported)."""
    if not isinstance(data, dict):
        errors.append(ConfigError(f"[{section}] must be a table"))
        return cls()
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    good: dict[str, Any] = {}
    for key, value in data.items():
        name = (aliases or {}).get(key, key)
        if name not in fields:
            errors.append(ConfigError(f"[{section}] unknown key '{key}'"))
        elif not _accepts(fields[name], value):
            errors.append(ConfigError(f"[{section}] '{key}' should be {fields[name]}, not {value!r}"))
        else:
            good[name] = float(value) if fields[name] == "float" else value
    try:
        built = cls(**good)
        if hasattr(built, "validate"):
            built.validate()
        return built
    except PlaygroundError as exc:
        errors.append(ConfigError(f"[{section}] {exc.message}; using the defaults"))
        return cls()


def parse_config(text: str, source: str = "config.toml") -> tuple[Config, list[ConfigError]]:
    """Parse config text; returns the config (defaults where broken) and what was wrong."""
    errors: list[ConfigError] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Config(), [ConfigError(f"{source}: not valid TOML ({exc}); using the defaults")]
    # [backends.NAME] tables are read by backends.endpoints.load_endpoints
    known = {"theme", "model", "sampler", "generation", "keymap", "history_dir", "backends"}
    for key in data:
        if key not in known:
            errors.append(ConfigError(f"unknown key '{key}'"))
    changes: dict[str, Any] = {}
    theme = data.get("theme", DEFAULT_THEME)
    if isinstance(theme, str) and theme:
        changes["theme"] = theme
    else:
        errors.append(ConfigError("'theme' must be a theme name"))
    if "model" in data:
        changes["model"] = _typed("model", ModelConfig, data["model"], errors)
    if "sampler" in data:
        sampler = dict(data["sampler"]) if isinstance(data["sampler"], dict) else data["sampler"]
        generation = {}
        if isinstance(sampler, dict):  # max_tokens reads naturally under [sampler] too
            generation = {k: sampler.pop(k) for k in ("max_tokens", "top_n") if k in sampler}
        changes["sampler"] = _typed("sampler", SamplerParams, sampler, errors, {"temp": "temperature"})
    else:
        generation = {}
    section = data.get("generation", {})
    if generation or "generation" in data:
        merged = {**section, **generation} if isinstance(section, dict) else section
        changes["generation"] = _typed("generation", GenerationConfig, merged, errors)
    keymap = data.get("keymap", {})
    if isinstance(keymap, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in keymap.items()):
        changes["keymap"] = dict(keymap)
    else:
        errors.append(ConfigError("[keymap] must map binding ids to key strings"))
    if "history_dir" in data:
        if isinstance(data["history_dir"], str):
            changes["history_dir"] = Path(data["history_dir"]).expanduser()
        else:
            errors.append(ConfigError("'history_dir' must be a path"))
    return Config(**changes), [ConfigError(f"{source}: {e.message}") for e in errors]


def load_config(path: Path | None = None) -> tuple[Config, list[ConfigError]]:
    """Read the config file (absent = defaults, no error)."""
    path = path or locations.config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(), []
    except (OSError, UnicodeDecodeError) as exc:
        return Config(), [ConfigError(f"{path}: cannot read ({exc}); using the defaults")]
    return parse_config(text, str(path))
