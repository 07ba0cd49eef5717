"""Reshape a position's raw distribution under sampler settings, as llama.cpp's chain does.

Settings that use only the original five stages in llama.cpp's order take the exact-bounds path
described here; anything else (typical, top-n-sigma, XTC, DRY, presence/frequency penalties,
logit bias, mirostat, dynamic temperature, a custom ``samplers`` order) goes through
``_reshape_general``, which emulates every stage and says where it cannot be exact.

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

from collections.abc import Mapping, Sequence
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


def reshape(dist: RawDistribution, params: SamplerParams, history: Sequence[int] = (), *,
            logit_bias: Sequence[tuple[int, float]] | None = None,
            dry_breakers: Mapping[int, Sequence[Sequence[int]]] | None = None) -> Reshaped:
    """Apply ``params`` to the head ``dist`` exactly as the engine's llama.cpp chain would.

    Args:
        dist: head of the raw distribution (at least one entry).
        params: sampler settings (assumed valid).
        history: recent token ids (prompt tail + generated), oldest first; the penalties look at
            the last ``repeat_last_n`` of them (all of them for -1), DRY at ``dry_penalty_last_n``.
        logit_bias: ``params.logit_bias`` resolved to ids (text biases need the tokenizer); None
            uses the biases given by id and flags text ones inexact.
        dry_breakers: DRY's processed sequence breakers (see ``dry_penalties``); None with breakers
            set flags DRY inexact.
    """
    if not is_classic(params):
        return _reshape_general(dist, params, history, logit_bias, dry_breakers)
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


# -- the full llama.cpp set: any order, every stage ----------------------------------------------

#: llama.cpp's mirostat v1 window (common_sampler_init's m)
_MIROSTAT_M = 100
_CLASSIC = ("penalties", "top_k", "top_p", "min_p", "temperature")
#: stage name in ``SamplerParams.samplers`` -> the name its cut carries here
_CUT_NAMES = {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p", "typ_p": "typical", "top_n_sigma": "top-n-sigma",
              "xtc": "xtc"}


def is_classic(params: SamplerParams) -> bool:
    """Whether only the original five stages act, in llama.cpp's default relative order (the exact
    head-bounds path above handles those)."""
    if params.logit_bias or params.mirostat or params.dynatemp_range > 0.0:
        return False
    if params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
        return False
    if any(params.stage_on(s) for s in ("dry", "top_n_sigma", "typ_p", "xtc")):
        return False
    acting = [s for s in params.samplers if s in _CLASSIC and (params.stage_on(s) or s == "temperature")]
    wanted = [s for s in _CLASSIC if params.stage_on(s) or s == "temperature"]
    return acting == wanted


def dry_penalties(params: SamplerParams, history: Sequence[int],
                  breakers: Mapping[int, Sequence[Sequence[int]]]) -> dict[int, float]:
    """DRY's logit penalty per token after ``history``, as ``llama_sampler_dry_apply`` computes it.

    ``breakers``: head token -> tails of the processed sequence breakers (an empty tail: a one-token
    breaker), i.e. llama.cpp's ``dry_processed_breakers``.
    """
    n_last = params.dry_penalty_last_n if params.dry_penalty_last_n > 0 else len(history)
    last = list(history[-n_last:]) if n_last else []
    n = len(last)
    if params.dry_multiplier == 0.0 or n <= params.dry_allowed_length:
        return {}
    rat = lambda i: last[n - 1 - i]  # noqa: E731 - llama.cpp's ring_buffer.rat: i-th from the end
    rep_limit = n
    for i in range(n):
        tails = breakers.get(rat(i))
        if tails is None:
            continue
        longest = -1
        for tail in tails:
            if longest < len(tail) <= i and all(tail[o] == rat(i - o - 1) for o in range(len(tail))):
                longest = len(tail)
        if longest >= 0:
            rep_limit = i - longest
            break
    if rep_limit < params.dry_allowed_length:
        return {}
    # repeat[j]: how long the suffix of the context also ends just before position j (naive, O(N^2)
    # on at most dry_penalty_last_n tokens; llama.cpp's Z-algorithm computes the same numbers)
    repeat = [0] * n
    for k in range(1, n):
        m = 0
        while m + k < n and rat(m) == rat(m + k):
            m += 1
        repeat[n - 1 - k] = min(m, rep_limit)
    longest_by_token: dict[int, int] = {}
    for i in range(n - 1):
        length = repeat[i]
        if length >= params.dry_allowed_length:
            token = rat(n - 2 - i)
            if longest_by_token.get(token, -1) < length:
                longest_by_token[token] = length
    base = np.float32(params.dry_base)
    max_exponent = int(np.float32(88.7228391) / np.float32(np.log(base))) if base > 1.000001 else 0
    out = {}
    for token, length in longest_by_token.items():
        if any(len(t) == 0 for t in breakers.get(token, ())):
            continue  # a one-token breaker is never penalised
        exp = length - params.dry_allowed_length
        if max_exponent > 0 and exp > max_exponent:
            exp = max_exponent
        out[token] = float(np.float32(params.dry_multiplier) * np.float32(base ** exp))
    return out


def _softmax32(x: np.ndarray) -> np.ndarray:
    """llama_sampler_softmax_impl: float32 expf, summed in array order (x sorted descending)."""
    e = np.exp(x - np.float32(x.max()), dtype=np.float32)
    return (e / np.cumsum(e, dtype=np.float32)[-1]).astype(np.float32)


def _reshape_general(dist: RawDistribution, params: SamplerParams, history: Sequence[int],
                     logit_bias: Sequence[tuple[int, float]] | None,
                     dry_breakers: Mapping[int, Sequence[Sequence[int]]] | None) -> Reshaped:
    """Every stage, in ``params.samplers`` order, emulated on the head as llama.cpp computes it.

    The candidate set is *open* while it may hold tokens outside the head. A stage on an open set is
    exact only where the head alone decides it (top-k within the known prefix, min-p whose threshold
    lies above every unseen logit, top-p whose cut lands in the known prefix, with the tail's mass
    unchanged); once a cut closes the set, every later stage is exact (float32 as llama.cpp). Stages
    that need the whole set (typical, top-n-sigma, dynamic temperature, mirostat) on an open set are
    estimated on the head and flagged. Two stages are random or stateful and are never exact here:
    XTC draws a number per token (shown as if it fires when ``xtc_probability`` is 1, where it always
    does, else as if it does not), and mirostat's ``mu`` moves with every token (shown at its
    starting value 2·tau). A text logit bias needs ``logit_bias`` resolved by the caller, and DRY
    with sequence breakers needs ``dry_breakers`` (llama.cpp's processed form); without them the
    view is flagged inexact rather than guessed.
    """
    ids0 = np.asarray(dist.ids, dtype=np.int64)
    if ids0.size == 0:
        raise ValueError("reshape needs at least one head entry")
    lp0 = np.asarray(dist.logprobs, dtype=np.float64)
    raw = (lp0 + dist.log_z).astype(np.float32)
    n_vocab, size = dist.n_vocab, ids0.size
    n_tail = n_vocab - size
    tail_mass = dist.tail_mass if n_tail > 0 else 0.0
    bound = np.float32(raw[-1]) if n_tail > 0 else np.float32(-np.inf)  # every unseen logit is <= this
    in_head = {int(t): i for i, t in enumerate(ids0)}
    exact = True
    tail_touched = False  # an unseen token's logit moved (down): the tail's mass is no longer known

    x = raw.copy()
    if logit_bias is None:
        if any(b.text is not None for b in params.logit_bias):
            exact = False
        logit_bias = [(b.token, b.bias) for b in params.logit_bias if b.token is not None]

    def modify(deltas: dict[int, float], kind: str) -> None:
        # kind: "add" (bias, DRY, presence/frequency) on the float32 logit
        nonlocal exact, tail_touched
        for token, delta in deltas.items():
            i = in_head.get(token)
            if i is None:
                if delta > 0:
                    exact = False  # an unseen token may now outrank the head
                elif delta < 0:
                    tail_touched = True
            elif alive[i]:
                x[i] = np.float32(x[i] + np.float32(delta))

    alive = np.ones(size, dtype=bool)
    penalised = np.zeros(size, dtype=bool)
    if logit_bias:
        modify({t: b for t, b in logit_bias}, "add")
        for t, _ in logit_bias:
            if t in in_head:
                penalised[in_head[t]] = True

    open_set = n_tail > 0
    n_open = n_vocab  # candidates while open (head alive + unseen ones)
    stages: list[StageCut] = []
    temp_applied = np.float32(1.0)
    raw_p = np.exp(lp0)

    def order() -> np.ndarray:
        idx = np.flatnonzero(alive)
        return idx[np.argsort(-x[idx], kind="stable")]

    def known_prefix(idx: np.ndarray) -> np.ndarray:
        """Alive head entries (sorted) that rank above every unseen candidate."""
        return idx[x[idx] >= bound * (1 / temp_applied if np.isfinite(bound) else 1)] if open_set else idx

    def add_cut(name: str, cut_exact: bool) -> None:
        idx = np.flatnonzero(alive & np.isfinite(x))
        n = int(idx.size) + (n_open - int(alive.sum()) if open_set else 0)
        mass = float(raw_p[idx].sum()) + (tail_mass if open_set else 0.0)
        stages.append(StageCut(name, True, n, n, min(1.0, mass), min(1.0, mass), bool(cut_exact and exact)))

    def close(keep: np.ndarray) -> None:
        nonlocal open_set
        alive[:] = False
        alive[keep] = True
        open_set = False

    miro = bool(params.mirostat) and not params.is_greedy
    names = ("temperature", "mirostat") if miro else tuple(params.samplers)
    if params.is_greedy:  # greedy: only the logit-changing stages, then the first maximum
        names = tuple(s for s in params.samplers if s in ("penalties", "dry"))
    for name in names:
        if not miro and not params.stage_on(name):
            continue
        idx = order()
        if name == "penalties":
            n_hist = params.repeat_last_n
            recent = list(history[-n_hist:]) if n_hist > 0 else list(history)
            counts: dict[int, int] = {}
            for t in recent:
                counts[int(t)] = counts.get(int(t), 0) + 1
            pen = np.float32(params.repeat_penalty)
            for token, count in counts.items():
                i = in_head.get(token)
                shift = np.float32(np.float32(count) * np.float32(params.frequency_penalty) + np.float32(params.presence_penalty))
                if i is None:
                    if params.repeat_penalty < 1.0 or shift < 0:
                        exact = False
                    elif params.repeat_penalty > 1.0 or shift > 0:
                        tail_touched = True
                    continue
                if alive[i]:
                    v = x[i] * pen if x[i] <= 0 else x[i] / pen
                    x[i] = np.float32(np.float32(v) - shift)
                    penalised[i] = True
        elif name == "dry":
            if dry_breakers is None and params.dry_sequence_breakers:
                exact = False
            deltas = dry_penalties(params, history, dry_breakers or {})
            modify({t: -d for t, d in deltas.items()}, "add")
            for t in deltas:
                if t in in_head:
                    penalised[in_head[t]] = True
        elif name == "top_k":
            k = min(params.top_k, n_open if open_set else idx.size)
            known = known_prefix(idx)
            if not open_set or k <= known.size:
                close(idx[:k])
                add_cut("top-k", True)
            else:
                n_open = k
                add_cut("top-k", False)
        elif name == "min_p":
            known = known_prefix(idx)
            if known.size == 0:
                exact = False
                add_cut("min-p", False)
                continue
            threshold = np.float32(x[idx[0]] + np.float32(np.log(np.float32(params.min_p))))
            keep = idx[x[idx] >= threshold]
            if not open_set or bound / temp_applied < threshold:
                close(keep if keep.size else idx[:1])
                add_cut("min-p", True)
            else:
                exact = False
                close(keep)
                add_cut("min-p", False)
        elif name == "top_p":
            if open_set:
                m = float(x[idx[0]])
                e = np.exp(x[idx].astype(np.float64) - m)
                z = float(e.sum()) + tail_mass * float(np.exp(dist.log_z / float(temp_applied) - m)) if temp_applied == 1 else None
                known = known_prefix(idx)
                c = np.cumsum(e)[: known.size]
                j = int(np.searchsorted(c, params.top_p * z, side="left")) if z is not None else known.size
                if z is not None and j < known.size and not tail_touched:
                    close(idx[: j + 1])
                    add_cut("top-p", True)
                else:
                    exact = False
                    close(idx[: min(j + 1, idx.size)])
                    add_cut("top-p", False)
            else:
                p = _softmax32(x[idx])
                cum = np.cumsum(p, dtype=np.float32)
                j = int(np.argmax(cum >= np.float32(params.top_p))) if (cum >= np.float32(params.top_p)).any() else idx.size - 1
                close(idx[: j + 1])
                add_cut("top-p", True)
        elif name == "typ_p":
            if open_set:
                exact = False
            p = _softmax32(x[idx])
            ent = np.float32(0.0)
            for q in p:  # sequential float32, as llama.cpp sums it
                ent = np.float32(ent + np.float32(-q * np.log(q))) if q > 0 else ent
            with np.errstate(divide="ignore"):
                score = np.abs(-np.log(p) - ent).astype(np.float32)
            by = np.argsort(score, kind="stable")
            cum = np.cumsum(p[by], dtype=np.float32)
            over = np.flatnonzero(cum > np.float32(params.typical_p))
            last = int(over[0]) + 1 if over.size else by.size
            close(idx[by[:last]])
            add_cut("typical", True)
        elif name == "top_n_sigma":
            if open_set:
                exact = False
                open_set = False
            fin = idx[np.isfinite(x[idx])]
            if fin.size > 1:
                vals = x[fin]
                mean = np.float32(np.cumsum(vals, dtype=np.float32)[-1] / np.float32(fin.size))
                acc = np.cumsum(((vals - mean).astype(np.float64) ** 2).astype(np.float32), dtype=np.float32)[-1]
                std = np.float32(np.sqrt(np.float32(acc / np.float32(fin.size))))
                cut = np.float32(vals.max() - np.float32(params.top_n_sigma) * std)
                x[fin[vals < cut]] = -np.inf
            add_cut("top-n-sigma", True)
        elif name == "xtc":
            fires = params.xtc_probability >= 1.0
            if not fires:
                exact = False  # a random draw decides; shown as if it does not fire
            if open_set:
                exact = exact and not fires
            if fires and idx.size >= 2:
                p = _softmax32(x[idx])
                below = np.flatnonzero(p < np.float32(params.xtc_threshold))
                lead = int(below[0]) if below.size else int(p.size)  # leading entries at or above it
                pos_last = max(lead - 1, 0)
                if pos_last > 0:
                    close(idx[pos_last:])
            add_cut("xtc", True)
        elif name == "temperature":
            if params.dynatemp_range > 0.0 and not miro and idx.size > 1:
                if open_set:
                    exact = False
                    open_set = False
                t_lo = max(0.0, params.temperature - params.dynatemp_range)
                t_hi = params.temperature + params.dynatemp_range
                p = _softmax32(x[idx])
                ent = np.float32(0.0)
                for q in p:
                    if q > 0:
                        ent = np.float32(ent - np.float32(q * np.log(q)))
                norm = np.float32(ent / np.float32(-np.log(np.float32(1.0 / idx.size))))
                t = np.float32(np.float32(t_lo) + np.float32(t_hi - t_lo) * np.float32(norm ** np.float32(params.dynatemp_exponent)))
            else:
                t = np.float32(params.temperature)
            x[idx] = (x[idx] / t).astype(np.float32)
            temp_applied = np.float32(temp_applied * t)
        elif name == "mirostat":
            exact = False  # mu depends on every earlier token; shown at its start, 2 * tau
            if open_set:
                open_set = False
            p = _softmax32(x[idx])
            mu = np.float32(2.0 * params.mirostat_tau)
            if params.mirostat == 1:
                m = min(_MIROSTAT_M - 1, idx.size - 1)
                t_i = np.log(np.arange(2, m + 2, dtype=np.float32) / np.arange(1, m + 1, dtype=np.float32)).astype(np.float32)
                b_i = np.log(p[:m] / p[1 : m + 1]).astype(np.float32)
                s_hat = float((t_i * b_i).sum() / (t_i * t_i).sum()) if m > 0 else 1.0
                eps = s_hat - 1
                k = (eps * 2.0 ** float(mu) / (1 - n_vocab ** -eps)) ** (1 / s_hat) if eps != 0 else 1.0
                close(idx[: max(int(k) if np.isfinite(k) else idx.size, 1)])
            else:
                first_over = np.flatnonzero(-np.log2(p) > mu)
                keep = int(first_over[0]) if first_over.size else idx.size
                close(idx[: max(keep, 1)])
            add_cut("mirostat", False)

    idx = order()
    if params.is_greedy:
        top = idx[x[idx] == x[idx[0]]]
        winner = int(top[np.argmin(ids0[top])])  # llama.cpp's greedy: the first maximum in id order
        view = order()
        final = np.zeros(size)
        final[winner] = 1.0
        ok = bool(exact and (not open_set or x[winner] >= bound))
        stage = StageCut("greedy", True, 1, 1, float(raw_p[winner]), float(raw_p[winner]), ok)
        return Reshaped(ids0[view].astype(np.int32), raw_p[view], final[view], penalised[view], (stage,), n_vocab, ok, True)
    fin = idx[np.isfinite(x[idx])]
    final = np.zeros(size)
    if fin.size:
        e = np.exp(x[fin] - np.float32(x[fin].max()), dtype=np.float32).astype(np.float64)
        final[fin] = e / e.sum()
    if open_set:
        exact = False  # no stage closed the set: the unseen tokens share the mass
    if not stages:
        n = int(fin.size) + (n_vocab - size if open_set else 0)
        stages.append(StageCut("all", False, n, n, 1.0, 1.0, exact))
    # arrays in the order of the logits after the logit-changing stages (the sampler's order)
    view = np.argsort(-np.where(np.isfinite(x) & alive, x, -np.inf), kind="stable")
    view = np.concatenate([view[alive[view]], view[~alive[view]]])
    return Reshaped(ids0[view].astype(np.int32), raw_p[view], final[view], penalised[view], tuple(stages), n_vocab,
                    bool(exact), False)
