"""Prompt variants: the same cases rendered another way (``--variants FILE.toml``).

```toml
[[variant]]
name = "terse"
instruction = "Answer with one word."    # any prompt field of [suite]: template, context, examples, ...
lane = "temp=0.7,seed=3"                 # optional sampler overrides, as compare's --lane (local only)
```
Without a variants file the suite's own prompt is the one variant, named after the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from playground.compare.lane_spec import parse_lane_spec
from playground.errors import InvalidParameterError
from playground.evaluate.errors import SuiteError
from playground.evaluate.suite import PromptFields, Suite, parse_prompt_fields, read_toml
from playground.params import SamplerParams

VARIANT_KEYS = {"name", "lane", "template", "instruction", "context", "examples", "example_format", "answer_prefix"}


@dataclass(frozen=True)
class Variant:
    name: str
    prompt: PromptFields
    lane: str | None = None
    """Sampler overrides (``temp=0,top_k=40``) over the command line's sampler."""

    def sampler(self, base: SamplerParams) -> SamplerParams:
        """``base`` (the command line's sampler) with this variant's overrides."""
        return parse_lane_spec(self.lane, base) if self.lane else base


def default_variants(suite: Suite) -> list[Variant]:
    return [Variant(suite.name, suite.prompt)]


def shot_variants(variant: Variant) -> list[Variant]:
    """Few-shot ablation: ``variant`` with its first 0, 1, .. k examples (k: all of them), named
    "0-shot", "1-shot", ...; SuiteError when it has no examples."""
    examples = variant.prompt.examples
    if not examples:
        raise SuiteError(f"variant '{variant.name}' has no examples to ablate (give 'examples' in [suite] or the variant)")
    return [Variant(f"{n}-shot", replace(variant.prompt, examples=examples[:n]), variant.lane)
            for n in range(len(examples) + 1)]


def load_variants(path: str | Path, suite: Suite) -> list[Variant]:
    """The variants of a file, each over the suite's prompt fields; SuiteError on any problem."""
    path = Path(path)
    data = read_toml(path)
    raw = data.get("variant")
    if not isinstance(raw, list) or not raw or set(data) != {"variant"}:
        raise SuiteError(f"{path.name}: a variants file holds [[variant]] tables only, at least one")
    variants: list[Variant] = []
    for i, table in enumerate(raw):
        place = f"{path.name}: variant {i}"
        if not isinstance(table, Mapping):
            raise SuiteError(f"{place}: must be a table")
        unknown = sorted(set(table) - VARIANT_KEYS)
        if unknown:
            raise SuiteError(f"{place}: '{unknown[0]}' is not a variant field (known: {', '.join(sorted(VARIANT_KEYS))})")
        name = table.get("name", f"variant {i}")
        if not isinstance(name, str) or not name or name in {v.name for v in variants}:
            raise SuiteError(f"{place}: 'name' must be a non-empty string, different for each variant")
        lane = table.get("lane")
        if lane is not None:
            if not isinstance(lane, str):
                raise SuiteError(f"{place}: 'lane' must be a string like \"temp=0,top_k=40\"")
            try:
                parse_lane_spec(lane, SamplerParams())  # sampler keys only: scores need the local model
            except InvalidParameterError as exc:
                raise SuiteError(f"{place}: 'lane': {exc.message}") from None
        variants.append(Variant(name, parse_prompt_fields(table, place, suite.prompt), lane))
    return variants
