"""Each assertion type passes and fails on crafted outputs; the JSON-schema subset validates."""

from __future__ import annotations

import pytest

from playground.evaluate import json_schema
from playground.evaluate.assertions import Output, check, parse_assertion
from playground.evaluate.errors import SuiteError


def run(raw: dict, text: str, expected: str | None = None, n_tokens: int = 5, latency_ms: float | None = 120.0) -> bool:
    return check(parse_assertion(raw, expected, "t.toml: case 0: assert 0"), Output(text, n_tokens, latency_ms)).passed


SCHEMA = {"type": "object", "required": ["label", "score"], "additionalProperties": False,
          "properties": {"label": {"enum": ["pos", "neg"]}, "score": {"type": "number"},
                         "tags": {"type": "array", "items": {"type": "string"}}}}

CASES = [
    # (assertion, expected, passing output, failing output)
    ({"type": "equals"}, "Paris", "  Paris\n", "Paris."),
    ({"type": "equals", "extract": "last-number"}, "42", "so the answer is 42.", "so it is 41"),
    ({"type": "equals", "extract": "regex:answer: (\\w+)"}, "yes", "answer: yes", "answer: no"),
    ({"type": "equals", "extract": "json:a.b"}, "x", 'ok {"a": {"b": "x"}}', '{"a": {"b": "y"}}'),
    ({"type": "contains"}, "Paris", "It is Paris.", "It is paris."),
    ({"type": "icontains"}, "Paris", "it is PARIS", "it is Rome"),
    ({"type": "regex", "value": "^\\d{3}$"}, None, "391", "39"),
    ({"type": "json-valid"}, None, '```json\n{"a": [1, 2]}\n```', '{"a": [1, 2}'),
    ({"type": "json-schema", "value": SCHEMA}, None, '{"label": "pos", "score": 0.9, "tags": ["a"]}',
     '{"label": "pos", "score": "high"}'),
    ({"type": "json-field", "path": "items.1.id", "value": 7}, None, '{"items": [{"id": 1}, {"id": 7}]}',
     '{"items": [{"id": 1}, {"id": true}]}'),
    ({"type": "json-field", "path": "label"}, "neg", '{"label": "neg"}', '{"label": "pos"}'),
    ({"type": "max-tokens", "value": 5}, None, ("x", 5), ("x", 6)),
    ({"type": "max-latency-ms", "value": 100}, None, ("x", 100.0), ("x", 100.5)),
]


@pytest.mark.parametrize("raw, expected, good, bad", CASES, ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(CASES)])
def test_assertion_passes_and_fails(raw, expected, good, bad):
    if raw["type"] == "max-tokens":
        assert run(raw, good[0], n_tokens=good[1]) and not run(raw, bad[0], n_tokens=bad[1])
    elif raw["type"] == "max-latency-ms":
        assert run(raw, good[0], latency_ms=good[1]) and not run(raw, bad[0], latency_ms=bad[1])
    else:
        assert run(raw, good, expected) is True
        assert run(raw, bad, expected) is False


def test_every_type_is_tested():
    from playground.evaluate.assertions import MODEL_TYPES, TYPES

    # judge needs a model run: tests/test_eval_judge.py
    assert {c[0]["type"] for c in CASES} == set(TYPES) - set(MODEL_TYPES) and MODEL_TYPES == ("judge",)


def test_failure_details_say_why():
    out = Output('{"label": "pos"}', 3, None)
    result = check(parse_assertion({"type": "json-schema", "value": SCHEMA}, None, "x"), out)
    assert not result.passed and "required property 'score'" in result.detail
    assert check(parse_assertion({"type": "max-latency-ms", "value": 5}, None, "x"), out).detail == "no latency measured"


@pytest.mark.parametrize("raw, expected, message", [
    ({"type": "equal"}, "x", "'type' must be one of"),
    ({"type": "equals"}, None, "'value' is needed for equals"),
    ({"type": "regex", "value": "(unclosed"}, None, "'value' is not a valid regular expression"),
    ({"type": "equals", "extract": "first-word"}, "x", "'extract' must be"),
    ({"type": "max-tokens", "value": "ten"}, None, "'value' must be a number >= 0"),
    ({"type": "json-field", "value": 1}, None, "'path' must be a dotted path"),
    ({"type": "json-schema", "value": {"type": "object", "minProperties": 1}}, None, "value.minProperties: unsupported keyword"),
    ({"type": "json-schema", "value": {"properties": {"a": {"type": "text"}}}}, None, "value.properties.a.type must be one of"),
    ({"type": "contains", "value": "x", "weight": 2}, None, "'weight' is not an assertion field"),
    ("equals", None, "must be a table"),
])
def test_bad_assertions_are_one_line_errors(raw, expected, message):
    with pytest.raises(SuiteError) as info:
        parse_assertion(raw, expected, "s.toml: case 2: assert 0")
    text = str(info.value)
    assert "\n" not in text and text.startswith("Suite file: s.toml: case 2: assert 0: ") and message in text


def test_schema_types_follow_json():
    assert json_schema.validate(3, {"type": "number"}) is None
    assert json_schema.validate(3.0, {"type": "integer"}) is None
    assert json_schema.validate(3.5, {"type": "integer"}) is not None
    assert json_schema.validate(True, {"type": "integer"}) is not None
    assert json_schema.validate(1, {"enum": [True]}) is not None
    assert json_schema.validate(None, {"type": ["string", "null"]}) is None
    assert json_schema.validate({"a": 1}, {"additionalProperties": {"type": "string"}}) == "$.a is integer, not string"
