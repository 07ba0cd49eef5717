"""Cases from CSV and JSONL: the same fields either way, errors naming the line; results files that
resume and a CSV export of the cells (real model, in a subprocess)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from playground.evaluate.errors import SuiteError
from playground.evaluate.suite import load_suite

from conftest import ROOT, playground_cmd, subprocess_env

CSV = (
    "\ufeffinput,expected,choices,vars.context,assert,id\n"
    "\"What, exactly, is the capital of France?\",Paris,Paris|Rome | Madrid,Geography quiz.,contains,fr\n"
    "\n"
    "\"Two\nlines\",Rome,,,\"[{\"\"type\"\": \"\"equals\"\"}, {\"\"type\"\": \"\"max-tokens\"\", \"\"value\"\": 4}]\",\n"
    "Say hi.,,,,,\n"
)
# The same three cases as JSONL, written independently of the CSV above.
JSONL = [
    {"input": "What, exactly, is the capital of France?", "expected": "Paris", "choices": ["Paris", "Rome", "Madrid"],
     "vars": {"context": "Geography quiz."}, "assert": [{"type": "contains"}], "id": "fr"},
    {"input": "Two\nlines", "expected": "Rome", "assert": [{"type": "equals"}, {"type": "max-tokens", "value": 4}]},
    {"input": "Say hi."},
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fields(case) -> tuple:
    return (case.index, dict(case.vars), case.expected, case.choices, case.asserts, case.id)


def test_csv_and_jsonl_give_the_same_cases(tmp_path):
    from_csv = load_suite(write(tmp_path, "c.csv", CSV)).cases
    from_jsonl = load_suite(write(tmp_path, "c.jsonl", "\n".join(json.dumps(c) for c in JSONL) + "\n")).cases
    assert [fields(c) for c in from_csv] == [fields(c) for c in from_jsonl]
    assert len(from_csv) == 3 and from_csv[0].choices == ("Paris", "Rome", "Madrid")
    # a row is named by its first line: header 1, row 2, blank 3, a two-line row 4-5, row 6
    assert [c.source for c in from_csv] == ["c.csv: line 2", "c.csv: line 4", "c.csv: line 6"]


def test_a_suite_takes_cases_from_files_and_gives_them_default_assertions(tmp_path):
    write(tmp_path, "c.csv", CSV)
    write(tmp_path, "d.csv", CSV.rsplit("Say hi.", 1)[0])  # without the case that has no expected answer
    write(tmp_path, "more.jsonl", json.dumps({"input": "Name a colour.", "expected": "red"}) + "\n")
    suite = load_suite(write(tmp_path, "s.toml", "[suite]\ninstruction = 'Be brief.'\ncases = ['d.csv', 'more.jsonl']\n"
                             "assert = [{ type = 'icontains' }]\n[[case]]\ninput = 'first'\nexpected = 'x'\n"))
    assert [c.vars["input"] for c in suite.cases] == ["first", JSONL[0]["input"], "Two\nlines", "Name a colour."]
    assert [c.index for c in suite.cases] == [0, 1, 2, 3]
    # the suite's assertions go to cases without their own; "value" defaults to each case's expected
    assert [(a.type, a.value) for a in suite.cases[0].asserts] == [("icontains", "x")]
    assert [a.type for a in suite.cases[1].asserts] == ["contains"]
    assert [(a.type, a.value) for a in suite.cases[3].asserts] == [("icontains", "red")]
    with pytest.raises(SuiteError, match="c.csv: line 6: assert 0: 'value' is needed for icontains"):
        load_suite(write(tmp_path, "s2.toml", "[suite]\ncases = 'c.csv'\nassert = [{ type = 'icontains' }]\n"))
    # --cases: the suite's prompt over another case file
    other = load_suite(tmp_path / "s.toml", cases=tmp_path / "more.jsonl")
    assert other.prompt.instruction == "Be brief." and [c.vars["input"] for c in other.cases] == ["Name a colour."]


BAD = [
    ("input,answer\nx,y\n", "c.csv: line 1: column 'answer' is not known"),
    ("expected\ny\n", "c.csv: line 1: no 'input' column"),
    ("input,input\nx,y\n", "c.csv: line 1: a column is named twice"),
    ("input,expected\nx,y\n\nz\n", "c.csv: line 4: 1 cells, but the header names 2 columns"),
    ("input,expected,choices\nx,y,a|b\n", "c.csv: line 2: 'expected' ('y') is not one of the choices"),
    ("input,choices\nx,a\n", "c.csv: line 2: 'choices' must be a list of at least two"),
    ("input,assert\nx,\"[{\"\"type\"\": }]\"\n", "c.csv: line 2: 'assert' is not JSON"),
    ("input,assert\nx,equal\n", "c.csv: line 2: assert 0: 'type' must be one of"),
    ("input,vars.topic\nx,y\n", "c.csv: line 1: column 'vars.topic' is not known"),
    ("input,\"x\ny\n", "c.csv: line 2: not CSV"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:45] for _, m in BAD])
def test_malformed_csv_names_the_line(tmp_path, text, message):
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, "c.csv", text))
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)


def test_a_case_file_of_another_kind_is_refused(tmp_path):
    write(tmp_path, "c.txt", "input\nx\n")
    with pytest.raises(SuiteError, match=r"'cases' 'c.txt': only .jsonl or .csv"):
        load_suite(write(tmp_path, "s.toml", "[suite]\ncases = 'c.txt'\n"))
    with pytest.raises(SuiteError, match=r"c.csv: no cases"):
        load_suite(write(tmp_path, "c.csv", "input,expected\n"))


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*playground_cmd(), *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=subprocess_env(tmp_path))


def test_csv_cases_run_write_results_resume_and_export(tmp_path):
    cases = write(tmp_path, "c.csv", "input,expected,assert\nWhat is the capital of France?,Paris,contains\n"
                  "What is the capital of Japan?,Tokyo,contains\nSay the word yes.,yes,icontains\n")
    results, table = tmp_path / "r.json", tmp_path / "cells.csv"
    first = run_cli(tmp_path, "eval", str(cases), "--json", "-n", "6", "-t", "1", "--out", str(results), "--csv", str(table))
    assert first.returncode in (0, 1), first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    cells, summary = lines[:-1], lines[-1]
    saved = json.loads(results.read_text(encoding="utf-8"))
    assert saved["schema_version"] == 1 and saved["cells"] == cells and saved["summary"] == summary["variants"]
    rows = list(csv.DictReader(table.open(encoding="utf-8", newline="")))
    assert [(r["variant"], r["case"], r["input"], r["output"]) for r in rows] == \
        [(c["variant"], str(c["case"]), c["input"], c["output"]) for c in cells]
    assert [r["pass"] for r in rows] == [str(c["pass"]) for c in cells]
    assert [float(r["answer_logprob"]) for r in rows] == [c["answer_logprob"] for c in cells]

    # drop the last cell as if the run had stopped there: a resume runs that one only
    saved["cells"] = saved["cells"][:2]
    saved["summary"] = None
    results.write_text(json.dumps(saved), encoding="utf-8")
    again = run_cli(tmp_path, "eval", str(cases), "--json", "-n", "6", "-t", "1", "--resume", str(results))
    assert again.returncode == first.returncode, again.stderr
    assert "resuming: 2 finished cells kept" in again.stderr
    new = [json.loads(line) for line in again.stdout.splitlines()]
    assert [c["case"] for c in new[:-1]] == [2]  # only the missing cell ran
    timeless = lambda cell: {k: v for k, v in cell.items() if k != "latency_ms"}  # noqa: E731
    assert [timeless(c) for c in new[:-1]] == [timeless(c) for c in cells[2:]]  # greedy: the same output and scores
    assert new[-1]["variants"] == summary["variants"]
    resumed = json.loads(results.read_text(encoding="utf-8"))
    assert [timeless(c) for c in resumed["cells"]] == [timeless(c) for c in cells]
    assert resumed["cells"][:2] == cells[:2] and resumed["summary"] == summary["variants"]
