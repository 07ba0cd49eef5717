"""The lanes benchmark: N lanes in one batch against N single-lane runs, and decode scaling.

Both sides run the same ~1000-token prompt with the same sampler settings and seeds and do the
same work, except that the sequential side evaluates the prompt N times (a fresh KV cache per run,
as N separate ``playground generate`` calls would) and decodes one token per ``llama_decode``.
``same_tokens`` says whether they also produced the same ids. Past 512 KV cells and with more than
one thread they may not: llama.cpp decodes a single token with a flash-attention kernel that splits
the cache over threads, whose floats differ from the batched kernel's (as a 1-thread run differs
from a 2-thread one; tests/test_lanes.py shows lanes equal 1-thread single runs bit for bit). Rounds alternate
which side goes first so that machine noise hits both alike; figures are medians over rounds, with
the ratio of the fastest runs beside them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from playground.compare.events import BatchDone, LaneEvent
from playground.engine.generator import Engine
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine_options import EngineChoice
from playground.events import TokenEvent
from playground.params import GenerationRequest, SamplerParams

BENCH_SAMPLER = SamplerParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)
SCALING_LANES = (1, 2, 4, 8)
_PARAGRAPH = (
    "Day {n}. The lighthouse keeper climbed the spiral stairs at dusk, trimmed the wick, wound the "
    "clockwork that turned the great lens, and wrote in the log: wind from the north-west, a grey "
    "swell, two fishing boats back before dark, the supply ship late again."
)


def bench_prompt(engine: Engine, target_tokens: int = 1000) -> str:
    """A chat prompt of about ``target_tokens`` tokens: a keeper's log, then a request to go on."""
    head = "<|im_start|>user\nHere is a lighthouse keeper's log.\n"
    tail = "\nContinue the log with the next day, in the same style.<|im_end|>\n<|im_start|>assistant\n"
    days: list[str] = []
    while len(engine.model.tokenize(head + "\n".join(days) + tail, add_special=False)) < target_tokens:
        days.append(_PARAGRAPH.format(n=len(days) + 1))
    return head + "\n".join(days) + tail


def bench_requests(prompt: str, n: int, max_tokens: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(prompt, BENCH_SAMPLER.replace(seed=1000 + k), max_tokens=max_tokens, top_n=10, add_special=False)
        for k in range(n)
    ]


def run_sequential(engine: Engine, requests: Sequence[GenerationRequest]) -> tuple[float, list[list[int]]]:
    """Each request as its own single-lane run; (wall seconds, token ids per run)."""
    t0 = time.perf_counter()
    ids = [[e.id for e in engine.stream(r) if isinstance(e, TokenEvent)] for r in requests]
    return time.perf_counter() - t0, ids


def run_batched(runner: LaneRunner, requests: Sequence[GenerationRequest]) -> tuple[float, list[list[int]], BatchDone]:
    """All requests as lanes of one batch; (wall seconds, token ids per lane, summary)."""
    t0 = time.perf_counter()
    ids: list[list[int]] = [[] for _ in requests]
    summary = None
    for item in runner.stream(requests):
        if isinstance(item, LaneEvent) and isinstance(item.event, TokenEvent):
            ids[item.lane].append(item.event.id)
        elif isinstance(item, BatchDone):
            summary = item
    assert summary is not None
    return time.perf_counter() - t0, ids, summary


def run_bench(
    choice: EngineChoice,
    *,
    lanes: int = 4,
    tokens: int = 64,
    rounds: int = 3,
    prompt_tokens: int = 1000,
    scaling_lanes: Sequence[int] = SCALING_LANES,
) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    n_max = max(lanes, *scaling_lanes)
    choice = replace(choice, n_ctx=max(choice.n_ctx, prompt_tokens + 64 + n_max * tokens))
    single = choice.load(reuse_prefix=False)  # a plain one-sequence context, fresh KV per run
    multi = choice.load(n_seq_max=seq_max_for(n_max), reuse_prefix=False)  # the lanes re-evaluate the prompt too
    runner = LaneRunner(multi)
    try:
        prompt = bench_prompt(single, prompt_tokens)
        n_prompt = len(single.model.tokenize(prompt, add_special=False))
        warm = bench_requests(prompt, 2, 8)
        run_sequential(single, warm[:1])
        run_batched(runner, warm)
        requests = bench_requests(prompt, lanes, tokens)
        seq_s: list[float] = []
        bat_s: list[float] = []
        same = True
        for round_no in range(rounds):
            for side in ((0, 1) if round_no % 2 == 0 else (1, 0)):
                if side == 0:
                    secs, seq_ids = run_sequential(single, requests)
                    seq_s.append(secs)
                else:
                    secs, bat_ids, _ = run_batched(runner, requests)
                    bat_s.append(secs)
            same = same and seq_ids == bat_ids
        scaling = {}
        for n in scaling_lanes:
            rates, produced = [], 0
            for _ in range(rounds):
                _, _, summary = run_batched(runner, bench_requests(prompt, n, tokens))
                rates.append(summary.decode_tok_s or 0.0)
                produced = summary.n_tokens
            scaling[str(n)] = {"decode_tok_s": round(statistics.median(rates), 1), "tokens": produced}
        ratios = [b / s for b, s in zip(bat_s, seq_s)]
        return {
            "model": single.model.file.name,
            "threads": single.model.n_threads,
            "prompt_tokens": n_prompt,
            "lanes": lanes,
            "max_tokens": tokens,
            "rounds": rounds,
            "sequential_s": [round(s, 3) for s in seq_s],
            "batched_s": [round(s, 3) for s in bat_s],
            "ratio_median": round(statistics.median(ratios), 3),
            # other jobs on a shared machine only ever slow a run down: the fastest of each side is
            # the least disturbed estimate
            "ratio_of_minima": round(min(bat_s) / min(seq_s), 3),
            "same_tokens": same,
            "scaling": scaling,
        }
    finally:
        runner.close()
        for engine in (multi, single):
            engine.close()
