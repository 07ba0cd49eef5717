"""What the eval results screen shows, as text: a grid cell, a cell's detail, a variant's summary.

Everything a results file holds came from a model or a suite file, so every string passes through
``terminal_text`` and into ``rich.text.Text`` as plain text (never markup).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from playground.evaluate.ratings import Rating
from playground.terminal_text import inert, inert_line

AUTO = {True: "PASS", False: "FAIL", None: "----"}


def _clip(text: str, width: int) -> str:
    text = inert_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def auto_verdict(cell: Mapping[str, Any]) -> str:
    return "ERR " if cell.get("error") else AUTO[cell.get("pass")]


def metric(cell: Mapping[str, Any]) -> str:
    """The predicted choice and its probability, else the expected answer's log-probability."""
    predicted = cell.get("predicted")
    if predicted is not None:
        prob = (cell.get("choice_probs") or {}).get(predicted)
        return f"{_clip(str(predicted), 12)} {prob:.2f}" if prob is not None else _clip(str(predicted), 12)
    logprob = cell.get("answer_logprob")
    return "" if logprob is None else f"lp {logprob:.2f}"


def rating_mark(rating: Rating | None) -> str:
    """``H✓4✎``: the human verdict (✓ pass, ✗ fail, · none), score and a note mark; "" unrated."""
    if rating is None or rating.empty:
        return ""
    verdict = {"pass": "✓", "fail": "✗", None: "·"}[rating.verdict]
    return f"H{verdict}{rating.score or ''}{'✎' if rating.note else ''}"


def grid_cell(cell: Mapping[str, Any] | None, rating: Rating | None) -> Text:
    if cell is None:
        return Text("  ·", style="dim")
    text = Text(auto_verdict(cell), style="bold" if cell.get("pass") else "")
    if shown := metric(cell):
        text.append(f" {shown}")
    if mark := rating_mark(rating):
        text.append(f" {mark}", style="reverse")
    return text


def row_label(case: int, cell: Mapping[str, Any]) -> Text:
    name = cell.get("id") or cell.get("input") or ""
    return Text(f"{case:>2} {_clip(str(name), 18)}")


def _section(text: Text, title: str, body: str | None) -> None:
    text.append(f"\n{title}\n", style="bold")
    text.append("(none)" if body is None else inert(body) or "(empty)")
    text.append("\n")


def _judge_line(judge: Mapping[str, Any]) -> str:
    token = judge.get("verdict_token") or {}
    parts = [f"verdict {judge.get('verdict') or 'none'}"]
    if judge.get("score") is not None:
        parts.append(f"score {judge['score']:g}")
    if token.get("prob") is not None:
        parts.append(f"p={token['prob']:.3f}")
    for word, prob in (judge.get("verdict_probs") or {}).items():
        parts.append(f"{word} {prob:.3f}")
    parts.append(f"({judge.get('backend', '?')}, {judge.get('model', '?')})")
    return inert_line(" · ".join(str(p) for p in parts))


def detail(cell: Mapping[str, Any] | None, rating: Rating | None, variant: str, case: int) -> Text:
    """Everything about one cell: input, expected, output, assertions with reasons, judge, scores."""
    text = Text()
    text.append(f"{inert_line(variant)} · case {case}", style="bold")
    if cell is None:
        text.append("\nno result for this cell (the run did not reach it)")
        return text
    if cell.get("id"):
        text.append(f" ({inert_line(str(cell['id']))})")
    text.append(f"   automatic {auto_verdict(cell).strip()}")
    human = "unrated" if rating is None or rating.empty else \
        " ".join(p for p in (rating.verdict, f"{rating.score}/5" if rating.score else None) if p) or "note only"
    text.append(f"   human {human}\n")
    _section(text, "Input", cell.get("input"))
    _section(text, "Expected", cell.get("expected"))
    _section(text, "Output", cell.get("output"))
    extras = [f"finish {cell['finish_reason']}" if cell.get("finish_reason") else "",
              f"{cell.get('n_tokens')} tokens" if cell.get("n_tokens") else "",
              f"{cell['latency_ms']:.0f} ms" if cell.get("latency_ms") is not None else ""]
    if any(extras):
        text.append(" · ".join(e for e in extras if e) + "\n", style="dim")
    text.append("\nAssertions\n", style="bold")
    for result in cell.get("asserts") or ():
        text.append("  ok   " if result.get("pass") else "  FAIL ", style="bold")
        text.append(inert_line(f"{result.get('type')}: {result.get('detail')}") + "\n")
        if result.get("judge"):
            text.append(f"       judge {_judge_line(result['judge'])}\n")
    if not cell.get("asserts"):
        text.append("  (none)\n")
    if cell.get("answer_logprob") is not None:
        text.append(f"\nanswer logprob {cell['answer_logprob']:.3f}\n")
    for choice, prob in (cell.get("choice_probs") or {}).items():
        mark = " ← predicted" if choice == cell.get("predicted") else ""
        text.append(f"  {_clip(str(choice), 30)} {prob:.3f}{mark}\n")
    if cell.get("error"):
        text.append(f"\nerror: {inert_line(str(cell['error']))}\n", style="bold")
    if rating is not None and rating.note:
        _section(text, "Note", rating.note)
    return text


def summary_line(variant: str, auto: Mapping[str, Any] | None, human: Mapping[str, Any] | None) -> Text:
    """``chat  auto pass 50% · choice 100% · lp -4.14 │ human 2 rated · pass 1/2 · score 4.0 · agree 1/2``."""
    text = Text(_clip(variant, 16), style="bold")
    if auto is None:
        text.append("  auto (the run has no summary yet)")
    else:
        lp = auto.get("mean_answer_logprob")
        text.append(f"  auto pass {_pct(auto.get('pass_rate'))} · choice {_pct(auto.get('choice_accuracy'))}"
                    f" · lp {'n/a' if lp is None else format(lp, '.2f')}")
    human = human or {}
    text.append(" │ ", style="dim")
    if not human.get("n_rated"):
        text.append("human: none rated")
        return text
    score = "n/a" if human["mean_score"] is None else f"{human['mean_score']:.1f}"
    text.append(f"human {human['n_rated']} rated · pass {human['n_pass']}/{human['n_verdict']} · score {score}"
                f" · agree {human['n_agree']}/{human['n_agree_checked']}")
    return text
