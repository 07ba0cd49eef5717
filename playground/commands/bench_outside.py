"""``playground bench --outside``: the headless stream timed from outside the process.

Two programs are run alternately, each as its own process, on the same model, context, threads and
prompt, both greedy: ``playground generate --json --top-n N`` (the probability stream, JSON
serialisation and writing included) and a plain llama.cpp loop (decode, ``llama_sampler_sample``,
print the token id). Each program's stdout lines are timestamped on arrival here; a run's figure is
its median gap between consecutive token lines. Pairs alternate which side goes first; the
headline is the median over pairs of plain gap / stream gap (1.0: the probabilities cost nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

# The plain side: the same context as the engine's (LlamaModel), greedy, one line per token.
_PLAIN_LOOP = r"""
import sys, llama_cpp
from playground.engine.batch import Batch
from playground.engine.llama_model import LlamaModel, ModelOptions
from playground.model_file import resolve_model
path, n_ctx, threads, n, prompt = sys.argv[1] or None, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
model = LlamaModel(resolve_model(path), ModelOptions(n_ctx=n_ctx, n_threads=threads))
tokens = model.tokenize(prompt, add_special=False)
batch = Batch(n_ctx)
for i, t in enumerate(tokens):
    batch.add(t, i, (0,), i == len(tokens) - 1)
batch.decode(model)
chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
pos = len(tokens)
out = sys.stdout
for i in range(n):
    token = llama_cpp.llama_sampler_sample(chain, model.ctx, -1)
    out.write(f"{token}\n"); out.flush()
    if model.is_eog(token):
        break
    batch.clear(); batch.add(token, pos, (0,), True); batch.decode(model); pos += 1
"""


def _timed_lines(cmd: list[str], *, want: str | None) -> list[float]:
    """Arrival times of the stdout lines (only those containing ``want``, when given)."""
    times: list[float] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if want is None or want.encode() in line:
                times.append(time.perf_counter())
        proc.wait()
    return times


def median_gap(times: list[float]) -> float:
    gaps = [b - a for a, b in zip(times, times[1:])]
    return statistics.median(gaps) if gaps else float("nan")


def run_outside(args: argparse.Namespace, prompt: str) -> dict[str, Any]:
    """Measure (see the module docstring) and return the figures."""
    python = sys.executable
    threads = args.threads or 1
    n_ctx = args.ctx_size or 2048
    model = getattr(args, "model", None) or ""
    stream = [python, "-m", "playground", "generate", "--json", "--top-n", str(args.top_n), "-t", str(threads),
              "-c", str(n_ctx), "-n", str(args.tokens), "--temp", "0", "--no-history"] + (["-m", model] if model else [])
    stream.append(prompt)
    plain = [python, "-c", _PLAIN_LOOP, model, str(n_ctx), str(threads), str(args.tokens), prompt]
    pairs: list[tuple[float, float]] = []
    counts: list[tuple[int, int]] = []
    for round_no in range(args.rounds):
        sides: dict[str, list[float]] = {}
        for side in (("plain", "stream") if round_no % 2 == 0 else ("stream", "plain")):
            sides[side] = _timed_lines(plain, want=None) if side == "plain" else _timed_lines(stream, want='"event": "token"')
        pairs.append((median_gap(sides["plain"]), median_gap(sides["stream"])))
        counts.append((len(sides["plain"]), len(sides["stream"])))
    ratios = [p / s for p, s in pairs]
    return {
        "threads": threads,
        "tokens": args.tokens,
        "top_n": args.top_n,
        "rounds": args.rounds,
        "lines": counts,
        "median_gap_ms": [[round(p * 1e3, 3), round(s * 1e3, 3)] for p, s in pairs],
        "ratio_per_pair": [round(r, 3) for r in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
