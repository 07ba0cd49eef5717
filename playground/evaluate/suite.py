"""The suite file: TOML with a ``[suite]`` table and ``[[case]]`` tables, or cases from JSONL or CSV.

```toml
[suite]
name = "review sentiment"
template = "chat"                  # or "plain"; chat (the model's template) by default
instruction = "Answer with one word."     # optional: the system turn (chat) or first block (plain)
context = ""                       # optional background, after the instruction
examples = [{ input = "..", output = ".." }]   # optional few-shot examples
example_format = "Input: {input}\\nOutput: {output}"   # plain mode's layout
answer_prefix = " "                # text before the expected answer when scoring (default: "" for
                                   # chat, " " for plain, whose prompt ends in "Output:")
max_tokens = 16                    # optional generation limit (-n overrides it)
cases = ["more-cases.csv"]         # optional: case files (.jsonl, .csv), relative to this file
                                   # ("import" is the older name of the same key)
assert = [{ type = "contains" }]   # optional: the assertions of every case that gives none
[judge]                            # optional: the model-graded assertion's setup (see judge.py)
[[case]]
input = "The battery died after two days."   # or vars = { input = "..", context = ".." }
expected = "negative"
choices = ["positive", "negative", "neutral"]
assert = [{ type = "equals" }]
```

A JSONL file holds one case object per line with the same fields. A CSV file has a header row of
column names: ``input``, ``expected``, ``choices`` (separated by ``|``), ``id``, ``assert`` (JSON,
or one type name such as ``contains``) and ``vars.input`` / ``vars.context`` / ``vars.instruction``;
an empty cell is an absent field. Either can be run on its own (a suite with the defaults above)
or replace a suite's cases (``--cases FILE``). Every problem is one line naming the file, the case
(or line) and the field.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from playground.evaluate.assertions import Assertion, parse_assertion
from playground.evaluate.errors import SuiteError

SUITE_KEYS = {"name", "template", "instruction", "context", "examples", "example_format", "answer_prefix",
              "max_tokens", "import", "cases", "assert"}
CASE_FILES = (".jsonl", ".csv")
CSV_COLUMNS = ("input", "expected", "choices", "id", "assert", "vars.input", "vars.context", "vars.instruction")
CHOICE_SEPARATOR = "|"
CASE_KEYS = {"input", "vars", "expected", "choices", "assert", "id"}
VAR_KEYS = {"input", "context", "instruction"}
DEFAULT_FORMAT = "Input: {input}\nOutput: {output}"
#: Cases in one suite, all files together: a guard against a runaway import, not a real limit.
MAX_CASES = 100_000


@dataclass(frozen=True)
class PromptFields:
    """How a case's input becomes a prompt: the suite's defaults, or a variant's."""

    template: str = "chat"
    instruction: str = ""
    context: str = ""
    examples: tuple[tuple[str, str], ...] = ()
    example_format: str = DEFAULT_FORMAT
    answer_prefix: str | None = None
    """None: "" for chat, " " for plain."""

    @property
    def prefix(self) -> str:
        if self.answer_prefix is not None:
            return self.answer_prefix
        return "" if self.template == "chat" else " "


@dataclass(frozen=True)
class Case:
    index: int
    vars: Mapping[str, str]
    """``input`` always; ``context`` and ``instruction`` when the case overrides the suite's."""
    expected: str | None = None
    choices: tuple[str, ...] | None = None
    asserts: tuple[Assertion, ...] = ()
    id: str | None = None
    source: str = ""
    """Where it was read: "suite.toml: case 3" or "cases.jsonl: line 7"."""


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    prompt: PromptFields = field(default_factory=PromptFields)
    max_tokens: int | None = None
    cases: tuple[Case, ...] = ()
    judge: Mapping[str, Any] | None = None
    """The ``[judge]`` table as written (``evaluate.judge.parse_judge`` checks it)."""


def _str(value: Any, place: str, key: str) -> str:
    if not isinstance(value, str):
        raise SuiteError(f"{place}: '{key}' must be a string")
    return value


def parse_prompt_fields(table: Mapping[str, Any], place: str, base: PromptFields = PromptFields()) -> PromptFields:
    """The prompt fields of a ``[suite]`` (or ``[[variant]]``) table over ``base``."""
    changes: dict[str, Any] = {}
    for key in ("instruction", "context", "example_format", "answer_prefix"):
        if key in table:
            changes[key] = _str(table[key], place, key)
    if "template" in table:
        if table["template"] not in ("chat", "plain"):
            raise SuiteError(f"{place}: 'template' must be \"chat\" or \"plain\" (got {table['template']!r})")
        changes["template"] = table["template"]
    if "example_format" in changes and "{input}" not in changes["example_format"]:
        raise SuiteError(f"{place}: 'example_format' must contain {{input}}")
    if "examples" in table:
        raw = table["examples"]
        if not isinstance(raw, list):
            raise SuiteError(f"{place}: 'examples' must be a list of {{ input = .., output = .. }}")
        examples = []
        for i, item in enumerate(raw):
            if not (isinstance(item, Mapping) and set(item) == {"input", "output"}
                    and all(isinstance(v, str) for v in item.values())):
                raise SuiteError(f"{place}: 'examples' item {i} must be {{ input = \"..\", output = \"..\" }}")
            examples.append((item["input"], item["output"]))
        changes["examples"] = tuple(examples)
    return replace(base, **changes)


