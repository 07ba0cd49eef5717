"""Prompt variants: a whole prompt setup per lane, read from ``[[variant]]`` tables.

```toml
[[variant]]
name = "3-shot"
instruction = "Classify the review."      # or: system = "...", turns = [{ role = "user", content = ".." }]
input = "The battery died."
examples = [{ input = "..", output = "..", enabled = true }]
template = "chat"                          # or "plain"
temp = 0.7                                 # sampler keys as --lane names them
backend = "myserver"                       # or model = "other.gguf": where the lane runs
```
A variant with ``turns`` is a conversation; otherwise its parts are structured (instruction,
context, examples, input). ``lane_label`` says in a few words how a variant differs from another.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from playground.compare.lane_spec import LaneSpec, parse_lane
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import ChatTemplate, Example, PromptSpec, RenderedPrompt, parse_turns, render

PROMPT_KEYS = ("instruction", "context", "input", "system", "example_format")
SAMPLER_KEYS = ("temp", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "greedy")
VARIANT_KEYS = {"name", "turns", "examples", "template", "backend", "model", *PROMPT_KEYS, *SAMPLER_KEYS}


@dataclass(frozen=True)
class Variant:
    """One lane's prompt setup: prompt parts or a conversation, examples, template, sampler, target."""

    name: str
    prompt: PromptSpec
    sampler_changes: Mapping[str, Any] = field(default_factory=dict)
    """Sampler settings over the command line's, spelled as ``--lane`` spells them."""
    backend: str | None = None
    model: str | None = None

    def lane(self, base: SamplerParams) -> LaneSpec:
        """The lane spec: ``base`` with this variant's sampler changes, and its target."""
        spec = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.sampler_changes.items())
        lane = parse_lane(spec, base)
        return replace(lane, backend=self.backend, model=self.model)

    def rendered(self, template: ChatTemplate | None) -> RenderedPrompt:
        return render(self.prompt, template)

    def request(self, base: GenerationRequest, template: ChatTemplate | None) -> GenerationRequest:
        """``base`` (limits, stops) with this variant's rendered prompt and sampler."""
        shown = self.rendered(template)
        return replace(base, prompt=shown.text, add_special=shown.add_special, messages=shown.messages,
                       sampler=self.lane(base.sampler).sampler)


def parse_variant(table: Mapping[str, Any], place: str, default_template: str = "plain") -> Variant:
    """One ``[[variant]]`` table; InvalidParameterError naming ``place`` and the field."""
    unknown = sorted(set(table) - VARIANT_KEYS)
    if unknown:
        raise InvalidParameterError(f"{place}: '{unknown[0]}' is not a variant field (known: {', '.join(sorted(VARIANT_KEYS))})")
    changes: dict[str, Any] = {}
    for key in PROMPT_KEYS:
        if key in table:
            if not isinstance(table[key], str):
                raise InvalidParameterError(f"{place}: '{key}' must be a string")
            changes[key] = table[key]
    if "turns" in table:
        try:
            changes["turns"] = parse_turns(table["turns"])
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{place}: 'turns': {exc.message}") from None
        changes["mode"] = "conversation"
    template = table.get("template", "chat" if "turns" in table or "system" in table else default_template)
    if template not in ("chat", "plain"):
        raise InvalidParameterError(f"{place}: 'template' must be \"chat\" or \"plain\" (got {template!r})")
    examples = table.get("examples", [])
    if not isinstance(examples, list):
        raise InvalidParameterError(f"{place}: 'examples' must be a list of {{ input, output, enabled }}")
    parsed = []
    for i, item in enumerate(examples):
        if not (isinstance(item, Mapping) and {"input", "output"} <= set(item) <= {"input", "output", "enabled"}
                and isinstance(item["input"], str) and isinstance(item["output"], str)
                and isinstance(item.get("enabled", True), bool)):
            raise InvalidParameterError(f"{place}: 'examples' item {i} must be {{ input = \"..\", output = \"..\", enabled = true }}")
        parsed.append(Example(item["input"], item["output"], item.get("enabled", True)))
    sampler = {key: table[key] for key in SAMPLER_KEYS if key in table}
    for key in ("backend", "model"):
        if key in table and not (isinstance(table[key], str) and table[key]):
            raise InvalidParameterError(f"{place}: '{key}' must be a non-empty string")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"{place}: 'name' must be a non-empty string")
    variant = Variant(name, PromptSpec(template=template, examples=tuple(parsed), **changes), sampler,
                      table.get("backend"), table.get("model"))
    try:
        variant.lane(SamplerParams())
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{place}: {exc.message}") from None
    return variant


