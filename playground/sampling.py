"""Reshape a position's raw distribution under sampler settings, as llama.cpp's chain does.

Pure numpy, cheap enough to run on every slider move. The chain is the engine's
(``playground/engine/sampler_chain.py``): penalties -> top-k -> top-p -> min-p -> temperature ->
dist, or penalties -> greedy. The maths follows ``llama-sampler.cpp``: the repeat penalty divides
positive logits and multiplies non-positive ones; top-p keeps the smallest prefix whose softmax
(at T = 1, over the current candidates) reaches p; min-p keeps logits >= max + log(p); temperature
divides the logits; the final probabilities are the softmax of the survivors.

Only a head of M tokens is known; every unseen token's logit is at most the last head logit (after
penalties, at most its image under the penalty). Each stage therefore yields *bounds* on how many
tokens survive; where a bound needs tokens outside the head, the result is flagged inexact rather
than guessed. Survivors are always a prefix of the sampler order (penalised logit, descending), so
a stage is fully described by its survivor count. Ties with unseen tokens at a cut count in the
head's favour (llama.cpp itself breaks ties in an unspecified order; the numbers are the same).

Arithmetic: penalties, temperature and the min-p threshold are done in float32 as llama.cpp does.
Top-p uses the exact softmax; llama.cpp sums its normaliser in float32 in id order, which without
top-k runs over the whole vocabulary and comes out ~1e-4 low on a real model, so when the cut lands
in a flat tail llama.cpp may keep one token fewer (that sum cannot be redone from a head).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from playground.events import RawDistribution
from playground.params import SamplerParams


@dataclass(frozen=True, slots=True)
class StageCut:
    """What one sampler stage keeps: survivor count and raw mass, as [min, max] bounds.

    ``exact`` means min == max and the survivors are known tokens (or all of them). Survivors are
    a prefix of ``Reshaped.ids``: when exact and ``n_min < len(ids)`` the cut mark goes between
    entries ``n_min - 1`` and ``n_min``; otherwise it lies somewhere in ``[n_min, n_max]``.
    """

    name: str
    active: bool
    n_min: int
    n_max: int
    mass_min: float
    """Raw (T = 1, unpenalised) probability mass of the survivors, lower bound."""
    mass_max: float
    exact: bool

    @property
    def n_kept(self) -> int:
        """Survivors after this stage (a lower bound when not ``exact``)."""
        return self.n_min

    @property
    def mass_kept(self) -> float:
        return self.mass_min


@dataclass(frozen=True, slots=True)
class Reshaped:
    """The head of one position's distribution before and after the sampler chain.

    Arrays are aligned and in sampler order (penalised logit, most likely first; with no repeat
    penalty that is the raw order). When ``exact`` is False, ``final_probs`` are only an estimate
    (the softmax over the head entries that may survive, ignoring unseen tokens) and must be shown
    as such; the stage counts and masses stay true bounds.
    """

    ids: np.ndarray
    raw_probs: np.ndarray
    final_probs: np.ndarray
    penalised: np.ndarray
    """True where the repeat penalty applied to the entry."""
    stages: tuple[StageCut, ...]
    """top-k, top-p, min-p in chain order; a single "greedy" stage under greedy."""
    n_vocab: int
    exact: bool
    greedy: bool

    @property
    def n_final(self) -> int:
        """Tokens in the final distribution (a lower bound when not ``exact``)."""
        return self.stages[-1].n_min

    def stage(self, name: str) -> StageCut | None:
        return next((s for s in self.stages if s.name == name), None)

    def rank_of(self, token: int) -> int | None:
        """Index of ``token`` in ``ids`` (0 = most likely), or None outside the head."""
        hits = np.flatnonzero(self.ids == token)
        return int(hits[0]) if hits.size else None

    def prob_of(self, token: int) -> float | None:
        """Final probability of ``token``; None when it is not known (outside the head or inexact)."""
        rank = self.rank_of(token)
        if not self.exact:
            return None
        if rank is None:
            return 0.0 if self.n_final <= self.ids.size else None
        return float(self.final_probs[rank])


def entropy(probs: np.ndarray) -> float:
    """Entropy in nats of a probability vector (zeros contribute nothing)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def head_from_logits(logits: np.ndarray, size: int) -> RawDistribution:
    """The ``size`` most likely tokens of a full logits vector as a RawDistribution.

    Log-probabilities are kept in float64 so that ``logprob + log_z`` gives back the float32 logit
    bit for bit (the engine's float32 head is within an ulp of it). Ties: lowest id first.
    """
    x = np.asarray(logits, dtype=np.float32)
    m = float(x.max())
    log_z = m + float(np.log(np.exp(x.astype(np.float64) - m).sum()))
    k = min(int(size), x.size)
    head = np.argpartition(-x, k - 1)[:k] if k < x.size else np.arange(x.size)
    head = head[np.lexsort((head, -x[head]))]
    return RawDistribution(head.astype(np.int32), x[head].astype(np.float64) - log_z, x.size, log_z)


