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
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground import locations
from playground.cores import max_threads
from playground.errors import ConfigError, InvalidParameterError, PlaygroundError
from playground.params import MAX_TOP_N, SamplerParams
from playground.themes import DEFAULT_THEME, describe

#: A config file larger than this is not read (a config is a few hundred bytes).
MAX_CONFIG_BYTES = 1024 * 1024

#: The longest distribution head a run may keep per token (the live sampler view's).
MAX_DIST_SIZE = 65536

#: The most tokens one run may ask for (a C int in llama.cpp).
MAX_TOKENS = 2**31 - 1

# The engine's bounds (``engine_options.EngineChoice.validate``), which this lower layer may not
# import; checked here so that a bad [model] value is reported and the app still starts.
# tests/test_config_hostile.py checks that both agree.
MIN_CTX, MAX_CTX = 16, 1 << 20
MAX_GPU_LAYERS = 100_000


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
    """CPU threads; None = all cores but one (see ``engine_options.default_threads``)."""

    def validate(self) -> "ModelConfig":
        """Raise InvalidParameterError for a value the engine would refuse; return self."""
        if self.path is not None and ("\0" in self.path or not self.path.strip()):
            raise InvalidParameterError("path must be a file path")
        if not MIN_CTX <= self.ctx_size <= MAX_CTX:
            raise InvalidParameterError(f"ctx_size must be between {MIN_CTX} and {MAX_CTX} tokens")
        if self.threads is not None and not 1 <= self.threads <= max_threads():
            raise InvalidParameterError(f"threads must be between 1 and {max_threads()} (4 per core)")
        if self.gpu_layers is not None and not -1 <= self.gpu_layers <= MAX_GPU_LAYERS:
            raise InvalidParameterError("gpu_layers must be -1 (all), 0 or a layer count")
        return self


@dataclass(frozen=True)
class GenerationConfig:
    """Defaults of a run that are not sampler settings."""

    max_tokens: int = 256
    """Maximum new tokens per run."""
    top_n: int = 10
    """Alternatives reported per token."""
    dist_size: int = 512
    """Head of the raw distribution kept per token for the live sampler view."""

    def validate(self) -> "GenerationConfig":
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise InvalidParameterError(f"max_tokens must be between 1 and {MAX_TOKENS}")
        if not 0 <= self.top_n <= MAX_TOP_N:
            raise InvalidParameterError(f"top_n must be between 0 and {MAX_TOP_N}")
        if not 0 <= self.dist_size <= MAX_DIST_SIZE:
            raise InvalidParameterError(f"dist_size must be between 0 and {MAX_DIST_SIZE}")
        return self


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


def _valid(cls: type, values: dict[str, Any]) -> str | None:
    """Why ``cls(**values)`` is out of range, or None when it is fine."""
    try:
        built = cls(**values)
        if hasattr(built, "validate"):
            built.validate()
    except PlaygroundError as exc:
        return exc.message
    except (TypeError, ValueError, OverflowError) as exc:  # a dataclass's own checks
        return str(exc)
    return None


def _typed(section: str, cls: type, data: Any, errors: list[ConfigError], aliases: dict[str, str] | None = None):
    """Build ``cls`` from a TOML table, keeping defaults for bad or unknown keys (each reported)."""
    if not isinstance(data, dict):
        errors.append(ConfigError(f"[{section}] must be a table, not {describe(data)}"))
        return cls()
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    good: dict[str, Any] = {}
    for key, value in data.items():
        name = (aliases or {}).get(key, key)
        if name not in fields:
            errors.append(ConfigError(f"[{section}] unknown key {describe(key)}"))
        elif not _accepts(fields[name], value):
            errors.append(ConfigError(f"[{section}] '{key}' should be {fields[name]}, not {describe(value)}"))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(ConfigError(f"[{section}] '{key}' must be a finite number, not {value}"))
        else:
            good[name] = float(value) if fields[name] == "float" else value
    # Each value alone first, so one bad value costs only itself, then all together.
    for name in list(good):
        problem = _valid(cls, {name: good[name]})
        if problem is not None:
            errors.append(ConfigError(f"[{section}] '{name}': {problem}; using the default"))
            del good[name]
    problem = _valid(cls, good)
    if problem is not None:
        errors.append(ConfigError(f"[{section}] {problem}; using the defaults"))
        return cls()
    return cls(**good)


def _name_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200 and value.isprintable()


def _path(value: Any) -> Path | None:
    if isinstance(value, str) and value.strip() and "\0" not in value:
        return Path(value).expanduser()
    return None


def parse_config(text: str, source: str = "config.toml") -> tuple[Config, list[ConfigError]]:
    """Parse config text; returns the config (defaults where broken) and what was wrong."""
    errors: list[ConfigError] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Config(), [ConfigError(f"{source}: not valid TOML ({exc}); using the defaults")]
    except RecursionError:
        return Config(), [ConfigError(f"{source}: not a config (TOML nested too deeply); using the defaults")]
    # [backends.NAME] tables are read by backends.endpoints.load_endpoints
    known = {"theme", "model", "sampler", "generation", "keymap", "history_dir", "backends"}
    for key in data:
        if key not in known:
            errors.append(ConfigError(f"unknown key {describe(key)}"))
    changes: dict[str, Any] = {}
    theme = data.get("theme", DEFAULT_THEME)
    if _name_ok(theme):
        changes["theme"] = theme
    else:
        errors.append(ConfigError(f"'theme' must be a theme name, not {describe(theme)}"))
    if "model" in data:
        changes["model"] = _typed("model", ModelConfig, data["model"], errors)
    generation: dict[str, Any] = {}
    if "sampler" in data:
        sampler = dict(data["sampler"]) if isinstance(data["sampler"], dict) else data["sampler"]
        if isinstance(sampler, dict):  # max_tokens reads naturally under [sampler] too
            generation = {k: sampler.pop(k) for k in ("max_tokens", "top_n") if k in sampler}
        changes["sampler"] = _typed("sampler", SamplerParams, sampler, errors, {"temp": "temperature"})
    section = data.get("generation", {})
    if generation or "generation" in data:
        merged = {**section, **generation} if isinstance(section, dict) else section
        changes["generation"] = _typed("generation", GenerationConfig, merged, errors)
    keymap = data.get("keymap", {})
    if isinstance(keymap, dict):
        changes["keymap"] = {}
        for key, keys in keymap.items():
            if _name_ok(key) and _name_ok(keys):
                changes["keymap"][key] = keys
            else:
                errors.append(ConfigError(f"[keymap] {describe(key)} must map a binding id to keys "
                                          f"such as \"ctrl+g,f5\", not {describe(keys)}"))
    else:
        errors.append(ConfigError(f"[keymap] must be a table of binding ids to keys, not {describe(keymap)}"))
    if "history_dir" in data:
        folder = _path(data["history_dir"])
        if folder is not None:
            changes["history_dir"] = folder
        else:
            errors.append(ConfigError(f"'history_dir' must be a path, not {describe(data['history_dir'])}"))
    return Config(**changes), [ConfigError(f"{source}: {e.message}") for e in errors]


def load_config(path: Path | None = None) -> tuple[Config, list[ConfigError]]:
    """Read the config file (absent = defaults, no error)."""
    path = path or locations.config_file()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            return Config(), [ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB, not a config; "
                                          "using the defaults")]
        text = data.decode("utf-8")
    except FileNotFoundError:
        return Config(), []
    except (OSError, UnicodeDecodeError) as exc:
        return Config(), [ConfigError(f"{path}: cannot read ({exc}); using the defaults")]
    return parse_config(text, str(path))