def load_variants(path: str | Path, default_template: str = "plain") -> list[Variant]:
    """The variants of a TOML file of ``[[variant]]`` tables (names unique)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidParameterError(f"{path}: cannot read it ({exc})") from None
    raw = data.get("variant")
    if not isinstance(raw, list) or not raw or set(data) != {"variant"}:
        raise InvalidParameterError(f"{path.name}: a variants file holds [[variant]] tables only, at least one")
    variants: list[Variant] = []
    for i, table in enumerate(raw):
        table = dict(table) if isinstance(table, Mapping) else table
        if not isinstance(table, dict):
            raise InvalidParameterError(f"{path.name}: variant {i}: must be a table")
        table.setdefault("name", f"variant {i}")
        variant = parse_variant(table, f"{path.name}: variant {i}", default_template)
        if variant.name in {v.name for v in variants}:
            raise InvalidParameterError(f"{path.name}: variant {i}: the name {variant.name!r} is used twice")
        variants.append(variant)
    return variants


def _text_change(field_name: str, mine: str, theirs: str) -> str | None:
    if mine == theirs:
        return None
    if mine.startswith(theirs) and theirs:
        added = mine[len(theirs):].split()
        return "+" + " ".join(added[:2]) + ("…" if len(added) > 2 else "")
    if not theirs:
        return f"+{field_name}"
    if not mine:
        return f"-{field_name}"
    return f"{field_name}≠"


def lane_label(variant: Variant, reference: Variant, base: SamplerParams = SamplerParams()) -> str:
    """How ``variant`` differs from ``reference`` (lane 1) in a few words: "3-shot", "+Think step…",
    "T=1.2", "@myserver"; "same" when nothing differs."""
    a, b = variant.prompt, reference.prompt
    parts: list[str] = []
    if a.mode != b.mode:
        parts.append(a.mode)
    if a.shots != b.shots:
        parts.append({0: "zero-shot", 1: "1-shot"}.get(a.shots, f"{a.shots}-shot"))
    elif a.examples != b.examples:
        parts.append("examples≠")
    for name in ("system", "instruction", "context", "input"):
        change = _text_change(name, getattr(a, name), getattr(b, name))
        if change:
            parts.append(change if name != "system" or getattr(a, name) else "default system")
    if a.turns != b.turns:
        parts.append(f"{len(a.turns)} turns")
    if a.template != b.template:
        parts.append(a.template)
    mine, theirs = variant.lane(base).sampler, reference.lane(base).sampler
    names = {"temperature": "T", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "seed": "seed",
             "repeat_penalty": "rep", "repeat_last_n": "rep_n", "greedy": "greedy"}
    for key, short in names.items():
        if getattr(mine, key) != getattr(theirs, key):
            parts.append(f"{short}={getattr(mine, key):g}" if not isinstance(getattr(mine, key), bool)
                         else f"{short}={str(getattr(mine, key)).lower()}")
    if (variant.backend, variant.model) != (reference.backend, reference.model):
        parts.append(f"@{variant.backend}" if variant.backend else f"model={Path(variant.model).name}" if variant.model else "local")
    return ", ".join(parts[:4]) + (" …" if len(parts) > 4 else "") if parts else "same"


def prompt_diff(reference: str, other: str, names: tuple[str, str] = ("lane 1", "lane")) -> str:
    """The full unified diff of two rendered prompts (empty when they are equal)."""
    return "".join(difflib.unified_diff(reference.splitlines(keepends=True), other.splitlines(keepends=True),
                                        fromfile=names[0], tofile=names[1]))
