"""Remote endpoints: ``[backends.NAME]`` tables of the TOML config and the command-line options.

An endpoint names a server, never a secret: the API key is read from the environment variable
``api_key_env`` when a backend is built, and is never stored here.

Example::

    [backends.vllm]
    kind = "openai"                      # "openai" (OpenAI-compatible), "ollama" or "llamacpp" (llama-server's /completion)
    base_url = "http://gpu-box:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"         # optional
    mode = "completions"                 # or "chat"
    extra_params = ["top_k", "min_p", "repeat_penalty"]
    connect_timeout = 5.0
    read_timeout = 60.0                  # longest silence
    progress_timeout = 120.0             # longest time without a token (keep-alives do not count)
    deadline = 900.0                     # longest a whole request may take
    max_response_mb = 64                 # most decompressed bytes read from one response
    max_concurrency = 4                  # most requests at once from one comparison or vote
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from playground.backends.redact import display_url, storage_url
from playground.errors import ConfigError, InvalidParameterError

__all__ = ["Endpoint", "display_url", "storage_url", "endpoint_from_mapping", "endpoint_from_args", "parse_endpoints",
           "load_endpoints", "add_backend_options", "resolve_api_key"]

Kind = Literal["openai", "ollama", "llamacpp"]
Mode = Literal["completions", "chat"]

KINDS = ("openai", "ollama", "llamacpp")
MODES = ("completions", "chat")
#: Sampler settings beyond the OpenAI ones; sent only to endpoints that list them.
EXTRA_PARAMS = frozenset({"top_k", "min_p", "repeat_penalty", "repeat_last_n"})
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_LLAMACPP_URL = "http://127.0.0.1:8080"
#: Where each kind listens by default when no base URL is given.
DEFAULT_URLS = {"openai": DEFAULT_OPENAI_URL, "ollama": DEFAULT_OLLAMA_URL, "llamacpp": DEFAULT_LLAMACPP_URL}


@dataclass(frozen=True)
class Endpoint:
    """One remote server and how to talk to it."""

    name: str
    """The name used in the config (``[backends.NAME]``) and with ``--backend``."""
    kind: Kind
    base_url: str
    """OpenAI: up to and including ``/v1``; Ollama and llamacpp: the server root (llamacpp ignores a
    trailing ``/v1``)."""
    model: str
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    mode: Mode = "completions"
    """"completions" sends the raw prompt; "chat" sends messages."""
    extra_params: frozenset[str] = frozenset()
    """Sampler settings beyond temperature/top-p/seed that this server accepts."""
    logprobs: bool = True
    """Ask for log-probabilities (turn off for servers that reject the field)."""
    max_logprobs: int = 5
    """Most alternatives the completions endpoint returns (OpenAI: 5); chat allows 20."""
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    """Longest silence tolerated, before the first token or between two (a stalled stream)."""
    max_retries: int = 2
    """Retries on HTTP 429 (and 503 with Retry-After), only before the first token."""
    max_retry_wait: float = 30.0
    """A longer Retry-After than this fails at once instead of waiting."""
    progress_timeout: float = 120.0
    """Longest time without a new token (keep-alive comments and byte drips are not progress)."""
    deadline: float = 900.0
    """Longest a whole request may take, retries included."""
    max_response_mb: float = 64.0
    """Most decompressed data read from one response (a compression bomb stops there)."""
    raw_logprobs: bool = True
    """llamacpp: also ask for the raw log-probabilities, in a second request run alongside (same
    seed); llama-server gives either those or the post-sampler probabilities per request."""
    max_concurrency: int = 4
    """Most requests a comparison or vote sends to this endpoint at once (its lanes share one
    connection pool; the others wait their turn); a llamacpp lane with raw_logprobs sends two.
    Match the server's parallel slots (llama-server's ``--parallel``, vLLM's ``--max-num-seqs``)."""

    def validate(self) -> "Endpoint":
        """Self, or ConfigError naming the first field that is wrong (type, range, URL shape)."""
        where = f"backend '{self.name}'"
        for f in fields(self):
            problem = _field_problem(f.name, getattr(self, f.name))
            if problem:
                raise ConfigError(f"{where}: {problem}")
        if self.kind == "llamacpp" and self.mode != "completions":
            raise ConfigError(f"{where}: kind \"llamacpp\" sends the raw prompt to /completion; for chat messages use "
                              "kind = \"openai\" with mode = \"chat\" and base_url ending in /v1")
        return self

    @property
    def label(self) -> str:
        """How messages name it: ``name (url)``, with any credentials in the URL masked."""
        return f"{self.name} ({display_url(self.base_url)})"

    @property
    def public_url(self) -> str:
        """The base URL as it may be stored (sessions, history): credentials left out."""
        return storage_url(self.base_url)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Endpoint":
        """Inverse of ``to_dict`` (e.g. a remote lane stored in a session)."""
        rest = {k: v for k, v in data.items() if k != "name"}
        return endpoint_from_mapping(str(data.get("name", "remote")), rest)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable (sessions, config dumps): holds the variable's name, never the key."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        out["base_url"] = self.public_url
        return out


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Seconds-valued fields: (smallest allowed, largest allowed); each must be a finite number.
_WHOLE = {"max_logprobs": (0, 100), "max_retries": (0, 10), "max_concurrency": (1, 64)}
_SECONDS = {"connect_timeout": (0.0, 3600.0), "read_timeout": (0.0, 86400.0), "max_retry_wait": (0.0, 86400.0),
            "progress_timeout": (0.0, 86400.0), "deadline": (0.0, 7 * 86400.0), "max_response_mb": (0.0, 65536.0)}


