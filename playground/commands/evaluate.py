"""``playground eval``: run a suite of test cases, check assertions, score the expected answers."""

from __future__ import annotations

import argparse
import signal

from playground.cli_options import add_model_options, add_sampler_options, config_of, engine_choice_from_args, request_from_args
from playground.commands.output import Output, error_line
from playground.compare.job import EnginePool
from playground.errors import InvalidParameterError
from playground.evaluate.cell import CellResult
from playground.evaluate.run import Evaluation
from playground.evaluate.scoring import summarise
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import default_variants, load_variants

EPILOG = """\
Suite files: see playground/evaluate/suite.py (TOML [suite] + [[case]], or a .jsonl of cases) and
sessions/suites/ for examples. Generation is greedy unless --temp is given, so a pass rate repeats.

JSON lines (--json):
  {"event":"case","variant":NAME,"case":I,"output":..,"pass":BOOL|null,"asserts":[{"type","pass","detail"}],
   "prompt_tokens":[..],"answer_tokens":[..],"answer_logprob":..,"answer_token_logprobs":[..],
   "choice_probs":{CHOICE:P}|null,"predicted":..,"correct":..,...}            one per case x variant
  {"event":"summary","variants":{NAME:{"n","pass_rate","asserts":{TYPE:{..}},"mean_answer_logprob",
   "choice_accuracy",...}},"receipt":{model, llama_cpp_python, n_ctx, threads, prefill_chunk, schedule}}

answer_logprob: log p(expected | rendered prompt), teacher-forced with the generation schedule, so it
equals the sum of the logprobs a generate run shows when the model produces that answer.
Exit status: 0; 1 when a cell failed or a --min-* threshold is missed; 2 for bad input.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="run a suite of test cases: assertions and expected-answer scores",
                        description="Run every case of SUITE (on every variant): generate, apply the case's "
                        "assertions, and score the expected answer (and choices) with the model's exact probabilities.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("suite", help="suite file (.toml) or case file (.jsonl)")
    ev.add_argument("--variants", metavar="FILE", help="prompt variants ([[variant]] tables); default: the suite's prompt")
    ev.add_argument("--score-only", action="store_true", help="score the expected answers only: no generation, no assertions")
    ev.add_argument("--min-pass-rate", type=float, default=None, metavar="X", help="exit 1 if a variant's pass rate is below X (0-1)")
    ev.add_argument("--min-choice-accuracy", type=float, default=None, metavar="X",
                    help="exit 1 if a variant's choice accuracy is below X (0-1)")
    ev.add_argument("--json", action="store_true", help="JSON lines (see below)")
    add_model_options(ev)
    add_sampler_options(ev)


def _thresholds(args: argparse.Namespace) -> None:
    for name in ("min_pass_rate", "min_choice_accuracy"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise InvalidParameterError(f"--{name.replace('_', '-')} must be between 0 and 1")


def run(args: argparse.Namespace) -> int:
    _thresholds(args)
    suite = load_suite(args.suite)
    variants = load_variants(args.variants, suite) if args.variants else default_variants(suite)
    sampler = config_of(args).sampler
    if args.temp is None and not args.greedy:
        sampler = sampler.replace(temperature=0.0)  # reproducible pass rates unless asked otherwise
    if args.max_tokens is None and suite.max_tokens is not None:
        args.max_tokens = suite.max_tokens
    base = request_from_args(args, "", sampler)
    for variant in variants:
        variant.sampler(base.sampler).validate()  # a bad override fails before any model loads
    pool = EnginePool(engine_choice_from_args(args))
    evaluation = Evaluation(suite, variants, pool, base, generate=not args.score_only)
    out = Output(on_close=evaluation.cancel)
    previous = signal.signal(signal.SIGINT, lambda *_: evaluation.cancel())
    cells: list[CellResult] = []
    try:
        for cell in evaluation.cells():
            cells.append(cell)
            if cell.error is not None:
                error_line(f"{cell.case.source} ({cell.variant}): {cell.error}")
            if args.json:
                out.json(cell.to_dict())
            else:
                _write_cell(out, cell)
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
    summary = summarise(cells)
    if args.json:
        out.json({"event": "summary", "suite": suite.name, "variants": summary, "receipt": evaluation.receipt})
    else:
        _write_summary(out, summary)
    status = 1 if any(c.error for c in cells) or evaluation.cancelled else 0
    for name, row in summary.items():
        for key, option in (("pass_rate", args.min_pass_rate), ("choice_accuracy", args.min_choice_accuracy)):
            if option is not None and (row[key] is None or row[key] < option):
                error_line(f"variant '{name}': {key.replace('_', ' ')} {_pct(row[key])} is below {option:g}")
                status = 1
    return out.status or status


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _write_cell(out: Output, cell: CellResult) -> None:
    verdict = {True: "PASS", False: "FAIL", None: "----"}[cell.passed]
    parts = [f"[{cell.variant}] case {cell.case.index} {verdict}"]
    if cell.answer is not None:
        parts.append(f"answer logprob {cell.answer.logprob:.3f}")
    if cell.predicted is not None:
        mark = {True: " (right)", False: " (wrong)", None: ""}[cell.correct]
        parts.append(f"predicted {cell.predicted!r} p={max(cell.choices.probs):.3f}{mark}")  # type: ignore[union-attr]
    out.line("  ".join(parts))
    if cell.output is not None:
        out.line(f"    output: {cell.output.strip()!r}")
    for result in cell.asserts:
        out.line(f"    {'ok  ' if result.passed else 'FAIL'} {result.type}: {result.detail}")


def _write_summary(out: Output, summary: dict) -> None:
    for name, row in summary.items():
        out.text(f"== {name}: {row['n']} cases, pass rate {_pct(row['pass_rate'])}, "
                f"choice accuracy {_pct(row['choice_accuracy'])}, mean answer logprob "
                f"{'n/a' if row['mean_answer_logprob'] is None else format(row['mean_answer_logprob'], '.3f')}\n")
        for kind, tally in row["asserts"].items():
            out.text(f"   {kind}: {tally['passed']}/{tally['n']} ({_pct(tally['pass_rate'])})\n")
