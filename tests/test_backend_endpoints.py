"""Endpoint configuration: [backends.NAME] tables, command-line options, OPENAI_* variables."""

from __future__ import annotations

import argparse

import pytest

from playground.backends.endpoints import (
    Endpoint,
    add_backend_options,
    display_url,
    endpoint_from_args,
    endpoint_from_mapping,
    load_endpoints,
    parse_endpoints,
    resolve_api_key,
)
from playground.backends.factory import build_backend
from playground.backends.ollama import OllamaBackend
from playground.backends.openai_compat import OpenAIBackend
from playground.errors import ConfigError, InvalidParameterError
from playground.locations import config_file


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    return parser.parse_args(list(argv))


def test_full_table():
    e = endpoint_from_mapping("vllm", {
        "kind": "openai", "base_url": "http://gpu:8000/v1", "model": "qwen", "api_key_env": "VLLM_KEY",
        "mode": "chat", "extra_params": ["top_k", "min_p"], "connect_timeout": 2, "read_timeout": 9.5,
    })
    assert e == Endpoint("vllm", "openai", "http://gpu:8000/v1", "qwen", "VLLM_KEY", "chat",
                         frozenset({"top_k", "min_p"}), connect_timeout=2, read_timeout=9.5)
    assert e.to_dict()["extra_params"] == ["min_p", "top_k"]
    assert Endpoint.from_dict(e.to_dict()) == e


def test_defaults_per_kind():
    o = endpoint_from_mapping("local-ollama", {"kind": "ollama", "model": "smollm2"})
    assert o.base_url.startswith("http://127.0.0.1:11434") and o.mode == "completions" and o.api_key_env is None
    a = endpoint_from_mapping("oa", {"model": "gpt"})
    assert a.kind == "openai" and a.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "table, needle",
    [
        ({"model": "m", "kind": "grpc"}, "kind must be one of"),
        ({"model": "m", "mode": "embed"}, "mode must be one of"),
        ({"model": "m", "base_url": "ftp://x"}, "http(s) URL"),
        ({"base_url": "http://x"}, "model name is required"),
        ({"model": "m", "extra_params": ["top_k", "mirostat"]}, "unknown extra_params ['mirostat']"),
        ({"model": "m", "extra_params": "top_k"}, "list of names"),
        ({"model": "m", "read_timeout": 0}, "timeouts must be positive"),
        ({"model": "m", "read_timeout": "soon"}, "number of seconds"),
        ({"model": "m", "api_key": "sk-123"}, "unknown keys ['api_key']"),
    ],
)
def test_bad_tables_name_the_problem(table, needle):
    with pytest.raises(ConfigError) as info:
        endpoint_from_mapping("b", table)
    assert needle in info.value.message and "backend 'b'" in info.value.message


def test_load_from_the_config_file():
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[backends.box]\nkind = "ollama"\nmodel = "llama3"\n\n[backends.oai]\nmodel = "gpt-4o-mini"\n')
    found = load_endpoints()
    assert set(found) == {"box", "oai"} and found["box"].kind == "ollama"
    path.write_text("[backends.box\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_endpoints()
    path.unlink()
    assert load_endpoints() == {}
    with pytest.raises(ConfigError):
        parse_endpoints({"x": "not a table"})


def test_no_remote_options_means_local():
    assert endpoint_from_args(parse_args()) is None


def test_base_url_and_model_from_the_command_line():
    e = endpoint_from_args(parse_args("--base-url", "http://127.0.0.1:9/v1", "--model-name", "x",
                                      "--api-mode", "chat", "--api-extra", "top_k, min_p"), environ={})
    assert (e.kind, e.base_url, e.model, e.mode) == ("openai", "http://127.0.0.1:9/v1", "x", "chat")
    assert e.extra_params == {"top_k", "min_p"} and e.api_key_env == "OPENAI_API_KEY"


def test_openai_base_url_from_the_environment():
    env = {"OPENAI_BASE_URL": "http://10.0.0.2:8000/v1", "OPENAI_API_KEY": "k"}
    e = endpoint_from_args(parse_args("--api-model", "m"), environ=env)
    assert e.base_url == "http://10.0.0.2:8000/v1"
    assert resolve_api_key(e, env) == "k"
    builtin = endpoint_from_args(parse_args("--backend", "openai", "--api-model", "m"), environ=env)
    assert builtin.base_url == env["OPENAI_BASE_URL"] and builtin.api_key_env == "OPENAI_API_KEY"
    default = endpoint_from_args(parse_args("--backend", "openai", "--api-model", "m"), environ={})
    assert default.base_url == "https://api.openai.com/v1"


def test_named_backend_with_overrides():
    configured = {"box": endpoint_from_mapping("box", {"kind": "ollama", "model": "llama3"})}
    e = endpoint_from_args(parse_args("--backend", "box", "--api-model", "qwen", "--api-mode", "chat"), configured, {})
    assert (e.name, e.kind, e.model, e.mode) == ("box", "ollama", "qwen", "chat")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--backend", "nope"], "no backend named 'nope'"),
        (["--backend", "openai", "--base-url", "http://x/v1"], "not both"),
        (["--api-model", "m"], "needs --base-url"),
        (["--base-url", "http://x/v1"], "needs a model name"),
        (["--base-url", "gopher://x", "--api-model", "m"], "http(s) URL"),
    ],
)
def test_bad_command_lines(argv, needle):
    with pytest.raises(InvalidParameterError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        endpoint_from_args(parse_args(*argv), {}, {})


def test_credentials_in_urls_are_not_shown():
    assert display_url("https://user:sk-secret@host:8443/v1/") == "https://host:8443/v1"
    e = endpoint_from_mapping("b", {"base_url": "https://u:sk-secret@host/v1", "model": "m"})
    assert "sk-secret" not in e.label and "sk-secret" not in str(e.to_dict())


def test_factory_picks_the_class_and_capabilities_are_data():
    oa = build_backend(endpoint_from_mapping("a", {"model": "m", "extra_params": ["top_k"]}), environ={})
    chat = build_backend(endpoint_from_mapping("c", {"model": "m", "mode": "chat"}), environ={})
    ol = build_backend(endpoint_from_mapping("o", {"kind": "ollama", "model": "m"}), environ={})
    assert isinstance(oa, OpenAIBackend) and isinstance(ol, OllamaBackend)
    assert oa.capabilities.max_alternatives == 5 and chat.capabilities.max_alternatives == 20
    assert oa.capabilities.raw_prompt and not oa.capabilities.chat and chat.capabilities.chat
    assert "top_k" in oa.capabilities.sampler_params and "min_p" not in oa.capabilities.sampler_params
    for b in (oa, chat, ol):
        c = b.capabilities
        assert not c.sampled_prob and not c.distribution and not c.token_ids and c.cancel
