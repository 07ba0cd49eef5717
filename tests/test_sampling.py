"""``playground.sampling`` against llama.cpp's own sampler chain, run on the same logits.

The reference is the engine's chain (``build_chain``) applied through llama.cpp's C API to a full
``llama_token_data_array``: whatever survives it, with the probabilities ``dist`` leaves in ``p``.
"""

from __future__ import annotations

import ctypes
import itertools
import subprocess
import sys

import numpy as np
import pytest

from helpers import CHAT, collect
from playground.events import RawDistribution
from playground.params import GenerationRequest, SamplerParams
from playground.sampling import entropy, head_from_logits, reshape

TEMPERATURES = (0.2, 0.7, 1.0, 2.0)
#: top-k, top-p, min-p, repeat penalty; the temperature rotates with the case so that, over the
#: cases, every combination meets every temperature (a full product would take too long).
GRID = list(itertools.product((0, 1, 5, 40), (0.5, 0.9, 1.0), (0.0, 0.05, 0.3), (1.0, 1.3)))
PROMPTS = (
    CHAT.format("Name three colours of the rainbow."),
    "def fibonacci(n):\n    ",
    "한국어로 인사해 주세요:",
)


def llama_chain(logits: np.ndarray, params: SamplerParams, history: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Survivor ids and final probabilities from llama.cpp's chain (greedy: the chosen id, p = 1)."""
    import llama_cpp

    from playground.engine.sampler_chain import TOKEN_DATA_DTYPE, build_chain

    n_vocab = logits.shape[0]
    chain = build_chain(params, n_vocab, seed=1234)
    try:
        for token in history:  # the penalties' ring buffer keeps the last repeat_last_n
            llama_cpp.llama_sampler_accept(chain, token)
        cand = np.zeros(n_vocab, dtype=TOKEN_DATA_DTYPE)
        cand["id"] = np.arange(n_vocab)
        cand["logit"] = logits
        arr = llama_cpp.llama_token_data_array(
            data=cand.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(arr))
        # samplers may point ``data`` elsewhere: read the survivors where it points now
        address = ctypes.cast(arr.data, ctypes.c_void_p).value
        raw = (ctypes.c_char * (arr.size * TOKEN_DATA_DTYPE.itemsize)).from_address(address)
        out = np.frombuffer(raw, dtype=TOKEN_DATA_DTYPE).copy()
        if params.is_greedy:
            return np.array([out["id"][arr.selected]]), np.array([1.0])
        return out["id"].astype(np.int64), out["p"].astype(np.float64)
    finally:
        llama_cpp.llama_sampler_free(chain)


def float32_normaliser_ratio(logits: np.ndarray, params: SamplerParams, history: list[int]) -> float:
    """exact / llama.cpp's softmax normaliser in top-p, when it sums the whole vocabulary.

    Without top-k, llama.cpp's top-p sums ``expf(logit - max)`` in float32, in id order, over the
    whole vocabulary; terms below half an ulp of the running sum vanish, so on a real model it
    comes out ~2e-4 low and a cut in a flat tail can fall one token earlier than exact maths says.
    ``playground.sampling`` keeps the exact maths (it only sees a head); this recomputes
    llama.cpp's sum independently so that such a case can be explained, not waved through.
    """
    if params.top_k > 0:
        return 1.0  # the <= 40 sorted survivors sum exactly enough
    x = logits.astype(np.float32).copy()
    recent = sorted(set(history[-params.repeat_last_n :])) if params.repeat_penalty != 1.0 else []
    pen = np.float32(params.repeat_penalty)
    for t in recent:
        x[t] = x[t] * pen if x[t] <= 0 else x[t] / pen
    e32 = np.exp(x - x.max())
    z32 = float(np.cumsum(e32, dtype=np.float32)[-1])  # cumsum accumulates sequentially, as C does
    return float(np.exp(x.astype(np.float64) - float(x.max())).sum()) / z32


def assert_agrees(logits: np.ndarray, dist: RawDistribution, params: SamplerParams, history: list[int]) -> str:
    """Compare with llama.cpp: "inexact" (not compared), "agree" or "float32 top-p" (see above)."""
    r = reshape(dist, params, history)
    if not r.exact:
        return "inexact"
    ids, p = llama_chain(logits, params, history)
    n = ids.size
    where = f"{params} head={dist.ids.size}"
    if params.is_greedy:
        assert r.n_final == 1 and r.final_probs.sum() == 1.0, where
        assert r.ids[np.argmax(r.final_probs)] == ids[0], where
        return "agree"
    outcome = "agree"
    if r.n_final != n and params.top_p < 1.0:
        # explained only if llama.cpp's own float32 normaliser moves the cut (see above); its
        # float32 cumulative sum may add a few ulps more
        effective = params.top_p / float32_normaliser_ratio(logits, params, history)
        near = (reshape(dist, params.replace(top_p=effective * f), history) for f in (1.0, 1 - 1e-6, 1 + 1e-6))
        r = next((x for x in near if x.exact and x.n_final == n), r)
        outcome = "float32 top-p"
    assert r.n_final == n, where
    if n > r.ids.size:  # everything survives (T = 1, no cut): the head's share is exact
        assert n == logits.size
        want = np.zeros(logits.size)
        want[ids] = p
        np.testing.assert_allclose(r.final_probs, want[r.ids], atol=1e-5, err_msg=where)
        return outcome
    mine = r.ids[:n]
    # llama.cpp orders tied logits arbitrarily: same multiset of logits, same probabilities
    np.testing.assert_array_equal(np.sort(logits[mine]), np.sort(logits[ids]), err_msg=where)
    np.testing.assert_allclose(np.sort(r.final_probs[:n]), np.sort(p), atol=1e-5, err_msg=where)
    assert not r.final_probs[n:].any(), where
    _, i_mine, i_ref = np.intersect1d(mine, ids, return_indices=True)
    np.testing.assert_allclose(r.final_probs[i_mine], p[i_ref], atol=1e-5, err_msg=where)
    kept = float(np.exp(r_logprobs(logits)[ids]).sum())
    assert r.stages[-1].exact and r.stages[-1].mass_min == pytest.approx(kept, abs=1e-5), where
    return outcome


def r_logprobs(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


def run_grid(logits: np.ndarray, history: list[int], rotation: int = 0) -> dict[str, int]:
    """Each setting on a 512-token head, and on the whole vocabulary where 512 is not enough."""
    tally = {"agree": 0, "float32 top-p": 0, "inexact": 0}
    head = head_from_logits(logits, 512)
    full: RawDistribution | None = None
    settings = [
        SamplerParams(temperature=TEMPERATURES[(i + rotation) % len(TEMPERATURES)], top_k=k, top_p=p, min_p=mp, repeat_penalty=rp, repeat_last_n=64)
        for i, (k, p, mp, rp) in enumerate(GRID)
    ] + [SamplerParams(temperature=0.0, repeat_penalty=rp) for rp in (1.0, 1.3)]
    for params in settings:
        outcome = assert_agrees(logits, head, params, history)
        tally[outcome] += 1
        if outcome == "inexact":
            full = full or head_from_logits(logits, logits.size)
            outcome = assert_agrees(logits, full, params, history)
            assert outcome != "inexact", f"whole vocabulary not exact: {params}"
            tally[outcome] += 1
    return tally


@pytest.fixture(scope="module")
def real_logits(engine) -> list[tuple[np.ndarray, list[int]]]:
    """Logits at a few positions of a few prompts, with the prompt plus its top tokens as history."""
    cases = []
    for prompt in PROMPTS:
        tokens = engine.model.tokenize(prompt, add_special=False)
        for end in (len(tokens), max(1, len(tokens) // 2)):
            engine.evaluate_prompt(tokens[:end])
            logits = engine.logits_view().copy()
            top = np.argsort(-logits)[:3].tolist()  # make sure the penalty reaches the head
            cases.append((logits, tokens[:end] + top))
    return cases


def test_agrees_with_llama_cpp_on_real_logits(real_logits):
    tally = {"agree": 0, "float32 top-p": 0, "inexact": 0}
    for rotation, (logits, history) in enumerate(real_logits):
        for key, count in run_grid(logits, history, rotation).items():
            tally[key] += count
    compared = tally["agree"] + tally["float32 top-p"]
    assert tally["float32 top-p"] <= compared // 20, tally
    # most settings are decided inside a 512-token head
    assert tally["inexact"] < compared // 4, tally


def test_agrees_with_what_the_engine_sampled(engine):
    """Each streamed token's own (float32) head, reshaped, gives the engine's p_sampled and count."""
    params = SamplerParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=3)
    request = GenerationRequest(CHAT.format("Write a haiku about rain."), params, max_tokens=24, top_n=0, add_special=False)
    start, tokens, _ = collect(engine.stream(request, dist_size=256))
    history = list(start.prompt_tokens)
    checked = 0
    for tok in tokens:
        r = reshape(tok.dist, params, history)
        history.append(tok.id)
        if r.exact:
            assert r.n_final == tok.n_candidates
            assert r.prob_of(tok.id) == pytest.approx(tok.p_sampled, abs=1e-5)
            checked += 1
    assert checked >= len(tokens) - 2 and len(tokens) >= 8


def synthetic_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    v = 3000  # > 1024: llama.cpp's top-p takes its partial-sort path
    ties = np.round(rng.standard_normal(v) * 2).astype(np.float32)  # a handful of values, many ties
    flat = (rng.standard_normal(v) * 0.05).astype(np.float32)
    peaked = rng.standard_normal(v).astype(np.float32)
    peaked[17] = 40.0
    mixed_sign = rng.uniform(-3, 3, v).astype(np.float32)
    mixed_sign[:40] = 0.0  # the penalty multiplies zero logits: they stay zero
    return {"ties": ties, "flat": flat, "peaked": peaked, "mixed_sign": mixed_sign}


@pytest.mark.parametrize("name", sorted(synthetic_cases()))
def test_agrees_with_llama_cpp_on_adversarial_logits(name):
    logits = synthetic_cases()[name]
    history = [5, 17, 3, 17, 900] + np.argsort(-logits)[:4].tolist()
    tally = {"agree": 0, "float32 top-p": 0, "inexact": 0}
    for rotation in range(len(TEMPERATURES)):
        for key, count in run_grid(logits, history, rotation).items():
            tally[key] += count
    assert tally["float32 top-p"] <= (tally["agree"] + tally["float32 top-p"]) // 20, tally


def test_repeat_last_n_limits_the_history():
    logits = np.linspace(3, -3, 200).astype(np.float32)
    history = [0, 1, 2] + [150] * 10  # tokens 0..2 fall out of a 10-token window
    for n in (5, 10, 13):
        params = SamplerParams(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0, repeat_penalty=2.0, repeat_last_n=n)
        assert assert_agrees(logits, head_from_logits(logits, 200), params, history) == "agree"
    r = reshape(head_from_logits(logits, 200), SamplerParams(repeat_penalty=2.0, repeat_last_n=-1), history)
    assert r.penalised[np.isin(r.ids, [0, 1, 2, 150])].all() and r.penalised.sum() == 4


# --- the exact flag ---------------------------------------------------------------------------

LOGITS = (10.0 - 0.3 * np.arange(1000)).astype(np.float32)  # a 20-token head holds 99.75 %


def shaped(head: int, history: tuple[int, ...] = (), **settings) -> object:
    params = SamplerParams(**{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, **settings})
    return reshape(head_from_logits(LOGITS, head), params, history)


def true_counts(params_kw: dict, history: tuple[int, ...] = ()) -> int:
    params = SamplerParams(**{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, **params_kw})
    return llama_chain(LOGITS, params, list(history))[0].size


@pytest.mark.parametrize(
    "settings, history, exact",
    [
        ({"top_k": 5}, (), True),
        ({"top_k": 40}, (), False),  # top-k reaches past the 20-token head
        ({"top_p": 0.5}, (), True),  # the head already holds half the mass
        ({"top_p": 0.9999}, (), False),  # the cumulative mass is not reached within the head
        ({"min_p": 0.3}, (), True),
        ({"min_p": 0.001}, (), False),  # the min-p threshold falls below the last head entry
        ({"top_p": 0.9999, "min_p": 0.3}, (), True),  # min-p decides what top-p left open
        ({}, (), True),  # nothing cut, T = 1: the head's own probabilities
        ({"temperature": 1.5}, (), False),  # nothing cut, T != 1: unseen tokens share the mass
        ({"top_k": 5, "repeat_penalty": 1.3}, (0, 1, 500), True),  # penalised unseen tokens only sink
        ({"top_k": 5, "repeat_penalty": 0.5}, (500,), True),  # a boosted unseen token stays below
        ({"top_k": 5, "repeat_penalty": 0.05}, (30,), False),  # one that could climb into the top 5
        ({"top_p": 0.5, "repeat_penalty": 1.3}, (500,), True),  # the tail's change cannot move the cut
        ({"top_p": 0.594, "repeat_penalty": 1.3}, tuple(range(100, 400)), False),  # ... here it can
        ({"temperature": 0.0, "repeat_penalty": 3.0}, tuple(range(20)), False),  # whole head sinks
        ({"temperature": 0.0, "repeat_penalty": 3.0}, tuple(range(19)), True),
    ],
)
def test_exact_flag(settings, history, exact):
    r = shaped(20, history, **settings)
    assert r.exact is exact
    n_true = true_counts(settings, history)
    final = r.stages[-1]
    assert final.n_min <= n_true <= final.n_max  # bounds hold either way
    if exact:
        assert final.exact and final.n_min == n_true


def test_inexact_stage_bounds():
    r = shaped(20, top_k=40)
    k = r.stage("top-k")
    assert (k.n_min, k.n_max, k.exact) == (40, 40, False)  # how many is known, which ones is not
    assert k.mass_min == pytest.approx(r.raw_probs.sum()) and k.mass_max == pytest.approx(1.0)
    p = shaped(20, top_p=0.9999).stage("top-p")
    assert p.n_min == 21 and p.n_max == 1000 and not p.exact
    assert shaped(20, top_p=0.9999).prob_of(0) is None  # no invented number


# --- greedy, helpers --------------------------------------------------------------------------


def test_greedy_is_a_point_mass_on_the_argmax_after_penalties():
    r = shaped(50, temperature=0.0)
    assert r.greedy and r.exact and r.n_final == 1
    assert r.final_probs.sum() == 1.0 and r.final_probs[0] == 1.0 and r.ids[0] == 0
    r = shaped(50, (0,), temperature=0.5, greedy=True, repeat_penalty=100.0)
    assert r.prob_of(1) == 1.0 and r.prob_of(0) == 0.0 and r.prob_of(999) == 0.0
    ties = np.zeros(100, dtype=np.float32)
    ties[[9, 2]] = [4.0, 2.0]  # 9 is penalised down to 2.0: a tie that the raw order ranks 9 first
    g = SamplerParams(temperature=0.0, repeat_penalty=2.0)
    r = reshape(head_from_logits(ties, 10), g, [9])
    assert r.ids[0] == 9 and r.prob_of(2) == 1.0  # llama.cpp's greedy keeps the lowest id among ties
    assert llama_chain(ties, g, [9])[0][0] == 2


def test_top_p_keeps_the_token_that_reaches_p_exactly():
    logits = np.zeros(4, dtype=np.float32)  # p = 0.25 each, exactly, in float32 as in float64
    params = SamplerParams(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0)
    assert assert_agrees(logits, head_from_logits(logits, 4), params, []) == "agree"
    assert reshape(head_from_logits(logits, 4), params).n_final == 2


def test_head_from_logits_round_trips_the_logits():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal(5000).astype(np.float32) * 4
    logits[[10, 20]] = logits.max() + 1  # a tie at the top: lowest id first
    d = head_from_logits(logits, 64)
    assert d.ids[0] == 10 and d.ids[1] == 20 and d.n_vocab == 5000
    np.testing.assert_array_equal((d.logprobs + d.log_z).astype(np.float32), logits[d.ids])
    lp = r_logprobs(logits)
    assert d.tail_mass == pytest.approx(1 - np.exp(lp[d.ids]).sum(), abs=1e-9)
    assert sorted(d.ids) == sorted(np.argsort(-logits, kind="stable")[:64])


def test_entropy_and_ranks():
    p = np.array([0.5, 0.25, 0.25, 0.0])
    assert entropy(p) == pytest.approx(1.5 * np.log(2))
    r = shaped(20, top_k=5, temperature=0.7)
    assert r.rank_of(3) == 3 and r.rank_of(500) is None
    assert r.prob_of(500) == 0.0 and r.final_probs.sum() == pytest.approx(1.0)
    assert [s.n_kept for s in r.stages] == [5, 5, 5] and [s.active for s in r.stages] == [True, False, False]


def test_sampling_module_is_numpy_only():
    code = "import sys, playground.sampling; print([m for m in ('llama_cpp', 'textual') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
