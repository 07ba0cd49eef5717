"""Suite, case-file and variants parsing: good files load; each malformed one is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.evaluate.errors import SuiteError
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import load_variants

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
[suite]
name = "s"
template = "plain"
examples = [{ input = "a", output = "b" }]
import = "more.jsonl"
[[case]]
input = "The battery died."
expected = "negative"
choices = ["positive", "negative"]
assert = [{ type = "equals" }]
[[case]]
vars = { input = "x", context = "c" }
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_suite_with_an_imported_case_file_loads(tmp_path):
    write(tmp_path, '{"input": "q", "expected": "a", "assert": [{"type": "contains"}]}\n\n{"input": "r"}\n', "more.jsonl")
    suite = load_suite(write(tmp_path, GOOD))
    assert [c.index for c in suite.cases] == [0, 1, 2, 3]
    first, second, third = suite.cases[:3]
    assert first.choices == ("positive", "negative") and first.asserts[0].value == "negative"
    assert second.vars == {"input": "x", "context": "c"}
    assert third.source == "more.jsonl: line 1" and third.asserts[0].value == "a"
    assert suite.prompt.template == "plain" and suite.prompt.prefix == " " and suite.prompt.examples == (("a", "b"),)


@pytest.mark.parametrize("name", ["review-sentiment.toml", "capitals.toml", "capitals-judged.toml"])
def test_example_suites_load(name):
    suite = load_suite(ROOT / "sessions" / "suites" / name)
    assert suite.cases and all(c.expected for c in suite.cases)


BAD = [
    ("[suite\nname='x'", "s.toml: not valid TOML"),
    ("[suite]\nname='x'", "s.toml: no cases"),
    ("[suite]\ntemplate='markdown'\n[[case]]\ninput='x'", "s.toml: [suite]: 'template' must be \"chat\" or \"plain\""),
    ("[suite]\nmodel='x'\n[[case]]\ninput='x'", "s.toml: [suite]: 'model' is not a suite field"),
    ("[suite]\nmax_tokens=0\n[[case]]\ninput='x'", "s.toml: [suite]: 'max_tokens' must be a whole number >= 1"),
    ("[suite]\nexamples=[{input='a'}]\n[[case]]\ninput='x'", "s.toml: [suite]: 'examples' item 0 must be"),
    ("[suite]\nimport='cases.txt'\n[[case]]\ninput='x'", "'import' 'cases.txt': only .jsonl or .csv"),
    ("[[case]]\ninput='x'\n[[case]]\nexpected='y'", "s.toml: case 1: 'input' is missing"),
    ("[[case]]\ninput=3", "s.toml: case 0: 'input' must be a string"),
    ("[[case]]\ninput='x'\nexpect='y'", "s.toml: case 0: 'expect' is not a case field"),
    ("[[case]]\ninput='x'\nchoices=['a']", "s.toml: case 0: 'choices' must be a list of at least two"),
    ("[[case]]\ninput='x'\nchoices=['a','a']", "s.toml: case 0: 'choices' has the same choice twice"),
    ("[[case]]\ninput='x'\nexpected='c'\nchoices=['a','b']", "s.toml: case 0: 'expected' ('c') is not one of the choices"),
    ("[[case]]\ninput='x'\nvars={topic='y'}", "s.toml: case 0: 'vars.topic' is not known"),
    ("[[case]]\ninput='x'\nassert=[{type='equals'}]", "s.toml: case 0: assert 0: 'value' is needed for equals"),
    ("[[case]]\ninput='x'\nassert='equals'", "s.toml: case 0: 'assert' must be a list of tables"),
    ("[[cases]]\ninput='x'", "s.toml: 'cases' is not a suite section"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:40] for _, m in BAD])
def test_malformed_suites_give_one_line(tmp_path, text, message):
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text))
    line = str(info.value)
    assert "\n" not in line and message in line, line


def test_malformed_case_files_name_the_line(tmp_path):
    path = write(tmp_path, '{"input": "a"}\n{"input": "b",}\n', "c.jsonl")
    with pytest.raises(SuiteError, match=r"c\.jsonl: line 2: not JSON"):
        load_suite(path)
    write(tmp_path, '{"input": "a"}\n["b"]\n', "c.jsonl")
    with pytest.raises(SuiteError, match=r"c\.jsonl: line 2: must be a table"):
        load_suite(path)
    assert load_suite(write(tmp_path, '{"input": "a", "expected": "b"}\n', "c.jsonl")).name == "c"


def test_variants_override_the_suite_prompt(tmp_path):
    suite = load_suite(write(tmp_path, "[suite]\ninstruction='base'\n[[case]]\ninput='x'"))
    variants = load_variants(write(tmp_path, "[[variant]]\nname='a'\n[[variant]]\nname='b'\ninstruction='other'\n"
                                   "lane='temp=0.5,seed=3'\n", "v.toml"), suite)
    assert [(v.name, v.prompt.instruction) for v in variants] == [("a", "base"), ("b", "other")]
    from playground.params import SamplerParams

    sampler = variants[1].sampler(SamplerParams())
    assert (sampler.temperature, sampler.seed) == (0.5, 3)


@pytest.mark.parametrize("text, message", [
    ("name='x'", "holds [[variant]] tables only"),
    ("[[variant]]\nname='a'\n[[variant]]\nname='a'", "variant 1: 'name' must be a non-empty string, different"),
    ("[[variant]]\nlane='temp=hot'", "variant 0: 'lane':"),
    ("[[variant]]\nlane='model=x.gguf'", "variant 0: 'lane':"),
    ("[[variant]]\nsampler='x'", "variant 0: 'sampler' is not a variant field"),
])
def test_malformed_variants_give_one_line(tmp_path, text, message):
    suite = load_suite(write(tmp_path, "[[case]]\ninput='x'"))
    with pytest.raises(SuiteError) as info:
        load_variants(write(tmp_path, text, "v.toml"), suite)
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)