def parse_case(raw: Any, index: int, place: str, default_asserts: Any = None) -> Case:
    """One case (a TOML table or a JSON object), checked; ``default_asserts`` (the suite's
    ``assert``) apply when the case gives none."""
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{place}: must be a table (TOML) or an object (JSONL)")
    unknown = sorted(set(raw) - CASE_KEYS)
    if unknown:
        raise SuiteError(f"{place}: '{unknown[0]}' is not a case field (known: {', '.join(sorted(CASE_KEYS))})")
    variables: dict[str, str] = {}
    if "vars" in raw:
        if not isinstance(raw["vars"], Mapping):
            raise SuiteError(f"{place}: 'vars' must be a table like {{ input = \"..\" }}")
        for key, value in raw["vars"].items():
            if key not in VAR_KEYS:
                raise SuiteError(f"{place}: 'vars.{key}' is not known (known: {', '.join(sorted(VAR_KEYS))})")
            variables[key] = _str(value, place, f"vars.{key}")
    if "input" in raw:
        if "input" in variables:
            raise SuiteError(f"{place}: 'input' is given twice (top level and in vars)")
        variables["input"] = _str(raw["input"], place, "input")
    if "input" not in variables:
        raise SuiteError(f"{place}: 'input' is missing (give input = \"..\" or vars = {{ input = \"..\" }})")
    expected = _str(raw["expected"], place, "expected") if "expected" in raw else None
    if expected is not None and not expected:
        raise SuiteError(f"{place}: 'expected' is empty")
    choices = None
    if "choices" in raw:
        value = raw["choices"]
        if not (isinstance(value, list) and len(value) >= 2 and all(isinstance(c, str) and c for c in value)):
            raise SuiteError(f"{place}: 'choices' must be a list of at least two non-empty strings")
        if len(set(value)) != len(value):
            raise SuiteError(f"{place}: 'choices' has the same choice twice")
        if expected is not None and expected not in value:
            raise SuiteError(f"{place}: 'expected' ({expected!r}) is not one of the choices")
        choices = tuple(value)
    asserts_raw = raw.get("assert", default_asserts if default_asserts is not None else [])
    if isinstance(asserts_raw, Mapping):
        asserts_raw = [asserts_raw]
    if not isinstance(asserts_raw, list):
        raise SuiteError(f"{place}: 'assert' must be a list of tables like {{ type = \"equals\" }}")
    asserts = tuple(parse_assertion(a, expected, f"{place}: assert {i}") for i, a in enumerate(asserts_raw))
    case_id = raw.get("id")
    if case_id is not None and not isinstance(case_id, (str, int)):
        raise SuiteError(f"{place}: 'id' must be a string or a number")
    return Case(index, variables, expected, choices, asserts, None if case_id is None else str(case_id), place)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not data
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.__class__.__name__}: {exc})") from None


def read_jsonl(path: Path, first_index: int, default_asserts: Any = None) -> list[Case]:
    """The cases of a JSONL file, one object per non-blank line."""
    lines = _read_text(path).splitlines()
    cases = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        place = f"{path.name}: line {n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{place}: not JSON ({exc.msg} at column {exc.colno})") from None
        cases.append(parse_case(raw, first_index + len(cases), place, default_asserts))
    return cases


def _csv_assert(text: str, place: str) -> Any:
    """An ``assert`` cell: JSON (a list or one object), or one assertion type by name."""
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{place}: 'assert' is not JSON ({exc.msg} at column {exc.colno})") from None
    return [{"type": text.strip()}]


def csv_row_case(row: Mapping[str, str], index: int, place: str, default_asserts: Any = None) -> Case:
    """One CSV row (column name -> cell) as a case; empty cells are absent fields."""
    raw: dict[str, Any] = {}
    for column, cell in row.items():
        if cell == "" and column != "input":
            continue
        if column.startswith("vars."):
            raw.setdefault("vars", {})[column[len("vars."):]] = cell
        elif column == "choices":
            raw["choices"] = [c.strip() for c in cell.split(CHOICE_SEPARATOR)]
        elif column == "assert":
            raw["assert"] = _csv_assert(cell, place)
        else:
            raw[column] = cell
    return parse_case(raw, index, place, default_asserts)


