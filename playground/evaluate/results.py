"""The results file of an eval run (``--out``), resumable (``--resume``), and its CSV export (``--csv``).

The file is JSON: ``{"schema_version": 1, "suite": NAME, "suite_path": .., "cells": [CELL..],
"summary": {..}, "receipt": {..}}`` where each CELL is the cell's ``--json`` line. It is written
whole after every cell, to a temporary file swapped in with ``os.replace``, so a run stopped at any
moment leaves the previous complete file. A resumed run keeps the cells that ran without error on
the same case (same index, same input) and runs the others.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from playground.atomic_file import write_text_atomic
from playground.engine.teacher import AnswerScore, ChoiceScores
from playground.evaluate.assertions import AssertResult
from playground.evaluate.cell import CellResult
from playground.evaluate.errors import SuiteError
from playground.evaluate.suite import Suite

SCHEMA_VERSION = 1
CSV_FIELDS = ("variant", "case", "id", "input", "expected", "output", "pass", "asserts", "finish_reason", "n_tokens",
              "latency_ms", "answer_logprob", "predicted", "correct", "judge_verdict", "judge_score", "judge_prob",
              "error")


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (``atomic_file``)."""
    write_text_atomic(path, text)


def results_document(suite: Suite, cells: Sequence[Mapping[str, Any]], summary: Mapping[str, Any] | None,
                     receipt: Mapping[str, Any]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "suite": suite.name, "suite_path": suite.path, "cells": list(cells),
            "summary": summary, "receipt": dict(receipt)}


def write_results(path: str | Path, document: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")


def load_results(path: str | Path) -> dict[str, Any]:
    """A results file, checked enough to resume from (SuiteError naming the file otherwise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path.name}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("cells"), list):
        raise SuiteError(f"{path.name}: not an eval results file (schema_version {SCHEMA_VERSION} with 'cells')")
    return data


def resumable(data: Mapping[str, Any], suite: Suite) -> list[CellResult]:
    """The finished cells of a results file that belong to ``suite``'s cases as they are now."""
    by_index = {case.index: case for case in suite.cases}
    kept: list[CellResult] = []
    for raw in data["cells"]:
        if not isinstance(raw, dict) or raw.get("error") is not None:
            continue
        case = by_index.get(raw.get("case"))  # type: ignore[arg-type]
        if case is None or raw.get("input") != case.vars["input"] or raw.get("expected") != case.expected:
            continue
        try:
            kept.append(cell_from_dict(raw, case))
        except (KeyError, TypeError, ValueError):
            continue  # a cell this version cannot read is run again
    return kept


def cell_from_dict(raw: Mapping[str, Any], case) -> CellResult:
    """A cell back from its ``to_dict`` form (the case given: the suite's own)."""
    answer = None
    if raw.get("answer_tokens") is not None:
        answer = AnswerScore(tuple(raw["answer_tokens"]), tuple(raw["answer_token_logprobs"]))
    choices = None
    if raw.get("choice_probs") is not None and case.choices is not None:
        # per-token logprobs are kept for the expected answer only: a choice keeps its total
        scores = tuple(answer if answer is not None and c == case.expected
                       else AnswerScore(tuple(raw["choice_tokens"][c]), (float(raw["choice_logprobs"][c]),))
                       for c in case.choices)
        probs = tuple(float(raw["choice_probs"][c]) for c in case.choices)
        choices = ChoiceScores(scores, probs, case.choices.index(raw["predicted"]))
    asserts = tuple(AssertResult(a["type"], bool(a["pass"]), a["detail"], a.get("judge")) for a in raw["asserts"])
    return CellResult(raw["variant"], case, tuple(raw["prompt_tokens"]), raw.get("output"), raw.get("finish_reason"),
                      int(raw.get("n_tokens") or 0), raw.get("latency_ms"), asserts, answer, choices)


def _judge_of(cell: Mapping[str, Any]) -> Mapping[str, Any]:
    for result in cell.get("asserts") or ():
        if result.get("judge"):
            return result["judge"]
    return {}


def csv_text(cells: Iterable[Mapping[str, Any]]) -> str:
    """One row per cell (case x variant), columns ``CSV_FIELDS``; the first judge assertion's verdict."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for cell in cells:
        judge = _judge_of(cell)
        token = judge.get("verdict_token") or {}
        row = {key: cell.get(key) for key in CSV_FIELDS if key in cell}
        row["asserts"] = ";".join(f"{a['type']}:{'pass' if a['pass'] else 'fail'}" for a in cell.get("asserts") or ())
        row.update(judge_verdict=judge.get("verdict"), judge_score=judge.get("score"), judge_prob=token.get("prob"))
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()
