"""``playground bench``: the probability stream against plain llama.cpp generation, one process.

Both sides use the same model, context, threads, prompt, sampler chain and seed, and are run
interleaved (plain, engine, plain, engine, ...) so that machine noise hits both alike. Each token's
arrival gap is recorded; the headline figure is the ratio of the median gaps (plain / engine),
which a burst of load from another process cannot move much, reported beside the ratio of mean
rates. 1.0 means the probabilities cost nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import llama_cpp

from playground.cli_options import add_model_options, engine_choice_from_args
from playground.engine.generator import Engine
from playground.engine.sampler_chain import build_chain
from playground.events import DoneEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

BENCH_PROMPT = (
    "<|im_start|>user\nWrite a long, detailed story about a lighthouse keeper who finds a map "
    "in a bottle. Describe every day of the journey.<|im_end|>\n<|im_start|>assistant\n"
)
BENCH_SAMPLER = SamplerParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=1234)


def plain_generation(engine: Engine, prompt_tokens: list[int], n_tokens: int) -> list[float]:
    """llama.cpp's own loop: decode, ``llama_sampler_sample``, nothing else. Returns token arrival times."""
    model = engine.model
    chain = build_chain(BENCH_SAMPLER, model.n_vocab, BENCH_SAMPLER.seed)
    try:
        engine.evaluate_prompt(prompt_tokens)
        times: list[float] = []
        while len(times) < n_tokens:
            token = llama_cpp.llama_sampler_sample(chain, model.ctx, -1)
            times.append(time.perf_counter())
            if model.is_eog(token) or len(times) >= n_tokens:
                break
            engine.decode_one(token)
        return times
    finally:
        llama_cpp.llama_sampler_free(chain)


def engine_generation(engine: Engine, n_tokens: int, top_n: int) -> list[float]:
    request = GenerationRequest(BENCH_PROMPT, BENCH_SAMPLER, max_tokens=n_tokens, top_n=top_n, add_special=False)
    times: list[float] = []
    for event in engine.stream(request):
        if isinstance(event, TokenEvent):
            times.append(event.t)
        elif isinstance(event, DoneEvent):
            break
    return times


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="probability stream vs plain llama.cpp generation, same run")
    add_model_options(bench)
    bench.add_argument("--tokens", type=int, default=None, help="tokens per measured run (default 64)")
    bench.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 10)")
    bench.add_argument("--top-n", type=int, default=20, help="alternatives per token in the engine runs (default 20)")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.add_argument("--outside", action="store_true",
                       help="time token lines from outside: `generate --json` vs a plain llama.cpp loop, each its own process, "
                            "alternately, greedy (--tokens default then 160, --rounds 5)")


def run(args: argparse.Namespace) -> int:
    if args.outside:
        return _run_outside(args)
    args.tokens = args.tokens or 64
    args.rounds = args.rounds or 10
    choice = engine_choice_from_args(args)
    engine = choice.load(reuse_prefix=False)  # both sides evaluate the prompt from scratch
    prompt_tokens = engine.model.tokenize(BENCH_PROMPT, add_special=False)
    plain_rates: list[float] = []
    engine_rates: list[float] = []
    plain_gaps: list[float] = []
    engine_gaps: list[float] = []
    # One warm-up of each so that page faults and caches do not favour the second runner.
    plain_generation(engine, prompt_tokens, 16)
    engine_generation(engine, 16, args.top_n)
    for round_no in range(args.rounds):
        order = (0, 1) if round_no % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                g = gaps(plain_generation(engine, prompt_tokens, args.tokens))
                plain_gaps += g
                plain_rates.append(len(g) / sum(g) if g else 0.0)
            else:
                g = gaps(engine_generation(engine, args.tokens, args.top_n))
                engine_gaps += g
                engine_rates.append(len(g) / sum(g) if g else 0.0)
    ratios = [e / p if p else 0.0 for p, e in zip(plain_rates, engine_rates)]
    median_plain = statistics.median(plain_gaps)
    median_engine = statistics.median(engine_gaps)
    result = {
        "model": engine.model.file.name,
        "threads": engine.model.n_threads,
        "tokens_per_run": args.tokens,
        "rounds": args.rounds,
        "top_n": args.top_n,
        "plain_tok_s": [round(r, 1) for r in plain_rates],
        "engine_tok_s": [round(r, 1) for r in engine_rates],
        "ratio_per_round": [round(r, 3) for r in ratios],
        "median_gap_ms": {"plain": round(median_plain * 1e3, 3), "engine": round(median_engine * 1e3, 3)},
        "ratio_median_gap": round(median_plain / median_engine, 3),
        "ratio_mean_rate": round(statistics.mean(engine_rates) / statistics.mean(plain_rates), 3),
    }
    engine.close()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"model {result['model']}, {result['threads']} threads, {args.tokens} tokens x {args.rounds} rounds, top-n {args.top_n}")
        print(f"plain llama.cpp  tok/s: {', '.join(f'{r:.1f}' for r in plain_rates)}")
        print(f"engine (+probs)  tok/s: {', '.join(f'{r:.1f}' for r in engine_rates)}")
        print(f"ratio per round: {', '.join(f'{r:.3f}' for r in ratios)}")
        print(f"median token gap: plain {median_plain * 1e3:.2f} ms, engine {median_engine * 1e3:.2f} ms")
        print(f"ratio of mean rates (engine / plain): {result['ratio_mean_rate']:.3f}")
        print(f"ratio of median gaps (plain / engine): {result['ratio_median_gap']:.3f}  (target >= 0.95)")
    return 0


def _run_outside(args: argparse.Namespace) -> int:
    from playground.commands.bench_outside import run_outside

    args.tokens = args.tokens or 160
    args.rounds = args.rounds or 5
    result = run_outside(args, BENCH_PROMPT)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"from outside: {result['threads']} threads, {args.tokens} tokens, top-n {args.top_n}, {args.rounds} pairs, "
              f"load {result['load_avg']}")
        for (p, s), r in zip(result["median_gap_ms"], result["ratio_per_pair"]):
            print(f"  median gap plain {p:.2f} ms, stream {s:.2f} ms: {r:.3f}")
        print(f"ratio (plain gap / stream gap), median of pairs: {result['ratio_median']:.3f}  (target >= 0.98)")
    return 0
