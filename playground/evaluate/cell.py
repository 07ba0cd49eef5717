"""One cell's result (a case on a variant): the output, its assertions, the answer's scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.engine.teacher import AnswerScore, ChoiceScores
from playground.evaluate.assertions import AssertResult
from playground.evaluate.suite import Case


@dataclass(frozen=True)
class CellResult:
    variant: str
    case: Case
    prompt_tokens: tuple[int, ...]
    """The rendered prompt's token ids, as generated from and scored after."""
    output: str | None = None
    """The generated text; None when the cell was not generated (``--score-only``)."""
    finish_reason: str | None = None
    n_tokens: int = 0
    latency_ms: float | None = None
    """From the stream's start to its end (prompt evaluation included)."""
    asserts: tuple[AssertResult, ...] = ()
    answer: AnswerScore | None = None
    """The expected answer's teacher-forced score (the expected choice's, with choices)."""
    choices: ChoiceScores | None = None
    error: str | None = None
    """Why generation or scoring failed ("title: message"); what ran before is kept."""

    @property
    def passed(self) -> bool | None:
        """All assertions passed; None when the case has none or nothing was generated."""
        if not self.case.asserts or self.output is None:
            return None
        return self.error is None and len(self.asserts) == len(self.case.asserts) and all(a.passed for a in self.asserts)

    @property
    def predicted(self) -> str | None:
        if self.choices is None or self.case.choices is None:
            return None
        return self.case.choices[self.choices.predicted]

    @property
    def correct(self) -> bool | None:
        """The predicted choice is the expected one; None without choices or without expected."""
        if self.predicted is None or self.case.expected is None:
            return None
        return self.predicted == self.case.expected

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` line of this cell (token ids included, so anyone can recompute the scores)."""
        case, answer, choices = self.case, self.answer, self.choices
        out: dict[str, Any] = {"event": "case", "variant": self.variant, "case": case.index}
        if case.id is not None:
            out["id"] = case.id
        out.update({
            "input": case.vars["input"],
            "expected": case.expected,
            "output": self.output,
            "finish_reason": self.finish_reason,
            "n_tokens": self.n_tokens,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "pass": self.passed,
            "asserts": [a.to_dict() for a in self.asserts],
            "prompt_tokens": list(self.prompt_tokens),
            "answer_tokens": list(answer.tokens) if answer else None,
            "answer_logprob": answer.logprob if answer else None,
            "answer_token_logprobs": list(answer.token_logprobs) if answer else None,
            "choice_probs": None,
            "predicted": self.predicted,
            "correct": self.correct,
        })
        if choices is not None and case.choices is not None:
            out["choice_probs"] = dict(zip(case.choices, choices.probs))
            out["choice_logprobs"] = {c: s.logprob for c, s in zip(case.choices, choices.scores)}
            out["choice_tokens"] = {c: list(s.tokens) for c, s in zip(case.choices, choices.scores)}
        if self.error is not None:
            out["error"] = self.error
        return out
