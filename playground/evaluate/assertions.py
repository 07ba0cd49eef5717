"""Assertions on one generated output: parsed (and checked) when a suite is read, applied per cell.

Types: ``equals`` / ``contains`` / ``icontains`` / ``regex`` compare the trimmed output, or the
answer an ``extract`` pulls out of it ("last-number", "regex:PATTERN", "json:FIELD"), with
``value`` (the case's ``expected`` when absent); ``json-valid`` and ``json-schema`` (``value``: a
schema, see ``json_schema``) parse the trimmed output (one enclosing markdown code fence is
removed); ``json-field`` compares the value at ``path`` (dotted; list indices as numbers) with
``value``; ``max-tokens`` and ``max-latency-ms`` bound the generated tokens and the wall time; ``judge`` asks
a model to grade the output (``rubric``, ``pass_threshold`` for a numeric score; run by
``evaluate.judge``, not by ``check``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from playground.compare.extract import Extractor, json_field_extractor, last_number, regex_extractor
from playground.errors import InvalidParameterError
from playground.evaluate import json_schema
from playground.evaluate.errors import SuiteError

TEXT_TYPES = ("equals", "contains", "icontains", "regex")
JSON_TYPES = ("json-valid", "json-schema", "json-field")
LIMIT_TYPES = ("max-tokens", "max-latency-ms")
MODEL_TYPES = ("judge",)
TYPES = TEXT_TYPES + JSON_TYPES + LIMIT_TYPES + MODEL_TYPES
KEYS = {"type", "value", "path", "extract", "rubric", "pass_threshold"}

#: How a text check reads in a report: (passed, failed).
_VERBS = {"equals": ("equals", "does not equal"), "contains": ("contains", "does not contain"),
          "icontains": ("contains (any case)", "does not contain (any case)"),
          "regex": ("matches", "does not match")}
_FENCE = re.compile(r"\A```[\w-]*\n(.*?)\n?```\Z", re.S)


@dataclass(frozen=True)
class Assertion:
    """One check of a case, as the suite gave it (``value`` already defaulted to ``expected``)."""

    type: str
    value: Any = None
    path: str | None = None
    extract: str | None = None
    rubric: str | None = None
    """judge: what the judge grades against (None: the ``[judge]`` table's rubric)."""
    pass_threshold: float | None = None
    """judge: a numeric score at or above it passes (None: the ``[judge]`` table's, or PASS/FAIL only)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("type", self.type), ("value", self.value), ("path", self.path),
                                  ("extract", self.extract), ("rubric", self.rubric),
                                  ("pass_threshold", self.pass_threshold)) if v is not None}


@dataclass(frozen=True)
class Output:
    """What one cell generated, as the assertions see it."""

    text: str
    n_tokens: int
    latency_ms: float | None


@dataclass(frozen=True)
class AssertResult:
    type: str
    passed: bool
    detail: str
    """Why it failed, or what it compared (short, for the report)."""
    judge: Mapping[str, Any] | None = None
    """judge: the judge's run (its text, parsed verdict or score, the verdict token's probability)."""

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.type, "pass": self.passed, "detail": self.detail}
        if self.judge is not None:
            out["judge"] = dict(self.judge)
        return out


def make_extractor(spec: str) -> Extractor:
    """"last-number", "regex:PATTERN" or "json:FIELD" as an extractor (InvalidParameterError if bad)."""
    if spec == "last-number":
        return last_number
    kind, _, arg = spec.partition(":")
    if kind == "regex" and arg:
        return regex_extractor(arg)
    if kind == "json" and arg:
        return json_field_extractor(arg)
    raise InvalidParameterError('must be "last-number", "regex:PATTERN" or "json:FIELD"')


def parse_assertion(raw: Any, expected: str | None, place: str) -> Assertion:
    """One ``assert`` entry, checked; ``place`` prefixes the one-line error (file, case, index)."""
    def fail(field: str, problem: str) -> SuiteError:
        return SuiteError(f"{place}: '{field}' {problem}")

    if not isinstance(raw, Mapping):
        raise SuiteError(f"{place}: must be a table like {{ type = \"equals\" }}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise fail(unknown[0], f"is not an assertion field (known: {', '.join(sorted(KEYS))})")
    kind = raw.get("type")
    if kind not in TYPES:
        raise fail("type", f"must be one of {', '.join(TYPES)} (got {kind!r})")
    value, path, extract = raw.get("value"), raw.get("path"), raw.get("extract")
    if extract is not None:
        if kind not in TEXT_TYPES:
            raise fail("extract", f"applies only to {', '.join(TEXT_TYPES)}")
        if not isinstance(extract, str):
            raise fail("extract", "must be a string")
        try:
            make_extractor(extract)
        except InvalidParameterError as exc:
            raise fail("extract", exc.message) from None
    if path is not None and kind != "json-field":
        raise fail("path", "applies only to json-field")
    rubric, threshold = raw.get("rubric"), raw.get("pass_threshold")
    if kind != "judge" and (rubric is not None or threshold is not None):
        raise fail("rubric" if rubric is not None else "pass_threshold", "applies only to judge")
    if kind == "judge":
        if value is not None:
            raise fail("value", "is not used by judge (give 'rubric')")
        if rubric is not None and not (isinstance(rubric, str) and rubric.strip()):
            raise fail("rubric", "must be a non-empty string")
        if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)):
            raise fail("pass_threshold", "must be a number")
        return Assertion(kind, rubric=rubric, pass_threshold=None if threshold is None else float(threshold))
    if kind in TEXT_TYPES or kind == "json-field":
        if value is None:
            value = expected
        if value is None:
            raise fail("value", f"is needed for {kind} when the case has no 'expected'")
    if kind in TEXT_TYPES:
        if not isinstance(value, str):
            raise fail("value", "must be a string")
        if kind == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise fail("value", f"is not a valid regular expression: {exc}") from None
    elif kind == "json-field":
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            raise fail("path", "must be a dotted path like \"answer\" or \"result.items.0\"")
    elif kind == "json-schema":
        problem = json_schema.check_schema(value, "value")
        if problem is not None:
            raise SuiteError(f"{place}: {problem}")
    elif kind == "json-valid":
        if value is not None:
            raise fail("value", "is not used by json-valid")
    elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise fail("value", f"must be a number >= 0 for {kind}")
    return Assertion(kind, value, path, extract)


def parse_json(text: str) -> tuple[bool, Any, str]:
    """(ok, value, error) of the trimmed text as JSON, one enclosing ``` fence removed."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return True, json.loads(text), ""
    except json.JSONDecodeError as exc:
        return False, None, f"not JSON: {exc.msg} at character {exc.pos}"


def lookup(value: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted path in parsed JSON (list indices as numbers)."""
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            return False, None
    return True, value


def _short(text: str | None, n: int = 60) -> str:
    if text is None:
        return "no answer"
    return repr(text if len(text) <= n else text[: n - 1] + "…")


def _text_check(a: Assertion, out: Output) -> AssertResult:
    subject = make_extractor(a.extract)(out.text) if a.extract else out.text.strip()
    if subject is None:
        return AssertResult(a.type, False, f"{a.extract} found no answer")
    tests: dict[str, Callable[[str, str], bool]] = {
        "equals": lambda s, v: s == v,
        "contains": lambda s, v: v in s,
        "icontains": lambda s, v: v.casefold() in s.casefold(),
        "regex": lambda s, v: re.search(v, s) is not None,
    }
    ok = tests[a.type](subject, a.value)
    verb = _VERBS[a.type][0 if ok else 1]
    return AssertResult(a.type, ok, f"{_short(subject)} {verb} {a.value!r}")


def check(a: Assertion, out: Output) -> AssertResult:
    """Apply one assertion to one output (not ``judge``: that one needs a model run)."""
    if a.type in MODEL_TYPES:
        raise ValueError(f"{a.type} assertions are run by evaluate.judge")
    if a.type in TEXT_TYPES:
        return _text_check(a, out)
    if a.type == "max-tokens":
        ok = out.n_tokens <= a.value
        return AssertResult(a.type, ok, f"{out.n_tokens} tokens {'<=' if ok else '>'} {a.value}")
    if a.type == "max-latency-ms":
        if out.latency_ms is None:
            return AssertResult(a.type, False, "no latency measured")
        ok = out.latency_ms <= a.value
        return AssertResult(a.type, ok, f"{out.latency_ms:.0f} ms {'<=' if ok else '>'} {a.value}")
    ok, value, error = parse_json(out.text)
    if not ok:
        return AssertResult(a.type, False, error)
    if a.type == "json-valid":
        return AssertResult(a.type, True, "valid JSON")
    if a.type == "json-schema":
        problem = json_schema.validate(value, a.value)
        return AssertResult(a.type, problem is None, problem or "matches the schema")
    found, field = lookup(value, a.path or "")
    if not found:
        return AssertResult(a.type, False, f"no field {a.path}")
    ok = json_schema.same(field, a.value)
    return AssertResult(a.type, ok, f"{a.path} = {json.dumps(field, ensure_ascii=False)[:60]}"
                        + ("" if ok else f", not {json.dumps(a.value, ensure_ascii=False)}"))
