"""The README's promise: its test command is what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme
    assert "pytest" in command


def test_readme_has_a_launch_command():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/pip install -e . && .venv/bin/playground" in readme
