"""Endpoint configuration of the wrong type or shape is one clear error naming the field; keys
written into a base URL (``?api_key=``, ``user:password@``) or echoed by the model are redacted
everywhere a URL or a token is shown or stored, while the request still carries them."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess

import pytest

from conftest import playground_cmd, subprocess_env
from fault_server import FaultServer, completion_chunk, free_port, sse
from helpers import collect
from playground import jsonlines
from playground.backends.endpoints import Endpoint, add_backend_options, endpoint_from_args, endpoint_from_mapping, load_endpoints
from playground.backends.factory import remote_backend
from playground.backends.redact import Redactor, TokenRedactor, display_url, storage_url
from playground.errors import ConfigError, InvalidParameterError
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.locations import config_file
from playground.params import GenerationRequest
from playground.sessions.record import backend_from_endpoint, backend_from_start

SECRET = "sk-query-7d3f9b1c2a4e"
KEY = "sk-env-0a1b2c3d4e5f"
NAN, INF = float("nan"), float("inf")


# -- [backends.x] of the wrong type ---------------------------------------------------------------

@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("model", 5, "model must be a string, not int"),
        ("model", "  ", "a model name is required"),
        ("base_url", 8080, "base_url must be a string, not int"),
        ("base_url", "http://[::1", "base_url is not a valid URL"),
        ("base_url", "ftp://x", "must be an http(s) URL, not 'ftp://x'"),
        ("base_url", "http://host:99999", "base_url is not a valid URL (Port out of range"),
        ("base_url", "http://host:port/v1", "base_url is not a valid URL"),
        ("base_url", "localhost:8080", "(add http:// in front)"),
        ("base_url", "http://", "with a host"),
        ("base_url", "http://host:0/v1", "port 0"),
        ("base_url", "http://ho st/v1", "spaces or control characters"),
        ("base_url", "http://h/v1\x1b[2J", "spaces or control characters"),
        ("kind", ["openai"], "kind must be a string, not list"),
        ("kind", "grpc", "kind must be one of openai, ollama, llamacpp, not 'grpc'"),
        ("mode", 1, "mode must be a string"),
        ("read_timeout", [1], "read_timeout must be a number of seconds, not list"),
        ("read_timeout", NAN, "read_timeout must be a number of seconds above 0"),
        ("connect_timeout", INF, "connect_timeout must be a number of seconds above 0"),
        ("connect_timeout", -1, "timeouts must be positive (connect_timeout = -1)"),
        ("read_timeout", True, "read_timeout must be a number of seconds, not bool"),
        ("max_retry_wait", NAN, "max_retry_wait must be a number of seconds"),
        ("max_retry_wait", -3, "max_retry_wait must be a number of seconds"),
        ("deadline", 0, "deadline must be a number of seconds above 0"),
        ("deadline", INF, "deadline must be a number of seconds above 0"),
        ("progress_timeout", "soon", "progress_timeout must be a number of seconds, not str"),
        ("progress_timeout", -1.0, "timeouts must be positive"),
        ("max_response_mb", NAN, "max_response_mb must be a number of MiB"),
        ("max_retries", 1.5, "max_retries must be a whole number from 0 to 10, not 1.5"),
        ("max_retries", True, "max_retries must be a whole number"),
        ("max_retries", 11, "max_retries must be a whole number from 0 to 10"),
        ("max_logprobs", -1, "max_logprobs must be a whole number from 0 to 100"),
        ("logprobs", "yes", "logprobs must be true or false, not 'yes'"),
        ("api_key_env", "sk-live-123", "must be the NAME of an environment variable"),
        ("api_key_env", 3, "must be the NAME of an environment variable"),
        ("extra_params", 5, "extra_params must be a list of names"),
        ("extra_params", [1], "extra_params must be a list of names"),
    ],
)
def test_wrong_values_name_the_field_in_one_line(field, value, needle):
    with pytest.raises(ConfigError) as info:
        endpoint_from_mapping("box", {"model": "m", "base_url": "http://h:1/v1", field: value})
    message = info.value.message
    assert message.startswith("backend 'box': ") and needle in message, message
    assert "\n" not in message and "\x1b" not in message and "Traceback" not in message


def test_a_config_file_with_nan_inf_and_deep_nesting(tmp_path):
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    for body, needle in [
        ('[backends.box]\nmodel = "m"\nread_timeout = nan\n', "read_timeout must be a number of seconds above 0"),
        ('[backends.box]\nmodel = "m"\nmax_retry_wait = inf\n', "max_retry_wait must be"),
        ('[backends.box]\nmodel = "m"\nbase_url = "http://[::1"\n', "base_url is not a valid URL"),
        ('[backends.box]\nmodel = "m"\nconnect_timeout = [5]\n', "connect_timeout must be a number of seconds, not list"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "cannot read"),
    ]:
        path.write_text(body)
        with pytest.raises(ConfigError) as info:
            load_endpoints()
        assert needle in info.value.message and "\n" not in info.value.message
    path.write_bytes(b'[backends.box]\nmodel = "\xff"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_endpoints()


def test_from_dict_of_a_damaged_session_lane():
    for damaged in [{"name": "x", "kind": "openai", "model": "m", "base_url": "http://h:99999"},
                    {"name": "x", "model": "m", "extra_params": {"a": 1}}, {"name": "x", "model": ["m"]}]:
        with pytest.raises(ConfigError):
            Endpoint.from_dict(damaged)


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("url, needle", [
    ("http://[::1", "--base-url is not a valid URL"),
    ("ftp://x", "--base-url must be an http(s) URL"),
    ("http://host:99999", "--base-url is not a valid URL (Port out of range"),
    ("localhost:8080", "add http:// in front"),
    (f"http://h:99999/v1?api_key={SECRET}", "--base-url is not a valid URL"),
])
def test_a_malformed_base_url_on_the_command_line(url, needle):
    with pytest.raises(InvalidParameterError) as info:
        endpoint_from_args(cli("--base-url", url, "--api-model", "m"), {}, {})
    assert needle in info.value.message and "\n" not in info.value.message and SECRET not in info.value.message


def test_malformed_base_url_through_the_real_cli(tmp_path):
    proc = subprocess.run(playground_cmd() + ["generate", "--base-url", "http://[::1", "--api-model", "m", "hi"],
                          capture_output=True, text=True, timeout=60, env=subprocess_env(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--base-url is not a valid URL" in proc.stderr


# -- keys in the base URL ----------------------------------------------------------------------

@pytest.mark.parametrize("query", [f"api_key={SECRET}", f"key={SECRET}", f"token={SECRET}", f"access_token={SECRET}",
                                   f"auth={SECRET}", f"api-version=2024-02-01&apiKey={SECRET}", f"x={SECRET}"])
def test_query_credentials_are_masked_in_every_shown_or_stored_url(query):
    e = endpoint_from_mapping("q", {"model": "m", "base_url": f"https://u:{SECRET}@h:8443/v1/?{query}#frag"})
    shown = [e.label, display_url(e.base_url), json.dumps(e.to_dict()), e.public_url, storage_url(e.base_url),
             repr(backend_from_endpoint(e)), repr(remote_backend(e, {}))]
    for text in shown:
        assert SECRET not in text, text
    assert "h:8443/v1" in e.label and "frag" not in e.label
    if "api-version" in query:  # a parameter that is not a credential is kept as it is
        assert "api-version=2024-02-01" in e.public_url and "apiKey=***" in e.label


@pytest.fixture
def srv():
    with FaultServer() as server:
        yield server


def echo(*texts: str, finish: str = "stop") -> list[str]:
    return sse([*[completion_chunk(t, -0.1, {t: -0.1, SECRET: -3.0}) for t in texts], completion_chunk("", finish=finish)])


async def run(e: Endpoint, environ: dict[str, str]):
    b = remote_backend(e, environ)
    try:
        return b, [ev async for ev in b.stream(GenerationRequest("Hi", top_n=2))]
    finally:
        await b.aclose()


async def test_the_request_keeps_its_query_while_everything_shown_is_redacted(srv, caplog):
    srv.route("/v1/completions", lambda c: c.stream(echo("Your key is ", SECRET[:5], SECRET[5:12], SECRET[12:], " and ", KEY, ".")))
    e = Endpoint("q", "openai", f"{srv.url}/v1?api-version=2&api_key={SECRET}", "m", api_key_env="PG_KEY", read_timeout=2)
    with caplog.at_level(logging.DEBUG):
        b, events = await run(e, {"PG_KEY": KEY})
    rec = srv.requests[0]
    assert rec.path == f"/v1/completions?api-version=2&api_key={SECRET}"  # the real URL goes to the server
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    start, tokens, done = collect(events)
    assert isinstance(done, DoneEvent) and done.n_tokens == len(tokens) == 7
    text = "".join(t.text for t in tokens)
    assert text == "Your key is [redacted] and [redacted]."  # the run is kept, the secrets are not
    assert [t.i for t in tokens] == list(range(7))
    out = [jsonlines.dumps(ev) for ev in events] + [repr(ev) for ev in events] + [r.getMessage() for r in caplog.records]
    assert caplog.records and not any(SECRET in line or KEY in line for line in out)
    assert start.model["base_url"] == f"{srv.url}/v1?api-version=2&api_key=***"
    assert SECRET not in repr(backend_from_start(start))


async def test_failures_are_redacted_too(srv):
    srv.route("/v1/completions", lambda c: c.json(401, {"error": {"message": f"bad key {SECRET} for {KEY}"}}))
    e = Endpoint("q", "openai", f"{srv.url}/v1?key={SECRET}", "m", api_key_env="PG_KEY", read_timeout=2)
    _, events = await run(e, {"PG_KEY": KEY})
    end = events[-1]
    assert isinstance(end, FailedEvent) and "bad key *** for ***" in end.message and SECRET not in end.message
    refused = Endpoint("q", "openai", f"http://127.0.0.1:{free_port()}/v1?token={SECRET}", "m", connect_timeout=1)
    _, events = await run(refused, {})
    assert isinstance(events[-1], FailedEvent) and "could not connect" in events[-1].message and SECRET not in events[-1].message


def test_token_redactor_holds_back_only_what_may_begin_a_secret():
    r = TokenRedactor(Redactor(["abcdef-123"]))

    def tok(i, text):
        return TokenEvent(i, -1, text, None, None, (), float(i))

    assert [e.text for e in r.push(tok(0, "x a"))] == []  # "a" may begin the secret
    assert [e.text for e in r.push(tok(1, "q"))] == ["x a", "q"]  # it did not
    assert r.push(tok(2, "abc")) == [] and r.push(tok(3, "def-1")) == []
    out = r.push(tok(4, "23!"))
    assert [(e.i, e.text) for e in out] == [(2, "[redacted]"), (3, ""), (4, "!")] and out[0].t == 2.0
    assert [e.text for e in r.push(tok(5, "ab"))] == [] and [e.text for e in r.flush()] == ["ab"]
    plain = TokenRedactor(Redactor([]))
    assert [e.text for e in plain.push(tok(0, "a"))] == ["a"]


def test_cli_prints_and_saves_a_run_whose_tokens_echo_the_key(srv, tmp_path):
    srv.route("/v1/completions", lambda c: c.stream(echo("key: ", KEY[:6], KEY[6:], " / ", SECRET)))
    save = tmp_path / "run.json"
    env = {k: v for k, v in subprocess_env(tmp_path).items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(playground_cmd() + ["generate", "--base-url", f"{srv.url}/v1?api_key={SECRET}", "--api-model", "m",
                                              "--json", "--save", str(save), "hi"],
                          capture_output=True, text=True, timeout=60, env={**env, "OPENAI_API_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["model"]["base_url"].endswith("/v1?api_key=***")
    assert "".join(e["text"] for e in events if e["event"] == "token") == "key: [redacted] / [redacted]"
    stored = save.read_text()
    for text in (proc.stdout, proc.stderr, stored):
        assert SECRET not in text and KEY not in text
    assert "[redacted]" in stored
