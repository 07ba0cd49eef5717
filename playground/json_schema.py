"""A small JSON-schema validator: the subset a suite's ``json-schema`` assertion and the check
of structured output (``constraint.check_output``) need. A pure helper, below both.

Supported keywords: ``type`` (a name or a list of names: string, number, integer, boolean,
object, array, null), ``properties``, ``required``, ``additionalProperties`` (true, false or a
schema), ``items`` (one schema for every element), ``enum``, ``const``; ``title``,
``description`` and ``$schema`` are accepted and ignored. Any other keyword is refused when the
suite is read (``check_schema``), so a schema never passes by silently ignoring a rule.
"""

from __future__ import annotations

from typing import Any

TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "enum", "const"}
IGNORED = {"title", "description", "$schema"}


def check_schema(schema: Any, path: str = "schema") -> str | None:
    """Why ``schema`` is outside the supported subset (naming where), or None when it is fine."""
    if not isinstance(schema, dict):
        return f"{path} must be a table (a JSON-schema object)"
    for key, value in schema.items():
        here = f"{path}.{key}"
        if key in IGNORED:
            continue
        if key not in KEYWORDS:
            return f"{here}: unsupported keyword (supported: {', '.join(sorted(KEYWORDS))})"
        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or any(n not in TYPES for n in names):
                return f"{here} must be one of {', '.join(TYPES)} (or a list of them)"
        elif key == "properties":
            if not isinstance(value, dict):
                return f"{here} must be a table of schemas"
            for name, sub in value.items():
                if (problem := check_schema(sub, f"{here}.{name}")) is not None:
                    return problem
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                return f"{here} must be a list of property names"
        elif key == "additionalProperties":
            if not isinstance(value, bool) and (problem := check_schema(value, here)) is not None:
                return problem
        elif key == "items":
            if (problem := check_schema(value, here)) is not None:
                return problem
        elif key == "enum" and not isinstance(value, list):
            return f"{here} must be a list of values"
    return None


def type_of(value: Any) -> str:
    """The JSON type name of a parsed value ("integer" for whole numbers, as JSON schema counts them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or isinstance(value, float) and value.is_integer():
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    ta, tb = type_of(a), type_of(b)
    if {ta, tb} <= {"integer", "number"}:
        return a == b
    if ta != tb:
        return False
    if ta == "array":
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if ta == "object":
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> str | None:
    """The first way ``value`` breaks ``schema`` (with its JSON path), or None when it conforms."""
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        actual = type_of(value)
        if actual not in names and not (actual == "integer" and "number" in names):
            return f"{path} is {actual}, not {' or '.join(names)}"
    if "const" in schema and not same(value, schema["const"]):
        return f"{path} is not {schema['const']!r}"
    if "enum" in schema and not any(same(value, option) for option in schema["enum"]):
        return f"{path} is not one of {schema['enum']!r}"
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                return f"{path} lacks the required property '{name}'"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problem = validate(item, properties[name], f"{path}.{name}")
            elif extra is False:
                problem = f"{path} has the property '{name}', which the schema does not allow"
            elif isinstance(extra, dict):
                problem = validate(item, extra, f"{path}.{name}")
            else:
                problem = None
            if problem is not None:
                return problem
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            if (problem := validate(item, schema["items"], f"{path}[{i}]")) is not None:
                return problem
    return None
