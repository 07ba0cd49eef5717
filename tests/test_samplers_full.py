"""The full llama.cpp sampler set: ``SamplerChain`` against llama.cpp's own chain on the same logits.

The reference chain is built here with direct ``llama_cpp`` calls, the way llama.cpp's
``common_sampler_init`` builds it (logit bias first, the stages in order, then dist, or temperature
-> mirostat), independently of ``build_chain``. Both see the same real logits (several positions
of the embedded model), the same history and the same seed; each step must give the same token,
the same ``p_sampled`` and the same survivor count, and the stage must visibly act (the same chain
without it gives something else at some step), so that a stage silently left out fails.
"""

from __future__ import annotations

import ctypes
import json
import subprocess

import numpy as np
import pytest

from conftest import playground_cmd, subprocess_env
from playground.errors import InvalidParameterError
from playground.params import DEFAULT_SAMPLERS, LogitBias, SamplerParams, parse_sampler_order

SEED = 4321
STEPS = 8
#: repetitive history, so that the penalties and DRY have something to punish
HISTORY_TEXT = "The cat sat on the mat. The cat sat on the mat. The cat sat on the"
PROMPTS = (HISTORY_TEXT, "Once upon a time, in a land far away,", "def add(a, b):\n    return", "Colours: red, green,")


@pytest.fixture(scope="module")
def rows(engine):
    """Next-token logits of a few real prompts (copies), and the history's tokens."""
    model = engine.model
    out = []
    for text in PROMPTS:
        engine.evaluate_prompt(model.tokenize(text))
        out.append(np.array(engine.prompt_logits, dtype=np.float32))
    return out, model.tokenize(HISTORY_TEXT, add_special=False)


# -- the independent reference ------------------------------------------------------------------

def reference_chain(p: SamplerParams, model, seed: int):
    """llama.cpp's chain for ``p``, as common_sampler_init adds it (every stage, even no-ops)."""
    import llama_cpp as L

    cp = L.llama_sampler_chain_default_params()
    chain = L.llama_sampler_chain_init(cp)
    n_vocab = model.n_vocab
    keep = []
    if p.logit_bias:
        ids = [b.token if b.token is not None else model.tokenize(b.text, add_special=False, parse_special=False)[0]
               for b in p.logit_bias]
        arr = (L.llama_logit_bias * len(ids))(*[L.llama_logit_bias(t, b.bias) for t, b in zip(ids, p.logit_bias)])
        keep.append(arr)
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_logit_bias(n_vocab, len(ids), arr))
    if p.mirostat:
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(p.temperature))
        if p.mirostat == 1:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_mirostat(n_vocab, seed, p.mirostat_tau, p.mirostat_eta, 100))
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_mirostat_v2(seed, p.mirostat_tau, p.mirostat_eta))
        return chain
    for name in p.samplers:
        if name == "penalties":
            smpl = L.llama_sampler_init_penalties(n_vocab, p.repeat_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
        elif name == "dry":
            raw = [b.encode() for b in p.dry_sequence_breakers]
            breakers = (ctypes.c_char_p * max(1, len(raw)))(*raw)
            smpl = L.llama_sampler_init_dry(model.vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                                            p.dry_penalty_last_n, breakers, len(raw))
        elif name == "top_n_sigma":
            smpl = L.llama_sampler_init_top_n_sigma(p.top_n_sigma)
        elif name == "top_k":
            smpl = L.llama_sampler_init_top_k(p.top_k)
        elif name == "typ_p":
            smpl = L.llama_sampler_init_typical(p.typical_p, 0)
        elif name == "top_p":
            smpl = L.llama_sampler_init_top_p(p.top_p, 0)
        elif name == "min_p":
            smpl = L.llama_sampler_init_min_p(p.min_p, 0)
        elif name == "xtc":
            smpl = L.llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, 0, seed)
        else:
            smpl = L.llama_sampler_init_temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent)
        L.llama_sampler_chain_add(chain, smpl)
    L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
    return chain


