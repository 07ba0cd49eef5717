"""``playground generate`` end to end, as a script would call it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env


def run_cli(args: list[str], tmp_path: Path, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(playground_cmd() + args, input=stdin, capture_output=True, text=True, timeout=timeout, env=subprocess_env(tmp_path))


def test_json_lines_shape(tmp_path):
    proc = run_cli(["generate", "--json", "--temp", "0", "-n", "8", "--top-n", "3", "The capital of France is"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    start, *tokens, done = lines
    assert start["event"] == "start"
    assert start["model"]["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert start["prompt"] == "The capital of France is"
    assert all(isinstance(t, int) for t in start["prompt_tokens"])
    assert start["params"]["temperature"] == 0.0
    assert tokens and all(t["event"] == "token" for t in tokens)
    assert [t["i"] for t in tokens] == list(range(len(tokens)))
    for t in tokens:
        assert set(t) >= {"i", "id", "text", "logprob", "p_sampled", "top", "t"}
        assert len(t["top"]) == 3 and t["logprob"] <= 0
        assert t["top"][0]["logprob"] >= t["top"][1]["logprob"] >= t["top"][2]["logprob"]
        assert t["id"] == t["top"][0]["id"]  # greedy
    assert done["event"] == "done" and done["finish_reason"] in ("stop", "length")
    assert done["n_tokens"] == len(tokens)
    for key in ("ttft_s", "prompt_tok_s", "decode_tok_s"):
        assert key in done


def test_plain_text_from_stdin(tmp_path):
    proc = run_cli(["generate", "--temp", "0", "-n", "5", "-"], tmp_path, stdin="Once upon a time")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-m", "/nonexistent/model.gguf", "hi"], "no such file"),
        (["--temp", "-1", "hi"], "temperature"),
        (["--top-p", "1.5", "hi"], "top-p"),
        (["--top-n", "500", "hi"], "top-n"),
        (["-n", "0", "hi"], "max tokens"),
        (["--temp", "warm", "hi"], "invalid float"),
        (["-c", "32", "word " * 200], "context holds"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    proc = run_cli(["generate", *args], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_not_a_gguf(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 100)
    proc = run_cli(["generate", "-m", str(bogus), "hi"], tmp_path)
    assert proc.returncode == 2 and "not a GGUF" in proc.stderr and "Traceback" not in proc.stderr


def test_truncated_gguf(tmp_path, embedded_path):
    broken = tmp_path / "truncated.gguf"
    with embedded_path.open("rb") as src:
        broken.write_bytes(src.read(2_000_000))
    proc = run_cli(["generate", "-m", str(broken), "hi"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "could not load" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_chat_option_renders_one_user_turn_with_the_model_template(tmp_path, engine):
    from playground.prompt_builder import PromptSpec, chat_template_of, render

    proc = run_cli(["generate", "--chat", "--json", "--temp", "0", "-n", "4", "-t", "1", "Name a colour."], tmp_path)
    assert proc.returncode == 0, proc.stderr
    start = json.loads(proc.stdout.splitlines()[0])
    expected = render(PromptSpec(mode="freeform", text="Name a colour.", template="chat"), chat_template_of(engine))
    assert start["prompt"] == expected.text
    assert "<|im_start|>user\nName a colour.<|im_end|>" in start["prompt"]
    assert start["prompt_tokens"] == engine.model.tokenize(expected.text, add_special=expected.add_special)
