"""``playground eval``: run a suite of test cases, check assertions, score the expected answers."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from playground.cli_options import add_model_options, add_sampler_options, config_of, engine_choice_from_args, request_from_args
from playground.backends.endpoints import add_backend_options, endpoint_from_args, load_endpoints
from playground.commands.output import Output, error_line
from playground.compare.job import EnginePool
from playground.errors import InvalidParameterError
from playground.evaluate.cell import CellResult
from playground.evaluate.judge import judge_endpoint, parse_judge
from playground.evaluate.ratings import kept_ratings, with_ratings
from playground.evaluate.results import csv_text, load_results, results_document, resumable, write_atomic, write_results
from playground.evaluate.run import Evaluation
from playground.evaluate.scoring import summarise
from playground.evaluate.suite import load_suite
from playground.evaluate.variants import default_variants, load_variants, shot_variants

EPILOG = """\
Suite files: see playground/evaluate/suite.py (TOML [suite] + [[case]], or a .jsonl or .csv of
cases) and sessions/suites/ for examples. Generation is greedy unless --temp is given, so a pass rate
repeats. Judge assertions ({type = "judge", rubric = ".."}, a [judge] table for the prompt and the
model): playground/evaluate/judge.py; the judge's verdict and its probability are in "asserts".
Remote cells (--backend / --base-url): no answer log-probabilities (null; local only).

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
    ev.add_argument("suite", help="suite file (.toml) or case file (.jsonl, .csv)")
    ev.add_argument("--cases", metavar="FILE", help="run these cases (.jsonl, .csv) instead of the suite's own")
    ev.add_argument("--variants", metavar="FILE", help="prompt variants ([[variant]] tables); default: the suite's prompt")
    ev.add_argument("--ablate-shots", action="store_true", help="few-shot ablation: the variant with its first 0, 1, .. k "
                    "examples, as variants \"0-shot\" .. \"k-shot\"")
    ev.add_argument("--concurrency", type=int, default=None, metavar="N",
                    help="remote cells: at most N requests in flight (default: the endpoint's max_concurrency)")
    ev.add_argument("--out", metavar="RESULTS", help="write every cell and the summary to this JSON file (atomically, "
                    "after each cell)")
    ev.add_argument("--resume", metavar="RESULTS", help="keep the finished cells of this results file and run the "
                    "others (written back to it unless --out names another)")
    ev.add_argument("--open", action="store_true", help="open the results in the TUI to read and rate cells "
                    "(after the run, with --out; or `playground eval --open RESULTS.json` alone)")
    ev.add_argument("--csv", metavar="OUT", help="also write the cells as CSV, one row per case x variant")
    ev.add_argument("--score-only", action="store_true", help="score the expected answers only: no generation, no assertions")
    ev.add_argument("--min-pass-rate", type=float, default=None, metavar="X", help="exit 1 if a variant's pass rate is below X (0-1)")
    ev.add_argument("--min-choice-accuracy", type=float, default=None, metavar="X",
                    help="exit 1 if a variant's choice accuracy is below X (0-1)")
    ev.add_argument("--json", action="store_true", help="JSON lines (see below)")
    add_model_options(ev)
    add_sampler_options(ev)
    add_backend_options(ev)