def reference_run(p: SamplerParams, model, logits_rows, history):
    """(token, p of it, candidates with a finite logit) per step, from llama.cpp directly."""
    import llama_cpp as L

    dtype = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")], align=True)
    chain = reference_chain(p, model, SEED)
    out = []
    try:
        for t in history:
            L.llama_sampler_accept(chain, t)
        for step in range(STEPS):
            cand = np.zeros(model.n_vocab, dtype=dtype)
            cand["id"] = np.arange(model.n_vocab)
            cand["logit"] = logits_rows[step % len(logits_rows)]
            arr = L.llama_token_data_array(data=cand.ctypes.data_as(L.llama_token_data_p), size=model.n_vocab,
                                           selected=-1, sorted=False)
            L.llama_sampler_apply(chain, ctypes.byref(arr))
            address = ctypes.cast(arr.data, ctypes.c_void_p).value
            buf = (ctypes.c_char * (arr.size * dtype.itemsize)).from_address(address)
            kept = np.frombuffer(buf, dtype=dtype).copy()
            token = int(kept["id"][arr.selected])
            out.append((token, float(kept["p"][arr.selected]), int(np.count_nonzero(np.isfinite(kept["logit"])))))
            L.llama_sampler_accept(chain, token)
    finally:
        L.llama_sampler_free(chain)
    return out


def ours_run(p: SamplerParams, model, logits_rows, history):
    from playground.engine.sampler_chain import SamplerChain

    chain = SamplerChain(p.validate(), model.n_vocab, SEED, model=model)
    try:
        chain.accept(history)
        return [(s.id, s.p_sampled, s.n_candidates) for s in
                (chain.sample(logits_rows[step % len(logits_rows)]) for step in range(STEPS))]
    finally:
        chain.close()


def assert_same(p: SamplerParams, engine, rows, off: SamplerParams):
    logits_rows, history = rows
    ref = reference_run(p, engine.model, logits_rows, history)
    ours = ours_run(p, engine.model, logits_rows, history)
    assert [(t, n) for t, _, n in ours] == [(t, n) for t, _, n in ref]
    np.testing.assert_allclose([q for _, q, _ in ours], [q for _, q, _ in ref], rtol=0, atol=0)
    # the stage acts: without it the same chain gives other survivors or probabilities somewhere
    without = reference_run(off, engine.model, logits_rows, history)
    assert without != ref, "the stage changed nothing on these logits: the test could not fail"
    return ref


BASE = SamplerParams(seed=SEED)

