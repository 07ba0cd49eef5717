"""Answer extractors for self-consistency: a regular expression, the last number, a JSON field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from playground.errors import InvalidParameterError

Extractor = Callable[[str], "str | None"]

# A number not glued to a word on its left ("x2" is not a number; "-3" is, "2023-05" ends with 05):
# optional sign, digits with optional thousands commas, optional decimals.
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?")


def regex_extractor(pattern: str) -> Extractor:
    """The first match's first group, or the whole match when the pattern has no group."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidParameterError(f"bad regular expression {pattern!r}: {exc}") from None

    def extract(text: str) -> str | None:
        match = compiled.search(text)
        if match is None:
            return None
        value = match.group(1) if compiled.groups else match.group(0)
        return None if value is None else value.strip()

    return extract


def normalise_number(raw: str) -> str:
    """``"1,000.50"`` -> ``"1000.5"``, ``"+7"`` -> ``"7"``, ``"4.0"`` -> ``"4"``: equal values vote together."""
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return raw
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def last_number(text: str) -> str | None:
    """The last number in the text, normalised (see ``normalise_number``)."""
    found = _NUMBER.findall(text)
    return normalise_number(found[-1]) if found else None


def _lookup(obj: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and key.lstrip("-").isdigit() and -len(obj) <= int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return False, None
    return True, obj


def json_field_extractor(field: str) -> Extractor:
    """The value of ``field`` (dotted path: ``answer``, ``result.value``, ``items.0``) in the first JSON
    object of the text that has it; strings as they are, other values as compact JSON."""
    path = field.split(".")
    if not field or any(not part for part in path):
        raise InvalidParameterError(f"bad JSON field path {field!r} (use names joined by dots)")
    decoder = json.JSONDecoder()

    def extract(text: str) -> str | None:
        start = text.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                found, value = _lookup(obj, path)
                if found:
                    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
            start = text.find("{", start + 1)
        return None

    return extract


def whole_text(text: str) -> str | None:
    """No extractor: the whole completion, trimmed, is the answer (empty -> no answer)."""
    return text.strip() or None


def make_extractor(regex: str | None = None, last_num: bool = False, json_field: str | None = None) -> tuple[str, Extractor]:
    """(description, extractor) for the command's options; at most one may be given."""
    given = [x for x in (regex is not None, last_num, json_field is not None) if x]
    if len(given) > 1:
        raise InvalidParameterError("give only one of --extract, --extract-last-number, --extract-json")
    if regex is not None:
        return f"regex {regex}", regex_extractor(regex)
    if last_num:
        return "last number", last_number
    if json_field is not None:
        return f"JSON field {json_field}", json_field_extractor(json_field)
    return "whole completion", whole_text