def _penalty(x: np.ndarray, penalty: float) -> np.ndarray:
    """llama.cpp's repeat penalty, in float32 as it computes it."""
    pen = np.float32(penalty)
    return np.where(x <= 0, x * pen, x / pen).astype(np.float32)


def _member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.isin(a, b)`` for small integer arrays, several times faster (it runs per slider move)."""
    sb = np.sort(b)
    i = np.minimum(np.searchsorted(sb, a), sb.size - 1)
    return sb[i] == a


def reshape(dist: RawDistribution, params: SamplerParams, history: Sequence[int] = ()) -> Reshaped:
    """Apply ``params`` to the head ``dist`` exactly as the engine's llama.cpp chain would.

    Args:
        dist: head of the raw distribution (at least one entry).
        params: sampler settings (assumed valid).
        history: recent token ids (prompt tail + generated), oldest first; the repeat penalty
            looks at the last ``repeat_last_n`` of them (all of them for -1).
    """
    ids0 = np.asarray(dist.ids)
    if ids0.size == 0:
        raise ValueError("reshape needs at least one head entry")
    lp0 = np.asarray(dist.logprobs, dtype=np.float64)
    raw_logits = (lp0 + dist.log_z).astype(np.float32)
    n_vocab, size = dist.n_vocab, ids0.size
    n_tail = n_vocab - size
    tail_mass = dist.tail_mass if n_tail > 0 else 0.0

    # penalties: which head entries, and could unseen tokens have been penalised too?
    n_hist = params.repeat_last_n
    recent = np.asarray(history[-n_hist:] if n_hist > 0 else history if n_hist < 0 else (), dtype=np.int64)
    pen_on = params.repeat_penalty != 1.0 and n_hist != 0 and recent.size > 0
    penalised = _member(ids0, recent) if pen_on else np.zeros(size, dtype=bool)
    logits0 = np.where(penalised, _penalty(raw_logits, params.repeat_penalty), raw_logits)
    n_tail_hit = int(np.unique(recent[~_member(recent, ids0)]).size) if pen_on and n_tail > 0 else 0

    # bound on every unseen logit: the last head logit, or its image under a boosting (< 1) penalty
    bound = float(raw_logits[-1]) if n_tail > 0 else -np.inf
    if n_tail_hit:
        bound = max(bound, float(_penalty(np.float32([bound]), params.repeat_penalty)[0]))

    order = np.argsort(-logits0, kind="stable")
    ids, logits, raw_p, penalised = ids0[order], logits0[order], np.exp(lp0[order]), penalised[order]
    known = int(np.count_nonzero(logits >= bound))  # this prefix ranks above every unseen token
    m = float(logits[0])
    e = np.exp(logits.astype(np.float64) - m)
    cum_e, cum_raw = np.cumsum(e), np.cumsum(raw_p)
    # R = what follows the known prefix: head entries pushed below the bound, plus the tail
    tail_e = tail_mass * float(np.exp(dist.log_z - m))
    r_e = float(e[known:].sum()) + tail_e
    # penalised unseen tokens move the tail's sum, each by at most its largest possible share
    r_e_min, r_e_max = r_e, r_e
    if n_tail_hit and params.repeat_penalty > 1.0:
        r_e_min = max(0.0, r_e - n_tail_hit * float(np.exp(float(raw_logits[-1]) - m)))
    elif n_tail_hit:
        r_e_max = r_e + n_tail_hit * float(np.exp(bound - m))
    r_e_known = n_tail_hit == 0
    r_raw = float(raw_p[known:].sum()) + tail_mass

    def head_sum(c: np.ndarray, n: int) -> float:
        return float(c[min(n, known) - 1]) if min(n, known) > 0 else 0.0

    def cut(name: str, active: bool, lo: int, hi: int) -> StageCut:
        # survivors beyond the known prefix come from R, whose members are not known one by one
        everything = lo == n_vocab
        mass_lo = 1.0 if everything else head_sum(cum_raw, lo)
        mass_hi = 1.0 if hi == n_vocab else min(1.0, head_sum(cum_raw, hi) + (r_raw if hi > known else 0.0))
        return StageCut(name, active, lo, hi, mass_lo, mass_hi, bool(lo == hi and (hi <= known or everything)))

    if params.is_greedy:
        # llama.cpp's greedy takes the first maximum in id order: the lowest id among ties
        top = np.flatnonzero(logits == logits[0])
        winner = int(top[np.argmin(ids[top])])
        final = np.zeros(size)
        final[winner] = 1.0
        exact = bool(known > 0)
        stage = StageCut("greedy", True, 1, 1, float(raw_p[winner]), float(raw_p[winner]), exact)
        return Reshaped(ids, raw_p, final, penalised, (stage,), n_vocab, exact, True)

    lo = hi = n_vocab
    stages = []
    k = params.top_k
    if k > 0:
        lo, hi = min(lo, k), min(hi, k)
    stages.append(cut("top-k", k > 0, lo, hi))

    if params.top_p < 1.0:
        # softmax normaliser over the survivors, bounded by what R may contribute
        z_lo = head_sum(cum_e, lo) + (r_e_min if lo == n_vocab else 0.0)
        z_hi = head_sum(cum_e, hi) + (r_e_max if hi > known else 0.0)
        prefix = cum_e[:known]

        def first_reaching(z: float) -> int | None:
            j = int(np.searchsorted(prefix, params.top_p * z, side="left"))
            return j + 1 if j < known else None

        c_lo, c_hi = first_reaching(z_lo), first_reaching(z_hi)
        lo = min(lo, c_lo if c_lo is not None else known + 1)
        hi = min(hi, c_hi if c_hi is not None else n_vocab)
    stages.append(cut("top-p", params.top_p < 1.0, lo, hi))

    if params.min_p > 0.0 and known > 0:
        threshold = np.float32(logits[0]) + np.float32(np.log(np.float32(params.min_p)))
        c = int(np.count_nonzero(logits[:known] >= threshold))
        if c < known or bound < threshold:
            lo, hi = min(lo, c), min(hi, c)
        else:
            lo = min(lo, known)
    elif params.min_p > 0.0:
        lo = 1  # the maximum itself is unseen
    stages.append(cut("min-p", params.min_p > 0.0, lo, hi))

    # temperature + dist: softmax over the survivors
    temp = np.float32(params.temperature)
    n_est = min(hi, size)
    scaled = (logits[:n_est] / temp).astype(np.float64)
    final = np.zeros(size)
    final[:n_est] = np.exp(scaled - scaled[0])
    all_at_t1 = lo == hi == n_vocab and temp == 1.0 and r_e_known
    exact = bool(stages[-1].exact and (hi <= known or all_at_t1))
    final[:n_est] /= (float(cum_e[-1]) + tail_e) if all_at_t1 else final[:n_est].sum()
    return Reshaped(ids, raw_p, final, penalised, tuple(stages), n_vocab, exact, False)
