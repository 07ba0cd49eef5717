"""The core never imports Textual (checked in a clean subprocess per module)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import playground

CORE_EXCLUDED = ("playground.ui",)


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(playground.__path__, "playground."):
        if not info.name.startswith(CORE_EXCLUDED) and info.name != "playground.__main__":
            names.append(info.name)
    return names


def test_there_are_core_modules():
    mods = core_modules()
    assert "playground.engine.generator" in mods and "playground.params" in mods


def test_core_never_imports_textual():
    mods = core_modules()
    code = (
        "import importlib, sys\n"
        f"bad = []\n"
        f"for name in {mods!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'textual' in sys.modules:\n"
        "        bad.append(name); break\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