def _field_problem(name: str, value: Any) -> str | None:
    """What is wrong with one field's value, as a phrase naming the field, or None."""
    if name in ("name", "model", "base_url", "kind", "mode") and not isinstance(value, str):
        return f"{name} must be a string, not {type(value).__name__}"
    if name == "name" and not value:
        return "the name must not be empty"
    if name == "kind" and value not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, not {value!r}"
    if name == "mode" and value not in MODES:
        return f"mode must be one of {', '.join(MODES)}, not {value!r}"
    if name == "model" and not value.strip():
        return "a model name is required (model = \"...\")"
    if name == "base_url":
        return _url_problem(value)
    if name == "api_key_env" and value is not None and (not isinstance(value, str) or not _ENV_NAME.fullmatch(value)):
        return "api_key_env must be the NAME of an environment variable (letters, digits, _), not the key itself"
    if name == "extra_params":
        if not isinstance(value, frozenset) or not all(isinstance(x, str) for x in value):
            return "extra_params must be a list of names"
        if value - EXTRA_PARAMS:
            return f"unknown extra_params {sorted(value - EXTRA_PARAMS)}; known: {sorted(EXTRA_PARAMS)}"
    if name in ("logprobs", "raw_logprobs") and not isinstance(value, bool):
        return f"{name} must be true or false, not {value!r}"
    if name in _WHOLE:
        low, top = _WHOLE[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
            return f"{name} must be a whole number from {low} to {top}, not {value!r}"
    if name in _SECONDS:
        low, high = _SECONDS[name]
        unit = "MiB" if name == "max_response_mb" else "seconds"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{name} must be a number of {unit}, not {type(value).__name__}"
        if name.endswith("timeout") and value <= 0:
            return f"timeouts must be positive ({name} = {value!r})"
        if not math.isfinite(value) or value < low or value > high or (value == low and name != "max_retry_wait"):
            return f"{name} must be a number of {unit} above {low:g} and at most {high:g}, not {value!r}"
    return None


def _url_problem(url: str) -> str | None:
    shown = display_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "http://[::1", "http://host:99999", "http://host:x"
        return f"base_url is not a valid URL ({exc}): {shown!r}"
    if parts.scheme not in ("http", "https"):
        hint = " (add http:// in front)" if parts.scheme and not parts.netloc and parts.path[:1].isdigit() else ""
        return f"base_url must be an http(s) URL, not {shown!r}{hint}"
    if not parts.hostname:
        return f"base_url must be an http(s) URL with a host, not {shown!r}"
    if port == 0:
        return f"base_url has port 0, which cannot be connected to: {shown!r}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return f"base_url must not contain spaces or control characters: {shown!r}"
    return None


_FIELDS = {f.name for f in fields(Endpoint)} - {"name"}


def endpoint_from_mapping(name: str, data: Mapping[str, Any]) -> Endpoint:
    """One ``[backends.NAME]`` table as a validated Endpoint; ConfigError names what is wrong."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"backend '{name}' must be a table")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"backend '{name}': unknown keys {sorted(unknown)}; known: {sorted(_FIELDS)}")
    kind = data.get("kind", "openai")
    values: dict[str, Any] = {"kind": kind, "model": _default_model(kind), **data}
    values.setdefault("base_url", DEFAULT_URLS.get(kind, DEFAULT_OPENAI_URL) if isinstance(kind, str) else DEFAULT_OPENAI_URL)
    extra = values.get("extra_params", ())
    if not isinstance(extra, (list, tuple, frozenset, set)) or not all(isinstance(x, str) for x in extra):
        raise ConfigError(f"backend '{name}': extra_params must be a list of names")
    values["extra_params"] = frozenset(extra)
    try:
        return Endpoint(name=name, **values).validate()
    except (TypeError, ValueError) as exc:  # a last guard: validate() checks each field's type first
        raise ConfigError(f"backend '{name}': a value has the wrong type ({exc})") from None


def parse_endpoints(backends: Mapping[str, Any] | None) -> dict[str, Endpoint]:
    """The ``backends`` table of the config (name -> table) as Endpoints."""
    if backends is None:
        return {}
    if not isinstance(backends, Mapping):
        raise ConfigError("[backends] must be a table of [backends.NAME] tables")
    return {name: endpoint_from_mapping(name, table) for name, table in backends.items()}


def load_endpoints(path: os.PathLike[str] | str | None = None) -> dict[str, Endpoint]:
    """Endpoints declared in the config file (default: the XDG config); none if it is absent."""
    import tomllib

    from playground.locations import config_file

    path = config_file() if path is None else path
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # TOMLDecodeError and a file that is not UTF-8 are ValueErrors
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"cannot read {path}: tables or arrays nested too deeply") from None
    return parse_endpoints(data.get("backends"))


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend NAME`` or ``--base-url URL --api-model NAME`` (and a few refinements)."""
    group = parser.add_argument_group("remote backend (instead of the local model)")
    group.add_argument("--backend", metavar="NAME", help="an endpoint from [backends.NAME] in the config, or 'openai' "
                       "(OPENAI_BASE_URL or api.openai.com, key from OPENAI_API_KEY)")
    group.add_argument("--base-url", metavar="URL", help="server URL, e.g. http://127.0.0.1:8000/v1 (OpenAI-compatible) "
                       "or http://127.0.0.1:11434 with --api-kind ollama, http://127.0.0.1:8080 with --api-kind llamacpp")
    group.add_argument("--api-model", "--model-name", dest="api_model", metavar="NAME", help="model name on the server")
    group.add_argument("--api-kind", choices=KINDS, default=None, help="wire protocol (default openai; llamacpp: llama-server's native /completion)")
    group.add_argument("--api-mode", choices=MODES, default=None, help="raw prompt (completions, default) or chat messages")
    group.add_argument("--api-key-env", metavar="VAR", default=None, help="environment variable holding the API key "
                       "(default OPENAI_API_KEY for openai)")
    group.add_argument("--api-extra", metavar="LIST", default=None,
                       help="extra sampler settings the server accepts, comma-separated: top_k,min_p,repeat_penalty")


def endpoint_from_args(
    args: argparse.Namespace,
    configured: Mapping[str, Endpoint] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint | None:
    """The endpoint the command line asks for, or None for the local model."""
    environ = os.environ if environ is None else environ
    name = getattr(args, "backend", None)
    base_url = getattr(args, "base_url", None)
    model = getattr(args, "api_model", None)
    if name is None and base_url is None and model is None:
        return None
    if name is not None and base_url is not None:
        raise InvalidParameterError("give either --backend or --base-url, not both")
    overrides: dict[str, Any] = {}
    if args.api_mode:
        overrides["mode"] = args.api_mode
    if args.api_key_env:
        overrides["api_key_env"] = args.api_key_env
    if args.api_extra is not None:
        overrides["extra_params"] = frozenset(p.strip() for p in args.api_extra.split(",") if p.strip())
    if model:
        overrides["model"] = model
    if name is not None:
        configured = configured or {}
        if name in configured:
            base = configured[name]
        elif name == "openai":
            base = _openai_default(environ, model)
        else:
            known = ", ".join(sorted(configured)) or "none configured"
            raise InvalidParameterError(f"no backend named '{name}' (known: {known})")
        if args.api_kind:
            overrides["kind"] = args.api_kind
        values = {**{f.name: getattr(base, f.name) for f in fields(Endpoint)}, **overrides}
    else:
        kind = args.api_kind or "openai"
        url = base_url or (environ.get("OPENAI_BASE_URL") if kind == "openai" else DEFAULT_URLS[kind])
        if not url:
            raise InvalidParameterError("--api-model needs --base-url (or OPENAI_BASE_URL in the environment)")
        values = {"name": "cli", "kind": kind, "base_url": url, "model": model or "",
                  "api_key_env": "OPENAI_API_KEY" if kind == "openai" else None, **overrides}
    if not values.get("model"):
        values["model"] = _default_model(values.get("kind", "openai"))
    if not values.get("model"):
        raise InvalidParameterError("a remote backend needs a model name: --api-model NAME")
    try:
        return Endpoint(**values).validate()
    except ConfigError as exc:
        message = exc.message.replace("backend 'cli': base_url", "--base-url", 1)
        raise InvalidParameterError(message) from None


def _default_model(kind: Any) -> str:
    """llama-server serves the one model it was started with: no name is needed to reach it."""
    return "llama-server" if kind == "llamacpp" else ""


def _openai_default(environ: Mapping[str, str], model: str | None) -> Endpoint:
    return Endpoint(
        name="openai",
        kind="openai",
        base_url=environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_URL,
        model=model or "",
        api_key_env="OPENAI_API_KEY",
    )


def resolve_api_key(endpoint: Endpoint, environ: Mapping[str, str] | None = None) -> str | None:
    """The key from ``endpoint.api_key_env``, or None (a 401 then says the variable is not set)."""
    environ = os.environ if environ is None else environ
    if not endpoint.api_key_env:
        return None
    return environ.get(endpoint.api_key_env) or None