CASES = {
    "typical": (BASE.replace(typical_p=0.5), BASE),
    "top_n_sigma": (BASE.replace(top_n_sigma=1.0, top_k=0, top_p=1.0, min_p=0.0), BASE.replace(top_k=0, top_p=1.0, min_p=0.0)),
    "xtc": (BASE.replace(xtc_probability=0.7, xtc_threshold=0.05, top_k=0, min_p=0.0),
            BASE.replace(top_k=0, min_p=0.0)),
    "dry": (BASE.replace(dry_multiplier=2.0, dry_base=1.75, dry_allowed_length=1, top_k=0, top_p=1.0),
            BASE.replace(top_k=0, top_p=1.0)),
    "presence": (BASE.replace(presence_penalty=1.5, top_k=0, top_p=1.0), BASE.replace(top_k=0, top_p=1.0)),
    "frequency": (BASE.replace(frequency_penalty=0.7, top_k=0, top_p=1.0), BASE.replace(top_k=0, top_p=1.0)),
    "mirostat1": (BASE.replace(mirostat=1, mirostat_tau=4.0, mirostat_eta=0.2), BASE),
    "mirostat2": (BASE.replace(mirostat=2, mirostat_tau=3.0, mirostat_eta=0.1), BASE),
    "dynatemp": (BASE.replace(dynatemp_range=0.6, dynatemp_exponent=1.5, min_p=0.0), BASE.replace(min_p=0.0)),
    # the first position's favourite, pushed down by id (chosen from the logits, not hard-coded)
    "logit_bias_id": (lambda rows: BASE.replace(logit_bias=(LogitBias(-8.0, token=int(np.argmax(rows[0][0]))),), top_k=0),
                      BASE.replace(top_k=0)),
    "logit_bias_text": (BASE.replace(logit_bias=(LogitBias(-50.0, text=" cat"), LogitBias(4.0, text=" dog")), top_k=0),
                        BASE.replace(top_k=0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_stage_matches_llama_cpp(name, engine, rows):
    on, off = CASES[name]
    on = on(rows) if callable(on) else on
    ref = assert_same(on, engine, rows, off)
    assert all(0.0 < q <= 1.0 and n >= 1 for _, q, n in ref)


def test_custom_order_matches_and_matters(engine, rows):
    # temperature before the truncations and top-n-sigma last: llama.cpp honours any order
    order = parse_sampler_order("temp;penalties;min_p;top-k;typ;nucleus;top_n_sigma")
    p = BASE.replace(samplers=order, temperature=1.6, repeat_penalty=1.3, typical_p=0.8, top_n_sigma=2.0, min_p=0.02)
    assert_same(p, engine, rows, p.replace(samplers=DEFAULT_SAMPLERS))


def test_default_settings_keep_their_chain(engine, rows):
    """Today's settings: the reference with every no-op stage gives what ``SamplerChain`` gives."""
    logits_rows, history = rows
    for p in (BASE, BASE.replace(repeat_penalty=1.2, top_k=0, min_p=0.1), BASE.replace(top_p=0.5, temperature=1.3)):
        assert ours_run(p, engine.model, logits_rows, history) == reference_run(p, engine.model, logits_rows, history)


def test_logit_bias_text_must_be_one_token(engine):
    from playground.engine.sampler_chain import SamplerChain

    p = BASE.replace(logit_bias=(LogitBias(1.0, text="internationalisation of things"),)).validate()
    with pytest.raises(InvalidParameterError, match="tokens"):
        SamplerChain(p, engine.model.n_vocab, SEED, model=engine.model)
    with pytest.raises(InvalidParameterError, match="outside the vocabulary"):
        SamplerChain(BASE.replace(logit_bias=(LogitBias(1.0, token=engine.model.n_vocab),)), engine.model.n_vocab, SEED)


@pytest.mark.parametrize("changes, needle", [
    ({"typical_p": 0.0}, "typical"), ({"mirostat": 3}, "mirostat"), ({"xtc_probability": 1.5}, "xtc-probability"),
    ({"dry_base": 0.5}, "dry-base"), ({"samplers": ("top_k", "bogus")}, "samplers"),
    ({"logit_bias": (LogitBias(float("inf"), token=1),)}, "finite"), ({"dry_sequence_breakers": ("",)}, "breaker"),
    ({"presence_penalty": float("nan")}, "presence"), ({"mirostat_eta": 0.0}, "mirostat-lr"),
])
def test_out_of_range_values_are_refused(changes, needle):
    with pytest.raises(InvalidParameterError, match=needle):
        SamplerParams(**changes).validate()


def test_params_round_trip_and_old_dicts_load():
    p = SamplerParams(typical_p=0.7, dry_sequence_breakers=["\n", "x"], samplers=["top_k", "temperature"],
                      logit_bias=(LogitBias(-3.0, text=" a"), LogitBias(2.0, token=7)), mirostat=2)
    d = json.loads(json.dumps(p.to_dict()))
    assert SamplerParams.from_dict(d) == p
    old = {"temperature": 0.5, "top_k": 10, "top_p": 0.9, "min_p": 0.0, "repeat_penalty": 1.1, "repeat_last_n": 32,
           "seed": 3, "greedy": False}
    assert SamplerParams.from_dict(old) == SamplerParams(**old)
    with pytest.raises(InvalidParameterError):
        parse_sampler_order("top_k;nope")
    assert LogitBias.parse("15043-1.5") == LogitBias(-1.5, token=15043)
    assert LogitBias.parse(" Hello+2") == LogitBias(2.0, text=" Hello")


def test_cli_flags_reach_the_start_event(tmp_path):
    args = ["generate", "--json", "-n", "3", "-s", "9", "--typical", "0.9", "--top-nsigma", "1.5",
            "--xtc-probability", "0.5", "--xtc-threshold", "0.2", "--dry-multiplier", "0.8", "--dry-base", "2",
            "--dry-allowed-length", "3", "--dry-penalty-last-n", "-1", "--dry-sequence-breaker", "none",
            "--dry-sequence-breaker", ".", "--presence-penalty", "0.3", "--frequency-penalty", "0.2",
            "--dynatemp-range", "0.3", "--dynatemp-exp", "1.2", "--logit-bias", "42+1", "--logit-bias", " the-2",
            "--samplers", "penalties;dry;top-k;typ;min_p;temp", "The cat sat on the"]
    proc = subprocess.run(playground_cmd() + args, capture_output=True, text=True, timeout=120, env=subprocess_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    start = json.loads(proc.stdout.splitlines()[0])["params"]
    assert start["typical_p"] == 0.9 and start["top_n_sigma"] == 1.5
    assert (start["xtc_probability"], start["xtc_threshold"]) == (0.5, 0.2)
    assert (start["dry_multiplier"], start["dry_base"], start["dry_allowed_length"], start["dry_penalty_last_n"]) == (0.8, 2.0, 3, -1)
    assert start["dry_sequence_breakers"] == ["."]
    assert (start["presence_penalty"], start["frequency_penalty"]) == (0.3, 0.2)
    assert (start["dynatemp_range"], start["dynatemp_exponent"]) == (0.3, 1.2)
    assert start["logit_bias"] == [{"bias": 1.0, "token": 42}, {"bias": -2.0, "text": " the"}]
    assert start["samplers"] == ["penalties", "dry", "top_k", "typ_p", "min_p", "temperature"]
    mirostat = subprocess.run(playground_cmd() + ["generate", "--json", "-n", "2", "--mirostat", "2", "--mirostat-lr", "0.3",
                                                  "--mirostat-ent", "4", "hi"],
                              capture_output=True, text=True, timeout=120, env=subprocess_env(tmp_path))
    assert mirostat.returncode == 0, mirostat.stderr
    params = json.loads(mirostat.stdout.splitlines()[0])["params"]
    assert (params["mirostat"], params["mirostat_eta"], params["mirostat_tau"]) == (2, 0.3, 4.0)
    bad = subprocess.run(playground_cmd() + ["generate", "--samplers", "top_k;bogus", "hi"],
                         capture_output=True, text=True, timeout=120, env=subprocess_env(tmp_path))
    assert bad.returncode == 2 and "unknown sampler 'bogus'" in bad.stderr


# -- the pure-numpy view (playground.sampling) against the same chain ------------------------------

VIEW_CASES = {
    "typical": BASE.replace(typical_p=0.5),
    "top_n_sigma": BASE.replace(top_n_sigma=1.0, top_k=0, top_p=1.0, min_p=0.0),
    "xtc_always": BASE.replace(xtc_probability=1.0, xtc_threshold=0.05),
    "dry_no_breakers": BASE.replace(dry_multiplier=2.0, dry_allowed_length=1, dry_sequence_breakers=()),
    "presence_frequency": BASE.replace(presence_penalty=1.5, frequency_penalty=0.5),
    "dynatemp": BASE.replace(dynatemp_range=0.6, dynatemp_exponent=1.5),
    "custom_order": BASE.replace(samplers=parse_sampler_order("temp;penalties;min_p;top-k;typ;nucleus;top_n_sigma"),
                                 temperature=1.6, repeat_penalty=1.3, typical_p=0.8, top_n_sigma=2.0, min_p=0.02),
}


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
def test_view_matches_the_chain_where_exact(name, engine, rows):
    from playground.sampling import head_from_logits, reshape

    logits_rows, history = rows
    p = VIEW_CASES[name]
    n_exact = 0
    for logits in logits_rows:
        token, p_ref, n_ref = reference_run(p, engine.model, [logits], history)[0]
        for size in (100, engine.model.n_vocab):
            shaped = reshape(head_from_logits(logits, size), p, history)
            if size == engine.model.n_vocab:
                assert shaped.exact, "with the whole vocabulary every deterministic stage is exact"
            if shaped.exact:
                n_exact += 1
                assert shaped.n_final == n_ref
                assert shaped.prob_of(token) == pytest.approx(p_ref, abs=1e-6)
    assert n_exact >= len(logits_rows)


@pytest.mark.parametrize("changes", [{"xtc_probability": 0.5}, {"mirostat": 2}, {"mirostat": 1},
                                     {"logit_bias": (LogitBias(1.0, text=" cat"),)}, {"dry_multiplier": 1.0}])
def test_view_is_honest_about_what_it_cannot_know(changes, engine, rows):
    from playground.sampling import head_from_logits, reshape

    logits_rows, history = rows
    shaped = reshape(head_from_logits(logits_rows[0], engine.model.n_vocab), BASE.replace(**changes), history)
    assert not shaped.exact  # a random draw, mirostat's state, unresolved text or breakers: "≈"


# -- remote backends: sent under the server's names, or refused before any request ----------------

def test_remote_bodies_carry_or_refuse_the_new_stages():
    import asyncio

    from playground.backends.endpoints import Endpoint
    from playground.backends.llamacpp import LlamaCppBackend
    from playground.backends.ollama import OllamaBackend
    from playground.backends.openai_compat import OpenAIBackend
    from playground.params import GenerationRequest

    s = BASE.replace(typical_p=0.8, dry_multiplier=0.5, dry_sequence_breakers=("\n",), mirostat=2, mirostat_tau=4.0,
                     logit_bias=(LogitBias(2.0, token=5), LogitBias(-1.0, text=" a")),
                     samplers=parse_sampler_order("top_k;typ;temp"))
    _, body = LlamaCppBackend(Endpoint("ls", "llamacpp", "http://127.0.0.1:9", "m")).build(GenerationRequest("hi", s), 1)
    assert (body["typical_p"], body["dry_multiplier"], body["mirostat"], body["mirostat_tau"]) == (0.8, 0.5, 2, 4.0)
    assert body["dry_sequence_breakers"] == ["\n"] and body["samplers"] == ["top_k", "typ_p", "temperature"]
    assert body["logit_bias"] == [[5, 2.0], [" a", -1.0]]

    oa = OpenAIBackend(Endpoint("oa", "openai", "http://127.0.0.1:9/v1", "m"))
    _, body = oa.build(GenerationRequest("hi", BASE.replace(presence_penalty=0.5, logit_bias=(LogitBias(3.0, token=7),))), 1)
    assert body["presence_penalty"] == 0.5 and body["logit_bias"] == {"7": 3.0} and "frequency_penalty" not in body

    async def first_event(backend, sampler):
        gen = backend.stream(GenerationRequest("hi", sampler))
        try:
            return await gen.__anext__()
        finally:
            await gen.aclose()

    for backend in (oa, OllamaBackend(Endpoint("ol", "ollama", "http://127.0.0.1:9", "m"))):
        with pytest.raises(InvalidParameterError, match="typical_p"):
            asyncio.run(first_event(backend, BASE.replace(typical_p=0.8)))
