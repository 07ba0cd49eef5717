"""Dataclasses <-> plain JSON values, driven by type hints, with errors that name the field.

Encoding writes fields in declaration order and omits those equal to their default (unless the
field carries ``metadata={"full": True}``, or sits in such a value without ``{"sparse": True}``).
Decoding accepts exactly what encoding can produce:
an unknown key, a wrong type or a non-finite number is a ``SchemaError`` with the path of the
offending value (``lanes[0].tokens[3].id``), so a hand-edited file gets a precise message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import lru_cache
from typing import Any, Literal, Union

from playground.events import Alternative

#: dataclasses written as a JSON array of their fields (one per token alternative: keep them short)
COMPACT: frozenset[type] = frozenset({Alternative})


class SchemaError(Exception):
    """A value does not fit the schema; ``path`` says where."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'top level'}: {problem}")
        self.path = path
        self.problem = problem


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


_SCALARS = (str, int, type(None))  # bool is an int


def _number(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"cannot write a non-finite number ({value})")
    return value


def encode(value: Any, *, full: bool = False) -> Any:
    """The JSON value for ``value`` (dataclass, tuple, list, dict or scalar)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return _number(value)
    if type(value) is Alternative:  # the bulk of a file (up to 100 per token): the short way
        return [value.id, value.text, _number(value.logprob)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if type(value) in COMPACT:
            return [encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            keep = (full and not f.metadata.get("sparse", False)) or f.metadata.get("full", False)
            if not keep and item == _default(f):
                continue
            out[f.name] = encode(item, full=bool(f.metadata.get("full", False)))
        return out
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def _describe(value: Any) -> str:
    if isinstance(value, str) and len(value) > 40:
        value = value[:40]  # repr of a 50 MB string only to cut it: no
    elif isinstance(value, (list, dict)):
        return ""  # kind() already says what it is; a repr could be huge or deeply nested
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind(value: Any) -> str:
    """What a JSON value is, in words ("an array", "null"...), for error messages."""
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def decode(tp: Any, value: Any, path: str = "") -> Any:
    """Build a value of type ``tp`` from JSON ``value``, or raise SchemaError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return decode(rest[0], value, path)
        raise SchemaError(path, "unsupported union in schema")  # not used by the schema
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise SchemaError(path, f"must be one of {allowed}, got {_describe(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SchemaError(path, f"expected true/false, got {kind(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SchemaError(path, f"expected an integer, got {kind(value)} {_describe(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer of hundreds of digits
                raise SchemaError(path, "a number too large to be one") from None
            if not math.isfinite(number):
                raise SchemaError(path, "expected a finite number")
            return number
        raise SchemaError(path, f"expected a number, got {kind(value)} {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SchemaError(path, f"expected a string, got {kind(value)} {_describe(value)}")
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise SchemaError(path, f"expected an array, got {kind(value)}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            if args[0] is Alternative:  # the bulk of a file: the short way, the long one on a problem
                fast = [_fast_alternative(v) for v in value]
                if all(a is not None for a in fast):
                    return tuple(fast)
            return tuple(decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple:
            if len(value) != len(args):
                raise SchemaError(path, f"expected {len(args)} items, got {len(value)}")
            return tuple(decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return [decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, got {kind(value)}")
        return {k: decode(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, path)
    raise SchemaError(path, f"unsupported type {tp!r} in schema")


def _fast_alternative(value: Any) -> Alternative | None:
    if type(value) is list and len(value) == 3:
        tid, text, logprob = value
        if type(tid) is int and type(text) is str and type(logprob) is float and math.isfinite(logprob):
            return Alternative(tid, text, logprob)
    return None


def _decode_dataclass(cls: type, value: Any, path: str) -> Any:
    fields = dataclasses.fields(cls)
    hints = _hints(cls)
    if cls in COMPACT:
        if not isinstance(value, list) or len(value) != len(fields):
            raise SchemaError(path, f"expected an array of {len(fields)} items ({', '.join(f.name for f in fields)})")
        return cls(*(decode(hints[f.name], v, f"{path}[{i}]") for i, (f, v) in enumerate(zip(fields, value))))
    if not isinstance(value, dict):
        raise SchemaError(path, f"expected an object, got {kind(value)}")
    names = {f.name for f in fields}
    unknown = [k for k in value if k not in names]
    if unknown:
        raise SchemaError(f"{path}.{unknown[0]}" if path else unknown[0], "unknown field (a typo?)")
    kwargs: dict[str, Any] = {}
    for f in fields:
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in value:
            kwargs[f.name] = decode(hints[f.name], value[f.name], sub)
        elif _default(f) is dataclasses.MISSING:
            raise SchemaError(sub, "missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ checks
        raise SchemaError(path, str(exc)) from None
