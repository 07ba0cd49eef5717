"""The canonical prompt schedule: fixed-size chunks aligned to position 0, and exact reuse.

llama.cpp is not batch-invariant: the floats of a prompt position depend on which other tokens
were decoded in the same ``llama_decode`` (kernel choice, summation order). So the schedule is part
of the result. Every prompt is evaluated in chunks ``[0, C), [C, 2C), ...`` (the last one shorter),
whatever the cache held before, and a re-run reuses only whole chunks of the common prefix: each
reused chunk was then computed exactly as a cold run computes it (chunk k sees only chunks < k,
which are equal too), and evaluation resumes at a chunk boundary, as a cold run would reach it.
When the prompt is unchanged, the copy of its last row kept from the cold evaluation is sampled
from again: nothing is decoded and the numbers are identical.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Prompt tokens per ``llama_decode``, chosen by measurement (1042-token prompt, 1 thread, 2 busy
#: cores, medians of 3 interleaved rounds; cold cost vs one batch, re-run with the last 20 tokens
#: changed vs cold): 512: 1.06 / 0.52, 256: 1.11 / 0.30, 128: 0.95 / 0.19, 64: 1.06 / 0.08. The
#: issue's quieter figures at 2 threads: 0.98 / 0.99 / 1.04 / 1.11 for 512 / 256 / 128 / 64.
#: 128 is the smallest within 5% of one batch; a re-run evaluates at most 127 + the changed tokens.
DEFAULT_PREFILL_CHUNK = 128


def chunk_spans(start: int, end: int, chunk: int) -> list[tuple[int, int]]:
    """The canonical chunks covering ``[start, end)``; ``start`` must be a chunk boundary."""
    if start % chunk:
        raise ValueError(f"{start} is not a multiple of the chunk size {chunk}")
    return [(a, min(a + chunk, end)) for a in range(start, end, chunk)]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reusable_prefix(cached: Sequence[int], tokens: Sequence[int], chunk: int) -> int:
    """How many leading positions of ``cached`` (a prompt evaluated in the canonical schedule)
    a new prompt ``tokens`` may keep: whole chunks of the common prefix, and always fewer than
    ``len(tokens)`` so that the last position's logits are computed (by its own canonical chunk).

    Only full chunks qualify: ``cached``'s short last chunk held other tokens than the new prompt's
    chunk at that place (or the prompts would be equal, which the caller handles first).
    """
    shared = common_prefix_len(cached, tokens)
    shared = min(shared, len(tokens) - 1)
    return (shared // chunk) * chunk


def plan_shared_prefill(prompts: Sequence[Sequence[int]], chunk: int) -> list[tuple[int, int]]:
    """How lanes with different prompts share their common prefixes through the KV cache.

    Prompt 0 is evaluated on its own (``Engine.evaluate_prompt``). Each later prompt ``j`` gets
    ``(source, keep)``: copy positions ``[0, keep)`` from the sequence of prompt ``source < j``
    (``llama_memory_seq_cp``, no evaluation), then evaluate its own canonical chunks from ``keep``.
    ``keep`` is the longest ``reusable_prefix`` over the earlier prompts (whole chunks only, and
    short of the prompt's end), so every position holds exactly what a cold single run computes
    there; ``(-1, 0)`` when nothing is shared.
    """
    plan = [(-1, 0)] if prompts else []
    for j in range(1, len(prompts)):
        best = (-1, 0)
        for i in range(j):
            keep = reusable_prefix(prompts[i], prompts[j], chunk)
            if keep > best[1]:
                best = (i, keep)
        plan.append(best)
    return plan
