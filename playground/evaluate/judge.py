"""Model-graded assertions: a judge model reads a rubric prompt and gives PASS/FAIL or a score.

```toml
[judge]                                  # all optional
prompt = "Task: {input}\\nAnswer: {output}\\nReference: {expected}\\nRubric: {rubric}\\nPASS or FAIL?"
rubric = "The answer is correct."        # what {rubric} stands for when an assertion gives none
template = "chat"                        # or "plain": the prompt verbatim, as a completion
backend = "myserver"                     # an endpoint of the config's [backends]; default: the local model
model = "judge.gguf"                     # local: another GGUF file; with backend: the server's model name
max_tokens = 8
pass_threshold = 7                       # a numeric score at or above it passes
[[case]]
input = ".."
assert = [{ type = "judge", rubric = "Names a city.", pass_threshold = 0.5 }]
```

The judge runs greedily (temperature 0) through the same run job as the cells. Its verdict is the
first whole word PASS or FAIL (any case) or the first number in its text, whichever comes first.
A verdict reports the judge's own probabilities at the verdict position: the token that starts the
verdict (its raw log-probability, as the judge's token event gave it) and, for PASS/FAIL, the mass
of the alternatives there that begin each word (" PASS", "P", "Pass", ...). A remote judge's
probabilities are whatever its server returns (None when it returns none).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from playground.backends.endpoints import Endpoint
from playground.evaluate.assertions import AssertResult, Assertion
from playground.evaluate.errors import SuiteError
from playground.evaluate.suite import Case
from playground.events import TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import ChatTemplate, PromptSpec, RenderedPrompt, render

DEFAULT_PROMPT = (
    "You are grading an answer to a task.\n\n"
    "Task: {input}\n"
    "Reference answer: {expected}\n"
    "Answer to grade: {output}\n\n"
    "Rubric: {rubric}\n"
    "Does the answer to grade meet the rubric? Reply with one word: PASS or FAIL."
)
DEFAULT_RUBRIC = "The answer is correct and agrees with the reference answer."
JUDGE_KEYS = {"prompt", "rubric", "template", "backend", "model", "max_tokens", "pass_threshold", "top_n"}
PLACEHOLDERS = ("input", "output", "expected", "rubric")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_VERDICT = re.compile(r"\b(pass|fail)\b|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.]*\w)", re.I)
WORDS = ("PASS", "FAIL")


@dataclass(frozen=True)
class JudgeSpec:
    """The ``[judge]`` table: how every judge assertion of a suite is run."""

    prompt: str = DEFAULT_PROMPT
    """The prompt template: {input} {output} {expected} {rubric} are filled in; other braces stay."""
    rubric: str = DEFAULT_RUBRIC
    template: str = "chat"
    backend: str | None = None
    """A config endpoint's name; None: the local model (``model``, or the command's)."""
    model: str | None = None
    max_tokens: int = 8
    pass_threshold: float | None = None
    top_n: int = 10
    """Alternatives asked for per judge token (the verdict position's are reported)."""


def parse_judge(table: Mapping[str, Any] | None, place: str) -> JudgeSpec:
    """The ``[judge]`` table, checked (the defaults when there is none)."""
    if table is None:
        return JudgeSpec()
    unknown = sorted(set(table) - JUDGE_KEYS)
    if unknown:
        raise SuiteError(f"{place}: '{unknown[0]}' is not a judge field (known: {', '.join(sorted(JUDGE_KEYS))})")
    changes: dict[str, Any] = {}
    for key in ("prompt", "rubric", "backend", "model"):
        if key in table:
            if not (isinstance(table[key], str) and table[key].strip()):
                raise SuiteError(f"{place}: '{key}' must be a non-empty string")
            changes[key] = table[key]
    if "prompt" in changes and "{output}" not in changes["prompt"]:
        raise SuiteError(f"{place}: 'prompt' must contain {{output}} (what the judge grades)")
    if "template" in table:
        if table["template"] not in ("chat", "plain"):
            raise SuiteError(f"{place}: 'template' must be \"chat\" or \"plain\" (got {table['template']!r})")
        changes["template"] = table["template"]
    for key, low, high in (("max_tokens", 1, 4096), ("top_n", 1, 100)):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise SuiteError(f"{place}: '{key}' must be a whole number from {low} to {high}")
            changes[key] = value
    if "pass_threshold" in table:
        value = table["pass_threshold"]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SuiteError(f"{place}: 'pass_threshold' must be a number")
        changes["pass_threshold"] = float(value)
    return replace(JudgeSpec(), **changes)


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each {input} {output} {expected} {rubric} replaced (one pass: a value that
    itself holds "{output}" stays as it is)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def judge_text(spec: JudgeSpec, assertion: Assertion, case: Case, output: str) -> str:
    """The judge's prompt for one cell, before any chat template."""
    return fill(spec.prompt, {"input": case.vars["input"], "output": output.strip(),
                              "expected": case.expected or "(none given)",
                              "rubric": assertion.rubric or spec.rubric})


def render_judge(spec: JudgeSpec, text: str, template: ChatTemplate | None) -> RenderedPrompt:
    """``text`` as the judge model sees it: one user turn (chat), or verbatim (plain)."""
    return render(PromptSpec(mode="freeform", text=text, template="chat" if spec.template == "chat" else "plain"),
                  template)


def judge_request(spec: JudgeSpec, rendered: RenderedPrompt, base: GenerationRequest | None = None) -> GenerationRequest:
    """Greedy, ``spec.max_tokens`` long, with ``spec.top_n`` alternatives per token."""
    request = GenerationRequest(rendered.text, SamplerParams(temperature=0.0, seed=0), max_tokens=spec.max_tokens,
                                top_n=spec.top_n, add_special=rendered.add_special, messages=rendered.messages)
    return request.validate()


@dataclass(frozen=True)
class Verdict:
    """What the judge said: a word (PASS/FAIL) or a score, and where in its text."""

    word: str | None
    score: float | None
    start: int
    end: int


def parse_verdict(text: str) -> Verdict | None:
    """The first PASS/FAIL word or number in ``text``; None when there is neither."""
    match = _VERDICT.search(text)
    if match is None:
        return None
    if match.group(1):
        return Verdict(match.group(1).upper(), None, match.start(), match.end())
    return Verdict(None, float(match.group(0)), match.start(), match.end())


def verdict_token(tokens: Sequence[TokenEvent], start: int) -> TokenEvent | None:
    """The token whose text holds character ``start`` of the tokens' joined text."""
    offset = 0
    for token in tokens:
        offset += len(token.text)
        if token.text and offset > start:
            return token
    return None


def word_probs(token: TokenEvent) -> dict[str, float] | None:
    """Per verdict word, the probability of the alternatives at ``token``'s position that begin it
    (None when the backend gave no alternatives)."""
    if not token.top:
        return None
    out = {}
    for word in WORDS:
        out[word] = math.fsum(math.exp(alt.logprob) for alt in token.top
                              if alt.text.strip() and word.startswith(alt.text.strip().upper()))
    return out


def grade(assertion: Assertion, spec: JudgeSpec, text: str, tokens: Sequence[TokenEvent],
          where: Mapping[str, Any]) -> AssertResult:
    """The assertion's result from the judge's text and token events (``where``: backend, model,
    prompt, for the report)."""
    threshold = assertion.pass_threshold if assertion.pass_threshold is not None else spec.pass_threshold
    verdict = parse_verdict(text)
    report: dict[str, Any] = {**where, "output": text, "verdict": None, "score": None, "threshold": threshold,
                              "verdict_token": None, "verdict_probs": None, "alternatives": None}
    if verdict is None:
        return AssertResult("judge", False, f"the judge gave no verdict: {text.strip()[:60]!r}", report)
    report["verdict"], report["score"] = verdict.word, verdict.score
    token = verdict_token(tokens, verdict.start)
    if token is not None:
        report["verdict_token"] = {"i": token.i, "id": token.id, "text": token.text, "logprob": token.logprob,
                                   "prob": token.prob}
        report["alternatives"] = [{"id": a.id, "text": a.text, "prob": math.exp(a.logprob)} for a in token.top] or None
        if verdict.word is not None:
            report["verdict_probs"] = word_probs(token)
    prob = "" if token is None or token.prob is None else f" (p={token.prob:.3f})"
    if verdict.word is not None:
        return AssertResult("judge", verdict.word == "PASS", f"judge: {verdict.word}{prob}", report)
    if threshold is None:
        return AssertResult("judge", False, f"judge scored {verdict.score:g}{prob}, but no pass_threshold is set", report)
    ok = verdict.score is not None and verdict.score >= threshold
    return AssertResult("judge", ok, f"judge scored {verdict.score:g}{prob} {'>=' if ok else '<'} {threshold:g}", report)


def judge_endpoint(spec: JudgeSpec, endpoints: Mapping[str, Endpoint]) -> Endpoint | None:
    """The remote endpoint the judge runs on (None: local); SuiteError for an unknown name."""
    if spec.backend is None:
        return None
    if spec.backend not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none configured"
        raise SuiteError(f"[judge]: no backend named '{spec.backend}' in the config (known: {known})")
    endpoint = endpoints[spec.backend]
    return replace(endpoint, model=spec.model) if spec.model else endpoint
