"""Remote endpoints: ``[backends.NAME]`` tables of the TOML config and the command-line options.

An endpoint names a server, never a secret: the API key is read from the environment variable
``api_key_env`` when a backend is built, and is never stored here.

Example::

    [backends.vllm]
    kind = "openai"                      # "openai" (OpenAI-compatible) or "ollama"
    base_url = "http://gpu-box:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"         # optional
    mode = "completions"                 # or "chat"
    extra_params = ["top_k", "min_p", "repeat_penalty"]
    connect_timeout = 5.0
    read_timeout = 60.0
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from playground.errors import ConfigError, InvalidParameterError

Kind = Literal["openai", "ollama"]
Mode = Literal["completions", "chat"]

KINDS = ("openai", "ollama")
MODES = ("completions", "chat")
#: Sampler settings beyond the OpenAI ones; sent only to endpoints that list them.
EXTRA_PARAMS = frozenset({"top_k", "min_p", "repeat_penalty", "repeat_last_n"})
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


@dataclass(frozen=True)
class Endpoint:
    """One remote server and how to talk to it."""

    name: str
    """The name used in the config (``[backends.NAME]``) and with ``--backend``."""
    kind: Kind
    base_url: str
    """OpenAI: up to and including ``/v1``; Ollama: the server root."""
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

    def validate(self) -> "Endpoint":
        where = f"backend '{self.name}'"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.mode not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: base_url must be an http(s) URL, not {display_url(self.base_url)!r}")
        if not self.model:
            raise ConfigError(f"{where}: a model name is required")
        unknown = self.extra_params - EXTRA_PARAMS
        if unknown:
            raise ConfigError(f"{where}: unknown extra_params {sorted(unknown)}; known: {sorted(EXTRA_PARAMS)}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError(f"{where}: timeouts must be positive")
        if not 0 <= self.max_retries <= 10 or not 0 <= self.max_logprobs <= 100:
            raise ConfigError(f"{where}: max_retries must be 0-10 and max_logprobs 0-100")
        return self

    @property
    def label(self) -> str:
        """How messages name it: ``name (url)``, with any credentials in the URL removed."""
        return f"{self.name} ({display_url(self.base_url)})"

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
        out["base_url"] = display_url(self.base_url)
        return out


def display_url(url: str) -> str:
    """The URL without a ``user:password@`` part (people do paste keys there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


_FIELDS = {f.name for f in fields(Endpoint)} - {"name"}


def endpoint_from_mapping(name: str, data: Mapping[str, Any]) -> Endpoint:
    """One ``[backends.NAME]`` table as a validated Endpoint; ConfigError names what is wrong."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"backend '{name}' must be a table")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"backend '{name}': unknown keys {sorted(unknown)}; known: {sorted(_FIELDS)}")
    kind = data.get("kind", "openai")
    values: dict[str, Any] = {"kind": kind, "model": "", **data}
    values.setdefault("base_url", DEFAULT_OLLAMA_URL if kind == "ollama" else DEFAULT_OPENAI_URL)
    extra = values.get("extra_params", ())
    if isinstance(extra, str) or not all(isinstance(x, str) for x in extra):
        raise ConfigError(f"backend '{name}': extra_params must be a list of names")
    values["extra_params"] = frozenset(extra)
    try:
        endpoint = Endpoint(name=name, **values)
        for f in ("connect_timeout", "read_timeout", "max_retry_wait"):
            if not isinstance(getattr(endpoint, f), (int, float)):
                raise ConfigError(f"backend '{name}': {f} must be a number of seconds")
        if not isinstance(endpoint.model, str) or not isinstance(endpoint.base_url, str):
            raise ConfigError(f"backend '{name}': model and base_url must be strings")
        return endpoint.validate()
    except (TypeError, ValueError) as exc:  # a value of the wrong type met a comparison
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
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse_endpoints(data.get("backends"))


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend NAME`` or ``--base-url URL --api-model NAME`` (and a few refinements)."""
    group = parser.add_argument_group("remote backend (instead of the local model)")
    group.add_argument("--backend", metavar="NAME", help="an endpoint from [backends.NAME] in the config, or 'openai' "
                       "(OPENAI_BASE_URL or api.openai.com, key from OPENAI_API_KEY)")
    group.add_argument("--base-url", metavar="URL", help="server URL, e.g. http://127.0.0.1:8000/v1 (OpenAI-compatible) "
                       "or http://127.0.0.1:11434 with --api-kind ollama")
    group.add_argument("--api-model", "--model-name", dest="api_model", metavar="NAME", help="model name on the server")
    group.add_argument("--api-kind", choices=KINDS, default=None, help="wire protocol (default openai)")
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
        url = base_url or (environ.get("OPENAI_BASE_URL") if kind == "openai" else DEFAULT_OLLAMA_URL)
        if not url:
            raise InvalidParameterError("--api-model needs --base-url (or OPENAI_BASE_URL in the environment)")
        values = {"name": "cli", "kind": kind, "base_url": url, "model": model or "",
                  "api_key_env": "OPENAI_API_KEY" if kind == "openai" else None, **overrides}
    if not values.get("model"):
        raise InvalidParameterError("a remote backend needs a model name: --api-model NAME")
    try:
        return Endpoint(**values).validate()
    except ConfigError as exc:
        raise InvalidParameterError(exc.message) from None


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
