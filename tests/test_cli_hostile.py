"""The headless commands against closed pipes, escape injection, absurd options and crashes.

Each run is the real program in a subprocess (the real embedded model, the real fault server):
what a script or an attacker would do, and what must never happen (a traceback, a segfault, a
lost run, a control sequence reaching the terminal).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env
from fault_server import FaultServer, completion_chunk, sse

# What a hostile server or a shared session file would send: set the title, clear the screen,
# write the clipboard (OSC 52), an 8-bit CSI and a right-to-left override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZWNobyBoaQ==\x07\x9b31m\u202eevil"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def run(args: list[str], tmp_path: Path, *, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(playground_cmd() + args, input=stdin, capture_output=True, timeout=timeout,
                          env=subprocess_env(tmp_path))


def first_line_then_close(args: list[str], tmp_path: Path) -> tuple[bytes, int, bytes]:
    """What ``playground ARGS | head -1`` does: read one line, close the pipe, wait."""
    proc = subprocess.Popen(playground_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env(tmp_path))
    line = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    return line, proc.returncode, err


def history_sessions(tmp_path: Path) -> list[dict]:
    folder = tmp_path / "data" / "playground" / "sessions"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# --- closed pipes --------------------------------------------------------------------------
def test_generate_json_into_head_keeps_the_partial_run(tmp_path):
    line, code, err = first_line_then_close(["generate", "--json", "--temp", "0", "-n", "500", "1, 2, 3, 4, 5, 6,"],
                                            tmp_path)
    assert json.loads(line)["event"] == "start"
    assert code == 141, err  # as a program ended by SIGPIPE
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    (session,) = history_sessions(tmp_path)
    lane = session["lanes"][0]
    assert lane["finish_reason"] == "cancelled"
    assert 0 < len(lane.get("tokens", [])) < 500  # stopped early, the tokens streamed before are kept


def test_compare_into_head_does_not_crash(tmp_path):
    line, code, err = first_line_then_close(
        ["compare", "--json", "--lane", "temp=0", "--lane", "temp=1,seed=3", "-n", "64", "Once upon a time"], tmp_path)
    assert json.loads(line)["event"] == "start"
    assert code == 141, (code, err)  # not -11 (segfault in cleanup)
    assert b"Traceback" not in err
    (session,) = history_sessions(tmp_path)
    assert len(session["lanes"]) == 2


def test_replay_json_into_head(tmp_path):
    saved = tmp_path / "run.json"
    proc = run(["generate", "--temp", "0", "-n", "12", "--save", str(saved), "Hello"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    line, code, err = first_line_then_close(["replay", str(saved), "--json", "--speed", "0"], tmp_path)
    assert json.loads(line)["event"] == "start"
    assert code in (0, 141) and b"Traceback" not in err


# --- escape injection ----------------------------------------------------------------------
@pytest.fixture
def hostile_server():
    with FaultServer() as server:
        chunks = [completion_chunk("Hi " + HOSTILE, -0.1), completion_chunk(" there", -0.2),
                  completion_chunk("", finish="stop")]
        server.route("/v1/completions", lambda c: c.stream(sse(chunks)))
        yield server


def test_server_text_reaches_the_terminal_inert_and_the_file_exact(hostile_server, tmp_path):
    saved = tmp_path / "run.json"
    proc = run(["generate", "--base-url", hostile_server.url + "/v1", "--api-model", "m", "--save", str(saved), "hi"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert not any(c in out for c in RAW_CONTROLS)
    assert "\\x1b]0;pwned\\x07" in out and "evil" in out  # shown, visibly
    session = json.loads(saved.read_text())
    assert "".join(t["text"] for t in session["lanes"][0]["tokens"]) == "Hi " + HOSTILE + " there"

    for args in (["replay", str(saved), "--print", "--speed", "0"], ["open", str(saved), "--summary"]):
        shown = run(args, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert not any(c in shown.stdout.decode() for c in RAW_CONTROLS), args
    as_json = run(["replay", str(saved), "--json", "--speed", "0"], tmp_path)
    text = as_json.stdout.decode()
    assert not any(c in text for c in RAW_CONTROLS)
    tokens = [json.loads(line) for line in text.splitlines() if '"token"' in line]
    assert "".join(t["text"] for t in tokens) == "Hi " + HOSTILE + " there"  # JSON keeps it exact


def test_a_hostile_error_message_is_one_inert_line(tmp_path):
    with FaultServer() as server:
        server.route("/v1/completions", lambda c: c.json(500, {"error": {"message": "boom" + HOSTILE + "\nsecond line"}}))
        proc = run(["generate", "--base-url", server.url + "/v1", "--api-model", "m", "hi"], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert not any(c in err for c in RAW_CONTROLS)
    assert len(err.strip().splitlines()) == 1


# --- absurd options and input ----------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--repeat-penalty", "inf"], "repeat penalty"),
        (["--repeat-penalty", "nan"], "repeat penalty"),
        (["--temp", "nan"], "temperature"),
        (["--top-k", str(2**40)], "top-k"),
        (["--repeat-last-n", str(2**33)], "repeat-last-n"),
        (["-n", str(2**32 + 5)], "max tokens"),
        (["-t", "100000"], "threads must be between 1 and"),
        (["-c", str(2**40)], "context size must be between"),
        (["-c", "100000"], "trained for; pass --ctx-beyond-train"),  # the model's own 8192
    ],
)
def test_absurd_sampler_values_are_refused_up_front(tmp_path, args, needle):
    proc = run(["generate", *args, "hi"], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_a_prompt_that_is_not_utf8(tmp_path):
    proc = run(["generate", "-n", "2"], tmp_path, stdin=b"caf\xe9 au lait")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "not valid UTF-8" in err and "0xe9" in err and "Traceback" not in err
    # the same bytes as an argument arrive as surrogates (Python's surrogateescape)
    proc = subprocess.run(playground_cmd() + ["generate", "-n", "2", b"caf\xe9".decode("utf-8", "surrogateescape")],
                          capture_output=True, timeout=60, env=subprocess_env(tmp_path))
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
