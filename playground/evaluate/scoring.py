"""The summary of a suite's cells, per variant: pass rates, answer log-probability, choice accuracy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from playground.evaluate.cell import CellResult


def _rate(passed: int, n: int) -> float | None:
    return passed / n if n else None


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def summarise(cells: Iterable[CellResult]) -> dict[str, dict[str, Any]]:
    """Per variant (in first-seen order):

    - ``n``: cells; ``n_failed``: cells whose generation or scoring failed;
    - ``pass_rate``: cells whose assertions all passed / cells with assertions (None: none had any);
    - ``asserts``: per assertion type ``{"n", "passed", "pass_rate"}``;
    - ``mean_answer_logprob``: mean over cells with an expected answer of its total log-probability,
      and ``mean_answer_token_logprob``: the mean of every scored answer token's log-probability;
    - ``choice_accuracy``: predicted choice == expected, over cases with choices and an expected answer;
    - ``human``: None (ratings come with the TUI).
    """
    groups: dict[str, list[CellResult]] = {}
    for cell in cells:
        groups.setdefault(cell.variant, []).append(cell)
    out: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        judged = [c.passed for c in group if c.passed is not None or (c.case.asserts and c.error)]
        per_type: dict[str, list[int]] = {}
        for cell in group:
            for result in cell.asserts:
                tally = per_type.setdefault(result.type, [0, 0])
                tally[0] += 1
                tally[1] += result.passed
        answers = [c.answer for c in group if c.answer is not None]
        correct = [c.correct for c in group if c.correct is not None]
        out[name] = {
            "n": len(group),
            "n_failed": sum(1 for c in group if c.error is not None),
            "pass_rate": _rate(sum(1 for p in judged if p), len(judged)),
            "asserts": {t: {"n": n, "passed": p, "pass_rate": p / n} for t, (n, p) in sorted(per_type.items())},
            "n_scored": len(answers),
            "mean_answer_logprob": _mean([a.logprob for a in answers]),
            "mean_answer_token_logprob": _mean([lp for a in answers for lp in a.token_logprobs]),
            "n_choice": len(correct),
            "choice_accuracy": _rate(sum(correct), len(correct)),
            "human": None,
        }
    return out
