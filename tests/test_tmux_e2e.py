"""End to end: the real ``playground`` program in a real terminal (tmux), on the embedded model.

Types a prompt, presses ctrl+g, reads the screen. The expected words come from an independent
run of the engine (greedy) on the same rendered prompt, not from a recorded output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.cells import cell_len

from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import PromptSpec, render
from tests.conftest import ROOT, subprocess_env
from tests.helpers import collect
from tests.ui_harness import one_thread_engine

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WIDTH, HEIGHT = 160, 48


@pytest.fixture(scope="module")
def engine():
    yield from one_thread_engine()


class Terminal:
    """One tmux session running a command; ``screen()`` is what a person would see."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = f"pg-e2e-{uuid.uuid4().hex[:8]}"
        env = {**env, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color"}
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items() if k.startswith(("XDG_", "LANG", "LC_", "TERM", "PATH", "HOME")))
        shell = f"cd {_quote(str(ROOT))} && env {exports} {' '.join(_quote(c) for c in command)}; sleep 30"
        # A private server (own socket, no config): other tmux users cannot resize our window.
        self.tmux = ["tmux", "-L", self.name, "-f", "/dev/null", "-u"]
        # A clean environment: the test process may carry COLUMNS/LINES, which Textual obeys.
        clean = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX", "TMUX_PANE")}
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(WIDTH), "-y", str(HEIGHT), shell],
                       check=True, env=clean)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


@pytest.fixture
def terminal(tmp_path: Path):
    opened: list[Terminal] = []

    def open_(*args: str) -> Terminal:
        term = Terminal([sys.executable, "-m", "playground", "-c", "2048", "-t", "1", *args], subprocess_env(tmp_path))
        opened.append(term)
        return term

    yield open_
    for term in opened:
        term.close()


def expected_words(engine, spec: PromptSpec, n: int) -> list[str]:
    from playground.prompt_builder import chat_template_of

    rendered = render(spec, chat_template_of(engine))
    request = GenerationRequest(prompt=rendered.text, sampler=SamplerParams(greedy=True), max_tokens=n)
    _, tokens, _ = collect(engine.stream(request))
    return "".join(t.text for t in tokens).split()


def test_type_a_prompt_generate_and_read_the_screen(terminal, engine):
    term = terminal("--greedy", "-n", "12")
    term.wait_for("ready")
    text = "The capital of France is"
    term.keys(text, literal=True)
    term.wait_for(text)
    term.keys("C-g")
    screen = term.wait_for("done ·", timeout=90)
    words = expected_words(engine, PromptSpec(input=text, template="chat"), 12)  # the TUI's default
    assert words, "the model produced no words"
    completion = "\n".join(line[54:] for line in screen.splitlines())  # the right-hand panes
    found = [w for w in words[:6] if w in completion]
    assert len(found) >= min(3, len(words)), (words, screen)
    # probabilities are on screen: the inspector and the distribution view
    assert "raw p" in screen and "sampled p" in screen and "%" in screen
    assert "raw (T = 1)" in screen and "greedy" in screen
    assert "tokens 12" in screen or "end of text" in screen


def test_prompt_run_option_and_korean_text(terminal, engine):
    prompt = "한국의 수도는"
    term = terminal("--prompt", prompt, "--run", "--greedy", "-n", "8")
    screen = term.wait_for("done ·", timeout=90)
    assert prompt in screen  # wide characters are drawn whole, in the prompt pane
    lines = screen.splitlines()
    row = next(i for i, line in enumerate(lines) if prompt in line)
    # the borders on the prompt's row sit in the same cells as on the (ASCII) row below it
    assert border_cells(lines[row]) == border_cells(lines[row + 1])
    assert all(cell_len(line) <= WIDTH for line in lines)


def border_cells(line: str) -> list[int]:
    return [cell_len(line[:i]) for i, ch in enumerate(line) if ch == "│"]


def test_escape_cancels_a_long_run(terminal):
    term = terminal("--prompt", "Once upon a time there was a dragon who", "--run", "-n", "2000", "--seed", "5")
    term.wait_for("generating…", timeout=60)
    time.sleep(1.0)
    term.keys("Escape")
    screen = term.wait_for("done ·", timeout=30)
    assert "cancelled" in screen
