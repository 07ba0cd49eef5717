"""Raw probabilities from one position's logits, with numpy, computing only what is asked.

Everything here is at temperature 1 and before any penalty: the model's own distribution. This
runs once per generated token, so it avoids allocation (scratch buffers are reused) and full
sorts: the head is found by thresholding below the max logit, which on a peaked distribution
touches a few hundred entries instead of partitioning the whole vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Nats below the best logit within which the head is looked for first (doubled until wide enough).
_HEAD_GAP = 4.0


@dataclass(frozen=True, slots=True)
class PositionStats:
    """What one position's logits say about the chosen token and its rivals."""

    logprob: float
    """log-softmax of the chosen token's logit."""
    top_ids: np.ndarray
    """Ids of the most likely tokens, most likely first (length k)."""
    top_logprobs: np.ndarray
    entropy: float | None
    log_z: float


def top_k_indices(logits: np.ndarray, k: int, max_logit: float) -> np.ndarray:
    """Indices of the ``k`` largest logits, largest first (ties: lowest id first).

    Instead of partitioning the whole vocabulary, find a threshold below the best logit that
    admits at least k tokens (counting is cheap; collecting scattered hits is not), then
    partition only those. A flat distribution or a large k falls back to the full partition.
    """
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    n = logits.shape[0]
    k = min(k, n)
    idx = None
    gap = _HEAD_GAP
    for _ in range(6):
        mask = logits >= max_logit - gap
        count = int(np.count_nonzero(mask))
        if count >= k:
            if count <= max(8 * k, 256):
                idx = np.flatnonzero(mask)
            break
        gap *= 2.0
    if idx is None:
        idx = np.arange(n)
    if idx.size > k:
        # idx is ascending, so among tokens tied at the cut the lowest ids are kept (stable runs)
        sub = logits[idx]
        kth = np.partition(sub, sub.size - k)[sub.size - k]
        above = idx[sub > kth]
        idx = np.concatenate((above, idx[sub == kth][: k - above.size]))
    # by logit descending, then id ascending
    return idx[np.lexsort((idx, -logits[idx]))]


class StatsComputer:
    """Per-position statistics with scratch buffers sized for one vocabulary."""

    def __init__(self, n_vocab: int) -> None:
        self._exp = np.empty(n_vocab, dtype=np.float32)

    def __call__(self, logits: np.ndarray, token: int, k: int, *, with_entropy: bool = True) -> PositionStats:
        m = float(logits.max())
        # exp(logits - m) in one scratch buffer: the logits arrive cold from llama.cpp, so every
        # pass over the vocabulary costs memory traffic; this keeps it to a handful of passes.
        e = np.subtract(logits, np.float32(m), out=self._exp)
        np.exp(e, out=e)
        # numpy sums float32 pairwise: relative error ~1e-7 here, far below what is displayed
        total = float(e.sum())
        log_z = m + math.log(total)
        entropy = None
        if with_entropy:
            # H = log Z - E[logit], E[logit] = sum(e * logit) / sum(e)
            entropy = log_z - float(np.dot(e, logits)) / total
        head = top_k_indices(logits, k, m)
        head_logprobs = (logits[head].astype(np.float64) - log_z).astype(np.float32)
        return PositionStats(
            logprob=float(logits[token]) - log_z,
            top_ids=head.astype(np.int32),
            top_logprobs=head_logprobs,
            entropy=entropy,
            log_z=log_z,
        )

