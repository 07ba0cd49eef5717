"""llama.cpp's own sampler chain, applied so that we can see its final distribution.

Built as llama.cpp's ``common_sampler_init`` builds it: logit bias first, then the stages of
``params.samplers`` in that order (llama.cpp's default: penalties -> DRY -> top-n-sigma -> top-k ->
typical -> top-p -> min-p -> XTC -> temperature, ``temp_ext`` with a dynamic range), then dist(seed).
Mirostat replaces the ordered stages: logit bias -> temperature -> mirostat(seed), as llama.cpp
does. Stages whose settings switch them off are left out (llama.cpp adds them as no-ops). Greedy
(temperature <= 0 or ``greedy``): logit bias, penalties and DRY in their order -> greedy.

``llama_sampler_sample`` would hide the candidates; instead we fill a ``llama_token_data_array``
from the logits exactly as it does, call ``llama_sampler_apply`` and ``llama_sampler_accept``, and
read the chosen token's probability in the final distribution and how many candidates survived
(top-n-sigma masks tokens to -inf instead of dropping them: those do not count as survivors).
The same seed therefore picks the same tokens as plain llama.cpp sampling.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import llama_cpp

from playground.errors import InvalidParameterError
from playground.params import SamplerParams

if TYPE_CHECKING:
    from playground.engine.llama_model import LlamaModel

WHOLE_CONTEXT = 1 << 17  # longer than any context we create

TOKEN_DATA_DTYPE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")], align=True)
assert TOKEN_DATA_DTYPE.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)

#: min_keep of the truncations: 1 behaves exactly as llama.cpp's default 0 (each keeps one anyway).
MIN_KEEP = 1
#: llama.cpp's mirostat v1 estimates s_hat from this many top tokens (common_sampler_init's value).
MIROSTAT_M = 100


@dataclass(frozen=True, slots=True)
class SampledToken:
    id: int
    p_sampled: float
    n_candidates: int


def _last_n(n: int) -> int:
    # -1 means "the whole context" (llama-cli's meaning); llama.cpp itself clamps -1 to 0 (off).
    return n if n > 0 else WHOLE_CONTEXT


def resolve_logit_bias(params: SamplerParams, model: "LlamaModel | None", n_vocab: int) -> list[tuple[int, float]]:
    """``params.logit_bias`` as (token id, bias), text resolved with the model's tokenizer.

    Raises:
        InvalidParameterError: an id outside the vocabulary, text that is not exactly one token, or
            text with no model to tokenize it.
    """
    out = []
    for b in params.logit_bias:
        if b.token is not None:
            if not 0 <= b.token < n_vocab:
                raise InvalidParameterError(f"logit bias {b.label()}: token id {b.token} is outside the vocabulary (0..{n_vocab - 1})")
            out.append((b.token, b.bias))
            continue
        if model is None:
            raise InvalidParameterError(f"logit bias {b.label()}: text needs the model's tokenizer; give the token id")
        ids = model.tokenize(b.text or "", add_special=False, parse_special=False)
        if len(ids) != 1:
            pieces = " ".join(f"{t}={model.piece_text(t)!r}" for t in ids)
            raise InvalidParameterError(
                f"logit bias {b.label()}: the text is {len(ids)} tokens ({pieces}), not one; bias each by id"
            )
        out.append((ids[0], b.bias))
    return out


def build_chain(params: SamplerParams, n_vocab: int, seed: int, model: "LlamaModel | None" = None) -> ctypes.c_void_p:
    """A new llama.cpp sampler chain for ``params`` (the caller frees it).

    ``model`` gives the vocabulary DRY needs and the tokenizer for logit biases given as text.

    Raises:
        InvalidParameterError: DRY or a text logit bias without ``model``; a bad logit bias.
    """
    biases = resolve_logit_bias(params, model, n_vocab)  # before the chain exists: nothing to free
    if params.stage_on("dry") and model is None and (params.is_greedy or not params.mirostat) and "dry" in params.samplers:
        raise InvalidParameterError("DRY needs the model's vocabulary (its sequence breakers are text)")
    chain_params = llama_cpp.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(chain_params)
    add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
    if biases:
        arr = (llama_cpp.llama_logit_bias * len(biases))(*[llama_cpp.llama_logit_bias(t, b) for t, b in biases])
        add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), arr))
    if params.mirostat and not params.is_greedy:
        add(llama_cpp.llama_sampler_init_temp(params.temperature))
        if params.mirostat == 1:
            add(llama_cpp.llama_sampler_init_mirostat(n_vocab, seed, params.mirostat_tau, params.mirostat_eta, MIROSTAT_M))
        else:
            add(llama_cpp.llama_sampler_init_mirostat_v2(seed, params.mirostat_tau, params.mirostat_eta))
        return chain
    for name in params.samplers:
        if not params.stage_on(name) or params.is_greedy and name not in ("penalties", "dry"):
            continue
        if name == "penalties":
            add(llama_cpp.llama_sampler_init_penalties(
                n_vocab, _last_n(params.repeat_last_n), params.repeat_penalty,
                params.frequency_penalty, params.presence_penalty,
            ))
        elif name == "dry":
            assert model is not None
            breakers = [b.encode("utf-8") for b in params.dry_sequence_breakers]
            c_breakers = (ctypes.c_char_p * max(1, len(breakers)))(*breakers)
            add(llama_cpp.llama_sampler_init_dry(
                model.vocab, params.dry_multiplier, params.dry_base, params.dry_allowed_length,
                _last_n(params.dry_penalty_last_n), c_breakers, len(breakers),
            ))
        elif name == "top_n_sigma":
            add(llama_cpp.llama_sampler_init_top_n_sigma(params.top_n_sigma))
        elif name == "top_k":
            add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        elif name == "typ_p":
            add(llama_cpp.llama_sampler_init_typical(params.typical_p, MIN_KEEP))
        elif name == "top_p":
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, MIN_KEEP))
        elif name == "min_p":
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, MIN_KEEP))
        elif name == "xtc":
            add(llama_cpp.llama_sampler_init_xtc(params.xtc_probability, params.xtc_threshold, MIN_KEEP, seed))
        elif name == "temperature":
            if params.dynatemp_range > 0.0:
                add(llama_cpp.llama_sampler_init_temp_ext(params.temperature, params.dynatemp_range, params.dynatemp_exponent))
            else:
                add(llama_cpp.llama_sampler_init_temp(params.temperature))
    add(llama_cpp.llama_sampler_init_greedy() if params.is_greedy else llama_cpp.llama_sampler_init_dist(seed))
    return chain


def history_needed(params: SamplerParams) -> int:
    """How many trailing prompt tokens the chain's history stages want (-1: all, 0: none)."""
    wants = []
    if params.stage_on("penalties") and "penalties" in params.samplers and not params.mirostat:
        wants.append(params.repeat_last_n)
    if params.stage_on("dry") and "dry" in params.samplers and not params.mirostat:
        wants.append(params.dry_penalty_last_n)
    if params.is_greedy and params.stage_on("penalties"):
        wants.append(params.repeat_last_n)
    return -1 if -1 in wants else max(wants, default=0)


