"""The core never imports Textual (checked in a clean subprocess per module)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import playground

import import_graph

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


def test_the_app_starts_without_loading_llama_cpp():
    """Importing llama_cpp holds the GIL for a quarter of a second: the TUI's first paint must not
    wait for it (the model loader thread imports it)."""
    code = "import sys, playground.ui.app; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --- layers: imports point down only, and no module imports itself through others ----------------
# Rank of each part of the package, top first. A module may import modules of its own part or of a
# part ranked lower (a larger number); parts of one rank must not import each other in a circle.
LAYERS: dict[str, int] = {
    "playground.__main__": 0, "playground.cli": 0,
    "playground.commands": 1, "playground.cli_options": 1,
    "playground.ui": 2,
    "playground.compare": 3, "playground.sessions": 3, "playground.evaluate": 3, "playground.workspace": 3,
    "playground.backends": 4,
    "playground.engine_options": 5,
    "playground.engine": 6,
    # pure helpers that the layers above share
    "playground.config": 7, "playground.themes": 7, "playground.prompt_builder": 7, "playground.sampling": 7,
    "playground.model_file": 7, "playground.locations": 7, "playground.jsonlines": 7,
    "playground.stream_guard": 7, "playground.terminal_text": 7, "playground.transcript": 7, "playground.atomic_file": 7,
    "playground.json_schema": 8, "playground.constraint": 8,  # params holds a Constraint
    "playground.events": 8, "playground.params": 8, "playground.errors": 8, "playground.cores": 8,
    "playground": 9,
}


def part_of(module: str) -> str:
    """The LAYERS key a module belongs to (its longest listed prefix)."""
    best = max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len, default=None)
    assert best is not None, f"{module} is in no layer: add its part to LAYERS"
    return best


def test_every_module_has_a_layer():
    for name in import_graph.modules():
        part_of(name)


def test_imports_point_down_only():
    upward = []
    for module, targets in import_graph.graph().items():
        mine = part_of(module)
        for target in targets:
            theirs = part_of(target)
            if theirs != mine and LAYERS[theirs] < LAYERS[mine]:
                upward.append(f"{module} ({mine}) imports {target} ({theirs}), a higher layer")
    assert upward == []


def test_no_import_circles():
    assert import_graph.cycles(import_graph.graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks themselves can fail: a made-up graph with both faults."""
    edges = {"playground.engine.a": {"playground.compare.b"}, "playground.compare.b": {"playground.engine.a"}}
    assert import_graph.cycles(edges) == [["playground.compare.b", "playground.engine.a"]]
    assert LAYERS[part_of("playground.compare.b")] < LAYERS[part_of("playground.engine.a")]
