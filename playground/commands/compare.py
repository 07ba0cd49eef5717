"""``playground compare``: several samplers on one prompt, or N samples voted on (or ``--bench``)."""

from __future__ import annotations

import argparse
import signal
from dataclasses import replace

from playground.cli_options import (
    add_constraint_options,
    add_model_options,
    add_chat_option,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.commands.output import Output, error_line
from playground.compare.events import BatchDone, Divergence, LaneEvent, Vote
from playground.compare.extract import make_extractor
from playground.compare.lane_spec import SPEC_HELP, LaneSpec, parse_lane
from playground.compare.lessons import confidence_gaps
from playground.compare.job import EnginePool, LanePlan, RunJob, lane_targets
from playground.compare.mixed import LaneTarget
from playground.compare.run import MAX_SAMPLES, finished, lane_requests, sample_requests
from playground.errors import InvalidParameterError
from playground.compare.variant import Variant, lane_label, load_variants
from playground.events import DoneEvent, FailedEvent, StartEvent
from playground.params import GenerationRequest
from playground.prompt_builder import chat_request, chat_template_of
from playground.sessions.cli_recording import RunRecording, add_session_options
from playground.sessions.prompt import lane_prompt
from playground.sessions.record import backend_from_endpoint

EPILOG = """\
JSON lines (--json), in this order:
  {"event":"start","lane":K,...,"params":{...}}   one per lane: its sampler settings and seed
  {"event":"token","lane":K,"i":..,"id":..,...}   the lanes' tokens, interleaved step by step
        (in arrival order when lanes run on other models or backends; remote tokens have id -1)
  {"event":"done","lane":K,...}                   when lane K ends ("failed" instead if it fails)
  {"event":"batch","n_lanes":..,"prompt_tokens_evaluated":..,"decode_tok_s":..,...}
        the shared work: prompt evaluated once; decode_tok_s is the aggregate rate of all lanes
        (one per local model when lanes run on several, with "lanes":[...]; none for remote lanes)
  {"event":"divergence","lane":K,"reference":0,"index":I,"token":{...},"reference_token":{...}}
        lanes mode, one per lane after lane 0: I is the first token index where lane K's token id
        differs from lane 0's (null: identical completions; the shorter length when one is a
        prefix of the other, whose token is then null). Both tokens carry id, text, logprob and
        prob (raw, T=1, from the same distribution: the lanes share the context up to I) and
        p_sampled (in that lane's sampler distribution). "compared_by":"text" when the ids are
        not comparable (a remote lane, or another model): token texts are compared instead.
  {"event":"vote","answers":{ANSWER:COUNT},"majority":..,"agreement":..,"n_samples":..,
   "no_answer":..,"by_lane":[...]}
        --samples mode, last: agreement = majority votes / samples; "tied" lists tied answers.

examples:
  playground compare "Once upon a time" --lane "temp=0" --lane "temp=1.0,top_k=40,seed=3"
  playground compare "What is 17 * 23? Answer with a number." --samples 16 --temp 0.9 --extract-last-number
  playground compare "Hello" --lane "temp=0" --lane "temp=0,backend=myserver"   ([backends.myserver] in the config)
  playground compare "Hello" --lane "temp=0" --lane "temp=0,model=other.gguf" --save run.json
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
    add_constraint_options(cmp)
    add_chat_option(cmp)
    group = cmp.add_argument_group("comparison")
    group.add_argument("--variants", metavar="FILE.toml", help="one lane per [[variant]] table: prompt parts or "
                       "a conversation, examples, template, sampler keys, backend/model (see playground.compare.variant)")
    group.add_argument("--lane", action="append", default=None, metavar="SPEC", help=f"one lane (repeatable): {SPEC_HELP}")
    group.add_argument("--samples", type=int, default=None, metavar="N",
                       help=f"self-consistency: N samples (1-{MAX_SAMPLES}) of the same settings; with a fixed "
                       "seed S the samples use S, S+1, ...")
    group.add_argument("--extract", metavar="REGEX", help="answer = the first match's first group (or whole match)")
    group.add_argument("--extract-last-number", action="store_true", help="answer = the last number in the text")
    group.add_argument("--extract-json", metavar="FIELD", help="answer = FIELD (dotted path) of the first JSON object having it")
    group.add_argument("--json", action="store_true", help="JSON lines (see below)")
    add_session_options(cmp)
    bench = cmp.add_argument_group("benchmark (--bench: no prompt; the model options apply)")
    bench.add_argument("--bench", action="store_true", help="4 lanes vs 4 sequential runs over a ~1000-token prompt, "
                       "and aggregate decode tokens/s of 1, 2, 4, 8 lanes")
    bench.add_argument("--bench-tokens", type=int, default=64, metavar="N", help="tokens per lane (default 64)")
    bench.add_argument("--bench-rounds", type=int, default=3, metavar="N", help="interleaved rounds (default 3)")


def _variant_lanes(args: argparse.Namespace) -> tuple[list[Variant], list[GenerationRequest], list[LaneTarget]]:
    """The variants file's lanes, rendered without a model template for now (see ``run``)."""
    if args.lane or args.samples is not None or args.prompt is not None:
        raise InvalidParameterError("--variants holds the lanes and their prompts: give no prompt, --lane or --samples with it")
    variants = load_variants(args.variants, "chat" if args.chat else "plain")
    if len(variants) > MAX_SAMPLES:
        raise InvalidParameterError(f"at most {MAX_SAMPLES} lanes")
    base = request_from_args(args, "")
    requests = [v.request(base, None) for v in variants]
    return variants, requests, lane_targets([v.lane(base.sampler) for v in variants])


def _lanes(args: argparse.Namespace, prompt: str) -> tuple[list[GenerationRequest], list[LaneTarget]]:
    """Each lane's request and where it runs."""
    base = request_from_args(args, prompt)
    specs = args.lane or []
    if args.samples is not None:
        if len(specs) > 1:
            raise InvalidParameterError("--samples runs one setting: give at most one --lane with it")
        lane = parse_lane(specs[0], base.sampler) if specs else LaneSpec(base.sampler)
        requests = sample_requests(replace(base, sampler=lane.sampler), args.samples)
        return requests, lane_targets([lane] * len(requests))
    if args.extract is not None or args.extract_last_number or args.extract_json is not None:
        raise InvalidParameterError("the answer extractors need --samples N")
    if not specs:
        raise InvalidParameterError("nothing to compare: give --lane SPEC for each lane, or --samples N")
    if len(specs) > MAX_SAMPLES:
        raise InvalidParameterError(f"at most {MAX_SAMPLES} lanes")
    lanes = [parse_lane(spec, base.sampler) for spec in specs]
    return lane_requests(base, [lane.sampler for lane in lanes]), lane_targets(lanes)


def _extractor_record(args: argparse.Namespace) -> tuple[str, str | None]:
    """How the session names the extractor, and its pattern."""
    if args.extract is not None:
        return "regex", args.extract
    if args.extract_last_number:
        return "last_number", None
    if args.extract_json is not None:
        return "json_field", args.extract_json
    return "whole_text", None


def run(args: argparse.Namespace) -> int:
    if args.bench:
        return _bench(args)
    from playground.compare import text_report

    variants: list[Variant] = []
    if args.variants:
        variants, requests, targets = _variant_lanes(args)
    else:
        requests, targets = _lanes(args, read_prompt(args.prompt))
    samples = args.samples is not None
    extractor_name, extractor = make_extractor(args.extract, args.extract_last_number, args.extract_json)
    # Without -c the context grows to hold the prompt plus every lane's tokens (one shared KV cache).
    pool = EnginePool(engine_choice_from_args(args), fit_context=args.ctx_size is None)
    # dist_size=top_n costs nothing extra and records each token's normaliser for replay.
    job = RunJob([LanePlan(r, t) for r, t in zip(requests, targets)], pool, dist_size=max(r.top_n for r in requests),
                 diverge=not samples, extractor=extractor if samples else None)
    out = Output(on_close=job.cancel)
    previous = signal.signal(signal.SIGINT, lambda *_: job.cancel())
    status = 0
    try:
        job.prepare()
        if variants:  # each variant through its own target's chat template
            job.with_requests([v.request(r, None if t.is_remote else chat_template_of(job.local_backend(t).engine))
                               for v, r, t in zip(variants, requests, targets)])
        elif args.chat:
            job.with_requests([chat_request(r, None if t.is_remote else job.local_backend(t).engine)
                               for r, t in zip(requests, targets)])
        labels = [lane_label(v, variants[0]) for v in variants]
        # a variants run: the session's prompt is the first variant's, and each lane keeps its own
        recording = RunRecording.from_args(args, kind="vote" if samples else "compare",
                                           prompt=variants[0].prompt if variants else None)
        if samples:
            recording.recorder.extractor, recording.recorder.extractor_pattern = _extractor_record(args)
        for k, lane in enumerate(job.lanes):
            endpoint = lane.target.endpoint
            own = {"label": labels[k], "variant": variants[k].name, "prompt": lane_prompt(variants[k].prompt)} if variants else {}
            recording.recorder.lane(k, request=lane.request,
                                    backend=backend_from_endpoint(endpoint) if endpoint is not None else None, **own)
        lanes = job.transcripts
        events = job.stream()
        try:
            for item in events:
                recording.recorder.feed_compare(item)
                if isinstance(item, LaneEvent) and isinstance(item.event, FailedEvent):
                    error_line(f"lane {item.lane}: {item.event.title}: {item.event.message}")
                    status = 1
                if args.json:
                    line = item.to_dict()
                    if isinstance(item, Divergence) and max(item.lane, item.reference) < len(lanes):
                        # the shared tokens' logprob differences (lane minus reference), to recompute "3x more sure"
                        line["logprob_deltas"] = [round(g.delta, 6) for g in confidence_gaps(
                            lanes[item.lane].tokens, lanes[item.reference].tokens, by_text=item.by == "text")]
                    if variants and isinstance(item, LaneEvent) and isinstance(item.event, StartEvent):
                        line["variant"] = variants[item.lane].name
                        line["label"] = labels[item.lane]
                    out.json(line)
                elif isinstance(item, LaneEvent) and isinstance(item.event, (DoneEvent, FailedEvent)):
                    if samples:
                        answer = extractor(lanes[item.lane].text) if finished(lanes[item.lane]) else None
                        text_report.write_sample(out, item.lane, lanes[item.lane], answer)
                    elif variants:
                        text_report.write_lane(out, item.lane, lanes[item.lane],
                                               variant=f"{variants[item.lane].name} ({labels[item.lane]})")
                    else:
                        text_report.write_lane(out, item.lane, lanes[item.lane])
                elif isinstance(item, BatchDone):
                    text_report.write_batch(out, item)
                elif isinstance(item, Divergence):
                    text_report.write_divergence(out, item, lanes)
                elif isinstance(item, Vote):
                    text_report.write_vote(out, item, extractor_name)
        finally:
            events.close()  # the lanes' generators end while their llama.cpp contexts still exist
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
    recording.finish()
    return out.status or status


def _bench(args: argparse.Namespace) -> int:
    from playground.compare.bench import run_bench

    if args.prompt is not None or args.lane or args.samples is not None:
        raise InvalidParameterError("--bench uses its own prompt and lanes: give only model options with it")
    if args.bench_tokens < 2 or args.bench_rounds < 1:
        raise InvalidParameterError("--bench-tokens must be at least 2 and --bench-rounds at least 1")
    result = run_bench(engine_choice_from_args(args), tokens=args.bench_tokens, rounds=args.bench_rounds)
    if args.json:
        Output().json(result)
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
