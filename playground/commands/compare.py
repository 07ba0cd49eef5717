"""``playground compare``: several samplers on one prompt, or N samples voted on (or ``--bench``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace

from playground.cli_options import (
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.compare.events import BatchDone, Divergence, LaneEvent, Vote
from playground.compare.extract import make_extractor
from playground.compare.lane_spec import SPEC_HELP, parse_lane_spec
from playground.compare.run import MAX_SAMPLES, LaneTranscript, finished, lane_requests, run_compare, sample_requests
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent

EPILOG = """\
JSON lines (--json), in this order:
  {"event":"start","lane":K,...,"params":{...}}   one per lane: its sampler settings and seed
  {"event":"token","lane":K,"i":..,"id":..,...}   the lanes' tokens, interleaved step by step
  {"event":"done","lane":K,...}                   when lane K ends ("failed" instead if it fails)
  {"event":"batch","n_lanes":..,"prompt_tokens_evaluated":..,"decode_tok_s":..,...}
        the shared work: prompt evaluated once; decode_tok_s is the aggregate rate of all lanes
  {"event":"divergence","lane":K,"reference":0,"index":I,"token":{...},"reference_token":{...}}
        lanes mode, one per lane after lane 0: I is the first token index where lane K's token id
        differs from lane 0's (null: identical completions; the shorter length when one is a
        prefix of the other, whose token is then null). Both tokens carry id, text, logprob and
        prob (raw, T=1, from the same distribution: the lanes share the context up to I) and
        p_sampled (in that lane's sampler distribution).
  {"event":"vote","answers":{ANSWER:COUNT},"majority":..,"agreement":..,"n_samples":..,
   "no_answer":..,"by_lane":[...]}
        --samples mode, last: agreement = majority votes / samples; "tied" lists tied answers.

examples:
  playground compare "Once upon a time" --lane "temp=0" --lane "temp=1.0,top_k=40,seed=3"
  playground compare "What is 17 * 23? Answer with a number." --samples 16 --temp 0.9 --extract-last-number
  playground compare --bench
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmp = sub.add_parser(
        "compare",
        help="several samplers side by side on one prompt, or N samples with a vote",
        description="Run lanes of one prompt in one batch: the prompt is evaluated once and every step "
        "decodes one token of each lane. The sampler options below are every lane's defaults. Without -c, "
        "the context grows to hold the prompt plus every lane's max tokens (they share one KV cache).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("prompt", nargs="?", help="the prompt; standard input when absent or '-'")
    add_model_options(cmp)
    add_sampler_options(cmp)
    group = cmp.add_argument_group("comparison")
    group.add_argument("--lane", action="append", default=None, metavar="SPEC", help=f"one lane (repeatable): {SPEC_HELP}")
    group.add_argument("--samples", type=int, default=None, metavar="N",
                       help=f"self-consistency: N samples (1-{MAX_SAMPLES}) of the same settings; with a fixed "
                       "seed S the samples use S, S+1, ...")
    group.add_argument("--extract", metavar="REGEX", help="answer = the first match's first group (or whole match)")
    group.add_argument("--extract-last-number", action="store_true", help="answer = the last number in the text")
    group.add_argument("--extract-json", metavar="FIELD", help="answer = FIELD (dotted path) of the first JSON object having it")
    group.add_argument("--json", action="store_true", help="JSON lines (see below)")
    bench = cmp.add_argument_group("benchmark (--bench: no prompt; the model options apply)")
    bench.add_argument("--bench", action="store_true", help="4 lanes vs 4 sequential runs over a ~1000-token prompt, "
                       "and aggregate decode tokens/s of 1, 2, 4, 8 lanes")
    bench.add_argument("--bench-tokens", type=int, default=64, metavar="N", help="tokens per lane (default 64)")
    bench.add_argument("--bench-rounds", type=int, default=3, metavar="N", help="interleaved rounds (default 3)")


def _requests(args: argparse.Namespace, prompt: str):
    base = request_from_args(args, prompt)
    specs = args.lane or []
    if args.samples is not None:
        if len(specs) > 1:
            raise InvalidParameterError("--samples runs one setting: give at most one --lane with it")
        if specs:
            base = replace(base, sampler=parse_lane_spec(specs[0], base.sampler))
        return sample_requests(base, args.samples)
    if args.extract is not None or args.extract_last_number or args.extract_json is not None:
        raise InvalidParameterError("the answer extractors need --samples N")
    if not specs:
        raise InvalidParameterError("nothing to compare: give --lane SPEC for each lane, or --samples N")
    if len(specs) > MAX_SAMPLES:
        raise InvalidParameterError(f"at most {MAX_SAMPLES} lanes")
    return lane_requests(base, [parse_lane_spec(spec, base.sampler) for spec in specs])


def run(args: argparse.Namespace) -> int:
    if args.bench:
        return _bench(args)
    from playground.compare import text_report
    from playground.engine.lanes import LaneRunner, seq_max_for

    prompt = read_prompt(args.prompt)
    requests = _requests(args, prompt)
    samples = args.samples is not None
    extractor_name, extractor = make_extractor(args.extract, args.extract_last_number, args.extract_json)
    choice = engine_choice_from_args(args)
    if args.ctx_size is None:
        # The lanes share one unified KV cache: the prompt once, plus every lane's tokens.
        need = len(prompt.encode("utf-8")) + 8 + sum(r.max_tokens for r in requests)
        choice = replace(choice, n_ctx=max(choice.n_ctx, min(need, 32768)))
    engine = choice.load(n_seq_max=seq_max_for(len(requests)))
    runner = LaneRunner(engine)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    out = sys.stdout
    lanes: list[LaneTranscript] = []
    status = 0
    try:
        events = run_compare(runner, requests, cancel, diverge=not samples, extractor=extractor if samples else None,
                             transcripts=lanes)
        for item in events:
            if isinstance(item, LaneEvent) and isinstance(item.event, FailedEvent):
                print(f"playground: lane {item.lane}: {item.event.title}: {item.event.message}", file=sys.stderr)
                status = 1
            if args.json:
                out.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
            elif isinstance(item, LaneEvent) and isinstance(item.event, (DoneEvent, FailedEvent)):
                if samples:
                    answer = extractor(lanes[item.lane].text) if finished(lanes[item.lane]) else None
                    text_report.write_sample(out, item.lane, lanes[item.lane], answer)
                else:
                    text_report.write_lane(out, item.lane, lanes[item.lane])
            elif isinstance(item, BatchDone):
                text_report.write_batch(out, item)
            elif isinstance(item, Divergence):
                text_report.write_divergence(out, item)
            elif isinstance(item, Vote):
                text_report.write_vote(out, item, extractor_name)
            out.flush()
    finally:
        signal.signal(signal.SIGINT, previous)
        runner.close()
        engine.close()
    return status


def _bench(args: argparse.Namespace) -> int:
    from playground.compare.bench import run_bench

    if args.prompt is not None or args.lane or args.samples is not None:
        raise InvalidParameterError("--bench uses its own prompt and lanes: give only model options with it")
    if args.bench_tokens < 2 or args.bench_rounds < 1:
        raise InvalidParameterError("--bench-tokens must be at least 2 and --bench-rounds at least 1")
    result = run_bench(engine_choice_from_args(args), tokens=args.bench_tokens, rounds=args.bench_rounds)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']}, {result['threads']} threads, prompt {result['prompt_tokens']} tokens, "
          f"{result['max_tokens']} tokens per lane, {result['rounds']} rounds")
    n = result["lanes"]
    print(f"{n} sequential runs   s: {', '.join(f'{s:.2f}' for s in result['sequential_s'])}")
    print(f"{n} lanes, one batch  s: {', '.join(f'{s:.2f}' for s in result['batched_s'])}")
    print(f"wall-time ratio (batched / sequential), median: {result['ratio_median']:.3f}, fastest runs: "
          f"{result['ratio_of_minima']:.3f}  (target <= 0.6); "
          f"same tokens: {result['same_tokens']}")
    if not result["same_tokens"]:
        print("  (ids may differ past 512 KV cells with >1 thread: llama.cpp splits a one-token decode's "
              "attention over threads, with other float rounding than a batch; see playground/compare/bench.py)")
    for n, row in result["scaling"].items():
        print(f"{n} lanes: {row['decode_tok_s']:.1f} decode tok/s aggregate ({row['tokens']} tokens)")
    return 0
