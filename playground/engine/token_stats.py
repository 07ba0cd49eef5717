"""Raw probabilities from one position's logits, with numpy, computing only what is asked.

Everything here is at temperature 1 and before any penalty: the model's own distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PositionStats:
    """What one position's logits say about the chosen token and its rivals."""

    logprob: float
    """log-softmax of the chosen token's logit."""
    top_ids: np.ndarray
    """Ids of the most likely tokens, most likely first (length = max(top_n, dist_size))."""
    top_logprobs: np.ndarray
    entropy: float | None
    log_z: float


def position_stats(
    logits: np.ndarray, token: int, k: int, *, with_entropy: bool = True
) -> PositionStats:
    """Log-probability of ``token`` and the ``k`` most likely tokens, from raw logits.

    One pass for the max, one exp pass for the normaliser (shared with the entropy), and an
    ``argpartition`` for the head: O(n_vocab) with no full sort.
    """
    m = float(logits.max())
    shifted = logits - m
    e = np.exp(shifted)
    total = float(e.sum(dtype=np.float64))
    log_z = m + float(np.log(total))
    entropy = None
    if with_entropy:
        # H = log Z - E[x], with E[x] = sum(e * x) / sum(e) on the shifted logits (+ m)
        entropy = float(log_z - (m + float(np.dot(e, shifted)) / total))
    if k > 0:
        k = min(k, logits.shape[0])
        head = np.argpartition(logits, -k)[-k:]
        head = head[np.argsort(-logits[head], kind="stable")]
        head_logprobs = (logits[head].astype(np.float64) - log_z).astype(np.float32)
    else:
        head = np.empty(0, dtype=np.intp)
        head_logprobs = np.empty(0, dtype=np.float32)
    return PositionStats(
        logprob=float(logits[token]) - log_z,
        top_ids=head.astype(np.int32),
        top_logprobs=head_logprobs,
        entropy=entropy,
        log_z=log_z,
    )