def read_csv(path: Path, first_index: int, default_asserts: Any = None) -> list[Case]:
    """The cases of a CSV file: a header row of ``CSV_COLUMNS`` names, then one case per row."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    while True:
        first = reader.line_num + 1  # a quoted cell may span lines: a row is named by its first
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise SuiteError(f"{path.name}: line {reader.line_num}: not CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            rows.append((first, row))
    if not rows:
        return []
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    for name in header:
        if name not in CSV_COLUMNS:
            raise SuiteError(f"{path.name}: line {header_line}: column {name!r} is not known "
                             f"(known: {', '.join(CSV_COLUMNS)})")
    if len(set(header)) != len(header):
        raise SuiteError(f"{path.name}: line {header_line}: a column is named twice")
    if "input" not in header and "vars.input" not in header:
        raise SuiteError(f"{path.name}: line {header_line}: no 'input' column")
    cases = []
    for line, row in rows[1:]:
        place = f"{path.name}: line {line}"
        if len(row) != len(header):
            raise SuiteError(f"{place}: {len(row)} cells, but the header names {len(header)} columns")
        cases.append(csv_row_case(dict(zip(header, row)), first_index + len(cases), place, default_asserts))
        if len(cases) > MAX_CASES:
            raise SuiteError(f"{path.name}: more than {MAX_CASES} cases")
    return cases


def read_case_file(path: Path, first_index: int = 0, default_asserts: Any = None) -> list[Case]:
    """The cases of a ``.jsonl`` or ``.csv`` file (SuiteError for another kind)."""
    if path.suffix == ".csv":
        return read_csv(path, first_index, default_asserts)
    if path.suffix == ".jsonl":
        return read_jsonl(path, first_index, default_asserts)
    raise SuiteError(f"{path.name}: a case file is .jsonl or .csv")


def read_toml(path: Path) -> dict:
    """A suite or variants file's tables; SuiteError naming the file when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path.name}: not valid TOML ({exc})") from None
    except RecursionError:
        raise SuiteError(f"{path.name}: nested too deeply") from None


def load_suite(path: str | Path, *, cases: str | Path | None = None) -> Suite:
    """Read and check a suite (``.toml``) or a case file (``.jsonl``, ``.csv``); SuiteError on any
    problem. ``cases``: a case file that replaces the suite's own cases (``--cases``)."""
    path = Path(path)
    if path.suffix in CASE_FILES:
        found = read_case_file(path)
        if not found:
            raise SuiteError(f"{path.name}: no cases")
        return _with_cases(Suite(path.stem, str(path), cases=tuple(found)), cases)
    data = read_toml(path)
    unknown = sorted(set(data) - {"suite", "case", "judge"})
    if unknown:
        raise SuiteError(f"{path.name}: '{unknown[0]}' is not a suite section (use [suite], [[case]] and [judge])")
    judge = data.get("judge")
    if judge is not None and not isinstance(judge, Mapping):
        raise SuiteError(f"{path.name}: 'judge' must be a table ([judge])")
    head = data.get("suite", {})
    if not isinstance(head, Mapping):
        raise SuiteError(f"{path.name}: 'suite' must be a table ([suite])")
    place = f"{path.name}: [suite]"
    unknown = sorted(set(head) - SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{place}: '{unknown[0]}' is not a suite field (known: {', '.join(sorted(SUITE_KEYS))})")
    prompt = parse_prompt_fields(head, place)
    max_tokens = head.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise SuiteError(f"{place}: 'max_tokens' must be a whole number >= 1")
    default_asserts = head.get("assert")
    if isinstance(default_asserts, Mapping):
        default_asserts = [default_asserts]
    if default_asserts is not None and not isinstance(default_asserts, list):
        raise SuiteError(f"{place}: 'assert' must be a list of tables like {{ type = \"equals\" }}")
    raw_cases = data.get("case", [])
    if not isinstance(raw_cases, list):
        raise SuiteError(f"{path.name}: 'case' must be an array of tables ([[case]])")
    found = [parse_case(raw, i, f"{path.name}: case {i}", default_asserts) for i, raw in enumerate(raw_cases)]
    for key in ("import", "cases"):
        files = head.get(key, [])
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
            raise SuiteError(f"{place}: '{key}' must be a file name or a list of them")
        for name in files:
            file = path.parent / name
            if file.suffix not in CASE_FILES:
                raise SuiteError(f"{place}: '{key}' {name!r}: only .jsonl or .csv case files can be imported")
            found += read_case_file(file, len(found), default_asserts)
            if len(found) > MAX_CASES:
                raise SuiteError(f"{place}: more than {MAX_CASES} cases")
    name = head.get("name", path.stem)
    suite = Suite(_str(name, place, "name"), str(path), prompt, max_tokens, tuple(found), judge)
    if cases is not None:
        return _with_cases(suite, cases, default_asserts)
    if not found:
        raise SuiteError(f"{path.name}: no cases (add [[case]] tables or 'cases' = a JSONL or CSV file)")
    return suite


def _with_cases(suite: Suite, path: str | Path | None, default_asserts: Any = None) -> Suite:
    """``suite`` with the cases of ``path`` instead of its own (unchanged when ``path`` is None)."""
    if path is None:
        return suite
    path = Path(path)
    found = read_case_file(path, 0, default_asserts)
    if not found:
        raise SuiteError(f"{path.name}: no cases")
    return replace(suite, cases=tuple(found))