class SamplerChain:
    """One sequence's sampler: owns the chain and the candidate buffer it works on."""

    def __init__(self, params: SamplerParams, n_vocab: int, seed: int, *, model: "LlamaModel | None" = None) -> None:
        self.params = params
        self.seed = seed
        self.n_vocab = n_vocab
        self.history_needed = history_needed(params)
        """Trailing prompt tokens to ``accept`` before the first sample (-1: all)."""
        self._chain = build_chain(params, n_vocab, seed, model)
        self._greedy = params.is_greedy
        # Only top-n-sigma masks candidates to -inf instead of dropping them: the count of those
        # is a scan of the survivors, done per token only when that stage is on.
        self._may_mask = params.top_n_sigma > 0
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._cand = np.zeros(n_vocab, dtype=TOKEN_DATA_DTYPE)
        self._array = llama_cpp.llama_token_data_array(
            data=self._cand.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )
        self._array_ref = ctypes.byref(self._array)

    def accept(self, tokens: Iterable[int]) -> None:
        """Feed history (e.g. the prompt's tail) to the penalties without sampling."""
        for token in tokens:
            llama_cpp.llama_sampler_accept(self._chain, token)

    def sample(self, logits: np.ndarray) -> SampledToken:
        """Choose the next token from raw logits, as ``llama_sampler_sample`` would."""
        cand = self._cand
        cand["id"] = self._ids  # samplers reorder the buffer in place
        cand["logit"] = logits
        # "p" needs no reset: every llama.cpp sampler that reads p computes it first (softmax).
        return self._apply_and_pick(self.n_vocab)

    def _apply_and_pick(self, size: int) -> SampledToken:
        """Run the chain on the first ``size`` candidates, accept and report the chosen one."""
        arr = self._array
        arr.data = self._cand.ctypes.data_as(llama_cpp.llama_token_data_p)
        arr.size = size
        arr.selected = -1
        arr.sorted = False
        llama_cpp.llama_sampler_apply(self._chain, self._array_ref)
        selected = arr.data[arr.selected]
        token = int(selected.id)
        llama_cpp.llama_sampler_accept(self._chain, token)
        if self._greedy:
            return SampledToken(token, 1.0, 1)
        return SampledToken(token, float(selected.p), self._survivors(arr))

    def _survivors(self, arr: llama_cpp.llama_token_data_array) -> int:
        """Candidates left with a chance: the array's size less any masked to -inf (top-n-sigma,
        a -inf bias). XTC moves ``data`` forward inside our buffer, so read from where it points."""
        size = int(arr.size)
        if not self._may_mask:
            return size
        start = (ctypes.cast(arr.data, ctypes.c_void_p).value - self._cand.ctypes.data) // TOKEN_DATA_DTYPE.itemsize
        kept = self._cand["logit"][start:start + size]
        return size - int(np.count_nonzero(np.isneginf(kept)))

    def snapshot(self) -> ctypes.c_void_p:
        """A copy of the chain's state (penalty history, RNG), for ``restore``; the caller frees
        it with ``free_snapshot`` unless it is restored. llama.cpp's clone copies the dist
        sampler's RNG and the penalties' ring buffer, so a restored chain draws what it would have."""
        return llama_cpp.llama_sampler_clone(self._chain)

    def restore(self, snapshot: ctypes.c_void_p) -> None:
        """Go back to ``snapshot`` (which this chain then owns)."""
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
        self._chain = snapshot

    @staticmethod
    def free_snapshot(snapshot: ctypes.c_void_p) -> None:
        llama_cpp.llama_sampler_free(snapshot)

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # --- constrained sampling (engine/constraint.py) ------------------------------------------
    def clone(self, into: "SamplerChain | None" = None) -> "SamplerChain":
        """A chain in exactly this one's state (``llama_sampler_clone``: RNG, penalty history,
        mirostat's mu), which draws what this one would draw next; sampling it leaves this one
        untouched. ``into``: an earlier clone whose buffers to reuse (its old state is freed)."""
        if into is None:
            into = object.__new__(SamplerChain)
            into.params, into.seed, into.n_vocab = self.params, self.seed, self.n_vocab
            into.history_needed, into._greedy, into._ids, into._may_mask = self.history_needed, self._greedy, self._ids, self._may_mask
            into._cand = np.zeros(self.n_vocab, dtype=TOKEN_DATA_DTYPE)
            into._array = llama_cpp.llama_token_data_array(
                data=into._cand.ctypes.data_as(llama_cpp.llama_token_data_p), size=self.n_vocab, selected=-1, sorted=False,
            )
            into._array_ref = ctypes.byref(into._array)
            into._chain = None
        elif into._chain:
            llama_cpp.llama_sampler_free(into._chain)
        into._chain = llama_cpp.llama_sampler_clone(self._chain)
        return into

    def sample_among(self, ids: np.ndarray, logits: np.ndarray) -> SampledToken:
        """Choose the next token among ``ids`` only (ascending), from their raw logits: the chain
        runs on a candidate array that holds just them, so ``p_sampled`` is the chosen token's
        probability in the distribution it was drawn from and ``n_candidates`` counts survivors."""
        k = int(ids.size)
        cand = self._cand
        cand["id"][:k] = ids
        cand["logit"][:k] = logits[ids]
        return self._apply_and_pick(k)
