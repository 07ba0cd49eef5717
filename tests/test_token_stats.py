"""The per-token numpy statistics against plain, slow, independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from playground.engine.token_stats import StatsComputer, top_k_indices


@pytest.mark.parametrize("seed", range(5))
def test_top_k_indices_equals_a_full_sort(seed):
    rng = np.random.default_rng(seed)
    for trial in range(100):
        n = int(rng.integers(1, 3000))
        k = int(rng.integers(1, 600))
        x = (rng.normal(size=n) * rng.choice([0.01, 1, 5, 30])).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x)  # many exact ties, also at the cut
        expected = np.lexsort((np.arange(n), -x))[: min(k, n)]  # logit desc, then id asc
        assert np.array_equal(top_k_indices(x, k, float(x.max())), expected)


def test_stats_equal_float64_reference():
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=49152) * 4).astype(np.float32)
    stats = StatsComputer(logits.size)(logits, 123, 20)
    x = logits.astype(np.float64)
    log_z = x.max() + np.log(np.exp(x - x.max()).sum())
    logp = x - log_z
    assert stats.logprob == pytest.approx(logp[123], abs=1e-5)
    assert stats.log_z == pytest.approx(log_z, abs=1e-5)
    assert stats.entropy == pytest.approx(float(-(np.exp(logp) * logp).sum()), abs=1e-4)
    assert list(stats.top_ids) == list(np.argsort(-x, kind="stable")[:20])
    assert np.allclose(stats.top_logprobs, logp[stats.top_ids], atol=1e-5)
