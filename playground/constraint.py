"""Structured output: what a completion must look like (a JSON schema, a GBNF grammar, a choice
list), and the check of a finished output against it.

Pure: nothing here needs the model. Turning a constraint into the grammar llama.cpp runs lives in
``engine/constraint.py`` (the JSON-schema converter and the grammar parser are llama.cpp's); what a
remote server is sent lives in ``backends/constraints.py``. Only the choice list is compiled here,
since its grammar is a plain alternation of escaped literals that both need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from playground import json_schema
from playground.errors import InvalidParameterError

ConstraintKind = Literal["json_schema", "grammar", "choices"]
KINDS: tuple[str, ...] = ("json_schema", "grammar", "choices")

#: A choice list of the CLI: ``--choices "positive|negative|neutral"``.
CHOICE_SEPARATOR = "|"
#: Bigger sources are refused before anything parses them (a grammar is text a person writes).
MAX_SOURCE = 1 << 20


def bad_constraint(message: str) -> InvalidParameterError:
    """The error of a constraint that cannot be used: an InvalidParameterError titled "Constraint"."""
    return InvalidParameterError(message, title="Constraint")


@dataclass(frozen=True)
class Constraint:
    """The shape the output must take.

    Attributes:
        kind: ``json_schema`` (``source`` is the schema's JSON text), ``grammar`` (``source`` is
            GBNF text with a ``root`` rule) or ``choices`` (the output is exactly one of
            ``choices``; ``source`` is their ``|``-joined form, for display and sessions).
        source: the text as given.
        choices: the alternatives (``choices`` only), in order, non-empty, without duplicates.
    """

    kind: ConstraintKind
    source: str
    choices: tuple[str, ...] = ()

    @classmethod
    def json_schema(cls, source: str) -> "Constraint":
        return cls("json_schema", source).validate()

    @classmethod
    def grammar(cls, source: str) -> "Constraint":
        return cls("grammar", source).validate()

    @classmethod
    def of_choices(cls, choices: tuple[str, ...] | list[str] | str) -> "Constraint":
        """From a list, or from one ``|``-separated string (as ``--choices`` gives it)."""
        items = tuple(choices.split(CHOICE_SEPARATOR)) if isinstance(choices, str) else tuple(choices)
        return cls("choices", CHOICE_SEPARATOR.join(items), items).validate()

    def validate(self) -> "Constraint":
        """Raise InvalidParameterError for what can be known wrong without the model; return self.

        A schema must be a JSON object (llama.cpp's converter is run later, in the engine); a
        grammar's syntax is checked by llama.cpp's parser when the engine compiles it.
        """
        if self.kind not in KINDS:
            raise bad_constraint(f"constraint kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise bad_constraint(f"the {self.label} is empty")
        if len(self.source) > MAX_SOURCE:
            raise bad_constraint(f"the {self.label} is longer than {MAX_SOURCE} characters")
        if "\x00" in self.source:
            raise bad_constraint(f"the {self.label} contains a NUL character")
        if self.kind == "json_schema":
            self.schema()  # raises with the line and column
        elif self.kind == "choices":
            if not self.choices or any(not isinstance(c, str) for c in self.choices):
                raise bad_constraint("give at least one choice")
            if any(c == "" for c in self.choices):
                raise bad_constraint("a choice must not be empty (two '|' in a row, or one at an end?)")
            seen: set[str] = set()
            for c in self.choices:
                if c in seen:
                    raise bad_constraint(f"the choice {c!r} is given twice")
                seen.add(c)
        return self

    @property
    def label(self) -> str:
        return {"json_schema": "JSON schema", "grammar": "grammar", "choices": "choice list"}.get(self.kind, "constraint")

    def schema(self) -> dict[str, Any]:
        """The parsed JSON schema (``json_schema`` only).

        Raises:
            InvalidParameterError: not JSON (with line and column), or not an object.
        """
        try:
            value = json.loads(self.source)
        except json.JSONDecodeError as exc:
            raise bad_constraint(f"the JSON schema is not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise bad_constraint("the JSON schema is nested too deeply") from None
        if not isinstance(value, dict):
            raise bad_constraint(f"the JSON schema must be an object, not {json_schema.type_of(value)}")
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "source": self.source}
        if self.kind == "choices":
            out["choices"] = list(self.choices)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Constraint":
        if not isinstance(data, dict):
            raise bad_constraint("a constraint must be an object with kind and source")
        if data.get("kind") == "choices":
            return cls.of_choices(list(data.get("choices") or str(data.get("source", "")).split(CHOICE_SEPARATOR)))
        return cls(data.get("kind"), data.get("source"), ()).validate()  # type: ignore[arg-type]


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal: quote, backslash, and control characters escaped
    (llama.cpp's parser reads ``\\" \\\\ \\n \\r \\t \\xHH``; other characters are UTF-8 as is)."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def choices_gbnf(choices: tuple[str, ...]) -> str:
    """The grammar of a choice list: ``root ::= "a" | "b" | ...`` (exactly one, nothing around it)."""
    return "root ::= " + " | ".join(gbnf_literal(c) for c in choices) + "\n"


# --- the finished output ---------------------------------------------------------------------

Status = Literal["valid", "invalid", "cut_off", "unchecked"]


@dataclass(frozen=True)
class OutputCheck:
    """What the finished output is, measured against its constraint.

    Attributes:
        status: ``valid`` (parses and conforms), ``invalid`` (it does not; ``reason`` says
            where), ``cut_off`` (the run ended before the output was complete: max tokens, a
            stop string, cancelled), ``unchecked`` (a free GBNF grammar: only the engine's
            grammar knows the language; the text is shown as it is).
        reason: why it is not valid, or what was not checked; "" when valid.
        value: the parsed JSON (``json_schema``) or the choice taken; see ``parsed``.
        parsed: ``value`` holds what the output parsed to (JSON ``null`` is a value too).
        unchecked: schema keywords the project's validator does not know (llama.cpp's converter
            may enforce them while generating; the check here did not).
    """

    status: Status
    reason: str = ""
    value: Any = None
    unchecked: tuple[str, ...] = ()
    parsed: bool = False

    @property
    def pretty(self) -> str | None:
        """The parsed JSON, pretty-printed (2-space indent), when there is one."""
        return json.dumps(self.value, indent=2, ensure_ascii=False) if self.parsed else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "valid": self.status == "valid"}
        if self.reason:
            out["reason"] = self.reason
        if self.parsed:
            out["value"] = self.value
        if self.unchecked:
            out["unchecked_keywords"] = list(self.unchecked)
        return out


_CUT = {"length": "max tokens reached before the output was complete", "cancelled": "the run was cancelled",
        "error": "the run failed part-way"}


def check_output(constraint: Constraint, text: str, finish_reason: str, stop_string: str | None = None) -> OutputCheck:
    """Check a finished completion ``text`` against ``constraint``.

    A complete output is judged on its own (a run that stopped exactly at max tokens with a
    complete, conforming value is valid). An output that does not conform is ``cut_off`` when the
    run did not end on its own (max tokens, cancelled, failed, a stop string), else ``invalid``.
    """
    cut = _CUT.get(finish_reason) or (f"the stop string {stop_string!r} ended the run" if stop_string else None)
    if constraint.kind == "choices":
        if text in constraint.choices:
            return OutputCheck("valid", value=text, parsed=True)
        if cut:
            return OutputCheck("cut_off", cut)
        return OutputCheck("invalid", f"{_short(text)} is not one of {', '.join(map(repr, constraint.choices))}")
    if constraint.kind == "grammar":
        if cut:
            return OutputCheck("cut_off", cut)
        return OutputCheck("unchecked", "a GBNF grammar: the output is not re-checked outside the engine")
    schema = constraint.schema()
    unchecked = tuple(sorted(unchecked_keywords(schema)))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if cut:
            return OutputCheck("cut_off", cut, unchecked=unchecked)
        return OutputCheck("invalid", f"not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}", unchecked=unchecked)
    except RecursionError:
        return OutputCheck("invalid", "the JSON is nested too deeply to parse", unchecked=unchecked)
    problem = json_schema.validate(value, schema)
    if problem is None:
        return OutputCheck("valid", value=value, unchecked=unchecked, parsed=True)
    if cut:
        return OutputCheck("cut_off", f"{cut} ({problem})", value=value, unchecked=unchecked, parsed=True)
    return OutputCheck("invalid", problem, value=value, unchecked=unchecked, parsed=True)


def unchecked_keywords(schema: Any) -> set[str]:
    """Keywords anywhere in ``schema`` that ``json_schema.validate`` does not check."""
    out: set[str] = set()
    if not isinstance(schema, dict):
        return out
    for key, value in schema.items():
        if key not in json_schema.KEYWORDS and key not in json_schema.IGNORED:
            out.add(key)
        if key == "properties" and isinstance(value, dict):
            for sub in value.values():
                out |= unchecked_keywords(sub)
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out |= unchecked_keywords(value)
    return out


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