def _thresholds(args: argparse.Namespace) -> None:
    for name in ("min_pass_rate", "min_choice_accuracy"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise InvalidParameterError(f"--{name.replace('_', '-')} must be between 0 and 1")


def _variants(args: argparse.Namespace, suite) -> list:
    variants = load_variants(args.variants, suite) if args.variants else default_variants(suite)
    if args.ablate_shots:
        if len(variants) != 1:
            raise InvalidParameterError("--ablate-shots ablates one variant: give a variants file with one, or none")
        variants = shot_variants(variants[0])
    return variants


def run(args: argparse.Namespace) -> int:
    if args.open and str(args.suite).endswith(".json"):
        return open_results(args.suite)
    if args.open and not (args.out or args.resume):
        raise InvalidParameterError("--open shows a results file: give --out RESULTS.json (or open one alone)")
    _thresholds(args)
    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidParameterError("--concurrency must be at least 1")
    suite = load_suite(args.suite, cases=args.cases)
    variants = _variants(args, suite)
    endpoint = endpoint_from_args(args, load_endpoints() if args.backend else None)
    if endpoint is not None and args.model:
        raise InvalidParameterError("give -m (a local model) or a remote backend, not both")
    if args.concurrency is not None and endpoint is None:
        raise InvalidParameterError("--concurrency applies to remote cells (--backend or --base-url)")
    judge = parse_judge(suite.judge, f"{Path(suite.path).name}: [judge]")
    judge_target = judge_endpoint(judge, load_endpoints() if judge.backend else {})
    previous_cells: list[CellResult] = []
    out_path = args.out or args.resume
    # Human ratings of an earlier run into the same file stay where its cells' outputs are unchanged.
    previous_doc = load_results(out_path) if out_path and Path(out_path).exists() else {}
    if args.resume:
        previous_cells = resumable(load_results(args.resume), suite)
    sampler = config_of(args).sampler
    if args.temp is None and not args.greedy:
        sampler = sampler.replace(temperature=0.0)  # reproducible pass rates unless asked otherwise
    if args.max_tokens is None and suite.max_tokens is not None:
        args.max_tokens = suite.max_tokens
    base = request_from_args(args, "", sampler)
    for variant in variants:
        variant.sampler(base.sampler).validate()  # a bad override fails before any model loads
    pool = EnginePool(engine_choice_from_args(args))
    names = {v.name for v in variants}
    previous_cells = [c for c in previous_cells if c.variant in names]
    evaluation = Evaluation(suite, variants, pool, base, generate=not args.score_only, judge=judge,
                            judge_endpoint=judge_target, endpoint=endpoint, concurrency=args.concurrency,
                            skip=frozenset((c.variant, c.case.index) for c in previous_cells))
    out = Output(on_close=evaluation.cancel)
    previous = signal.signal(signal.SIGINT, lambda *_: evaluation.cancel())
    cells: list[CellResult] = list(previous_cells)
    if previous_cells:
        error_line(f"resuming: {len(previous_cells)} finished cells kept from {args.resume}")
    try:
        for cell in evaluation.cells():
            cells.append(cell)
            if cell.error is not None:
                error_line(f"{cell.case.source} ({cell.variant}): {cell.error}")
            if args.json:
                out.json(cell.to_dict())
            else:
                _write_cell(out, cell)
            if out_path:
                _write(out_path, results_document(suite, [c.to_dict() for c in _ordered(cells, variants)], None,
                                                  evaluation.receipt), previous_doc)
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
    cells = _ordered(cells, variants)
    summary = summarise(cells)
    if out_path:
        document = _write(out_path, results_document(suite, [c.to_dict() for c in cells], summary, evaluation.receipt),
                          previous_doc)
        summary = document["summary"]  # with the kept human ratings counted
    if args.csv:
        write_atomic(args.csv, csv_text(c.to_dict() for c in cells))
    if args.json:
        out.json({"event": "summary", "suite": suite.name, "variants": summary, "receipt": evaluation.receipt})
    else:
        _write_summary(out, summary)
        if args.ablate_shots:
            _write_ablation(out, summary)
    status = 1 if any(c.error for c in cells) or evaluation.cancelled else 0
    for name, row in summary.items():
        for key, option in (("pass_rate", args.min_pass_rate), ("choice_accuracy", args.min_choice_accuracy)):
            if option is not None and (row[key] is None or row[key] < option):
                error_line(f"variant '{name}': {key.replace('_', ' ')} {_pct(row[key])} is below {option:g}")
                status = 1
    if args.open and out_path and not out.status:
        open_results(out_path)
    return out.status or status


def _write(path: str, document: dict, previous: dict) -> dict:
    """Write the results with the ratings of ``previous`` that still apply; the document written."""
    kept = kept_ratings(previous, document["cells"]) if previous else {}
    document = with_ratings(document, kept) if kept else document
    write_results(path, document)
    return document


def open_results(path: str) -> int:
    """The results screen on ``path`` (read and rate cells); 0 when it is closed."""
    from playground.ui.screens.eval_results import EvalResultsApp

    document = load_results(path)  # a bad file: one clear error line, before any screen
    EvalResultsApp(path, document).run()
    return 0


def _ordered(cells: list[CellResult], variants: list) -> list[CellResult]:
    """Variant by variant, case by case (resumed and remote cells arrive in another order)."""
    rank = {v.name: i for i, v in enumerate(variants)}
    return sorted(cells, key=lambda c: (rank.get(c.variant, len(rank)), c.case.index))


def _write_ablation(out: Output, summary: dict) -> None:
    out.text("== few-shot ablation\n   shots  pass rate  choice acc  mean answer logprob\n")
    for name, row in summary.items():
        logprob = "n/a" if row["mean_answer_logprob"] is None else format(row["mean_answer_logprob"], ".3f")
        out.text(f"   {name.removesuffix('-shot'):>5}  {_pct(row['pass_rate']):>9}  {_pct(row['choice_accuracy']):>10}"
                 f"  {logprob:>19}\n")


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
