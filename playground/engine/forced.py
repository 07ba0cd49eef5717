"""Forced prefixes (branching): continue a completion from given tokens, reusing what is exact.

A request's ``force_ids`` are teacher-forced after the prompt before anything is sampled: each
forced token is scored on the row before it (its event carries the model's real logprob, top and
entropy, marked ``forced``), accepted into the sampler chain's history (the repeat penalty sees it)
without drawing a random number, and decoded ONE token per ``llama_decode``, the schedule a
generation decodes its tokens in. So a branch "the first i tokens of a completion, then token t"
computes exactly the rows the original run computed for those i tokens (bit for bit), and then
samples with a sampler whose random state is the fresh seed's, as a cold run's is.

What is reused (``plan_reuse``): the engine keeps a *trail*, the events of the tokens decoded one
by one after its last prompt (``Engine.trail``). A forced token whose trail event matches (same id
after the same earlier tokens, and the event holds at least the statistics now asked for) takes
that event's numbers instead of a row, and its KV cell stays when the cache still holds it. Only
the last forced token must be decoded again (its row is where sampling resumes, and llama.cpp keeps
no older rows), and, at a branch, the token before the branch point (the row the new token is
scored on). A branch from position i of the last run therefore decodes 2 tokens (1 at i = 0) and
evaluates no prompt token; the rest is exact reuse, not an approximation.

Against a cold run whose *prompt* is the prompt plus the forced tokens: that run prefills them in
the canonical 128-token chunks, not one per token, and llama.cpp is not batch-invariant, so its
logits may differ in the last bits from the branch's (tests/test_branching.py measures by how
much). The sampled tokens agree unless two candidates are within that noise of each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from playground.errors import InvalidParameterError
from playground.events import RawDistribution, TokenEvent


def holds(event: TokenEvent, top_n: int, dist_size: int, with_entropy: bool) -> bool:
    """Whether ``event`` carries every statistic a run with these settings reports."""
    if event.logprob is None or len(event.top) < top_n:
        return False
    if with_entropy and event.entropy is None:
        return False
    return dist_size == 0 or (event.dist is not None and len(event.dist.ids) >= dist_size)


def plan_reuse(trail: Sequence[TokenEvent], forced: Sequence[int], top_n: int, dist_size: int,
               with_entropy: bool) -> int:
    """How many leading forced tokens can take their trail event's numbers (see the module
    docstring): ``trail[j]`` was scored after the same tokens as ``forced[j]`` when every
    earlier id matches, so the count stops at the first mismatch."""
    n = 0
    for event, token in zip(trail, forced):
        if event.id != token or not holds(event, top_n, dist_size, with_entropy):
            break
        n += 1
    return n


def cells_to_keep(forced: Sequence[int], n_reused: int) -> Sequence[int]:
    """The forced tokens whose KV cells may stay: ``forced[:n_reused - 1]``. The rows after them
    are not kept by llama.cpp, so the first token whose event must be computed (``forced[n_reused]``)
    needs ``forced[n_reused - 1]`` decoded again, and the last forced token is always decoded
    (sampling resumes on its row)."""
    return forced[: max(0, min(n_reused, len(forced)) - 1)]


def restated(known: TokenEvent, i: int, text: str, t: float, top_n: int, dist_size: int,
             with_entropy: bool) -> TokenEvent:
    """A trail event as this run reports it: its numbers, this run's index, text, time and sizes."""
    dist = known.dist
    if dist_size == 0:
        dist = None
    elif dist is not None and len(dist.ids) > dist_size:
        dist = RawDistribution(np.asarray(dist.ids[:dist_size]), np.asarray(dist.logprobs[:dist_size]), dist.n_vocab, dist.log_z)
    # replace keeps any other statistic the event carries (the same row's)
    return replace(known, i=i, text=text, t=t, p_sampled=None, n_candidates=None, top=known.top[:top_n],
                   entropy=known.entropy if with_entropy else None, dist=dist, forced=True)


def force_tokens(engine: Any, seq: Any, forced: Sequence[int], known: Sequence[TokenEvent], t0: float,
                 dist_size: int, with_entropy: bool) -> Iterator[TokenEvent]:
    """Yield the forced tokens' events, decoding each one whose cell is not kept; afterwards the
    engine's last decode is ``forced[-1]``'s, whose row the first sampled token is drawn from.

    Args:
        engine: the ``Engine``, right after ``evaluate_prompt(prompt, keep=cells_to_keep(...))``
            (typed loosely: the engine imports this module).
        seq: the run's ``SequenceDecoder``, its ``pos`` at the end of the prompt.
        known: trail events for ``forced[:len(known)]`` (``plan_reuse``), reused as they are.
    """
    kept = len(engine.kv_tokens) - seq.pos  # cells of forced tokens the cache still holds
    trail = engine.trail
    for j, token in enumerate(forced):
        if j < len(known):
            event = seq.force(token, None, t0, dist_size, with_entropy, known=known[j])
            trail.append(known[j])
        else:
            logits = engine.prompt_logits if j == 0 else engine.logits_view()
            event = seq.force(token, logits, t0, dist_size, with_entropy)
            trail.append(event)
        if j >= kept:
            engine.decode_one(token)
        seq.pos += 1
        yield event


def check_forced(model: Any, n_prompt: int, forced: Sequence[int]) -> tuple[int, ...]:
    """The forced ids, checked: each a token of this vocabulary, and the prompt plus all of them
    leaving room for at least one generated token."""
    bad = [t for t in forced if not 0 <= t < model.n_vocab]
    if bad:
        raise InvalidParameterError(f"forced token id {bad[0]} is not in this model's vocabulary (0-{model.n_vocab - 1})")
    if forced:
        model.check_fits(n_prompt + len(forced))
    return tuple(int(t) for t in forced)
