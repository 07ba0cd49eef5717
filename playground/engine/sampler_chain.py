"""llama.cpp's own sampler chain, applied so that we can see its final distribution.

Order (llama.cpp's default, as in ``llama-cli --samplers``): penalties -> top-k -> top-p ->
min-p -> temperature -> dist(seed). Greedy (temperature <= 0 or ``greedy``): penalties -> greedy.

``llama_sampler_sample`` would hide the candidates; instead we fill a ``llama_token_data_array``
from the logits exactly as it does, call ``llama_sampler_apply`` and ``llama_sampler_accept``, and
read the chosen token's probability in the final distribution and how many candidates survived.
The same seed therefore picks the same tokens as plain llama.cpp sampling.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

import llama_cpp

from playground.params import SamplerParams

WHOLE_CONTEXT = 1 << 17  # longer than any context we create

TOKEN_DATA_DTYPE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")], align=True)
assert TOKEN_DATA_DTYPE.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


@dataclass(frozen=True, slots=True)
class SampledToken:
    id: int
    p_sampled: float
    n_candidates: int


def build_chain(params: SamplerParams, n_vocab: int, seed: int) -> ctypes.c_void_p:
    """A new llama.cpp sampler chain for ``params`` (the caller frees it)."""
    chain_params = llama_cpp.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(chain_params)
    add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
    if params.repeat_penalty != 1.0 and params.repeat_last_n != 0:
        # -1 means "the whole context" (llama-cli's meaning); llama.cpp itself clamps -1 to 0 (off).
        last_n = params.repeat_last_n if params.repeat_last_n > 0 else WHOLE_CONTEXT
        add(llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, params.repeat_penalty, 0.0, 0.0))
    if params.is_greedy:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(llama_cpp.llama_sampler_init_temp(params.temperature))
    add(llama_cpp.llama_sampler_init_dist(seed))
    return chain


class SamplerChain:
    """One sequence's sampler: owns the chain and the candidate buffer it works on."""

    def __init__(self, params: SamplerParams, n_vocab: int, seed: int) -> None:
        self.params = params
        self.seed = seed
        self.n_vocab = n_vocab
        self._chain = build_chain(params, n_vocab, seed)
        self._greedy = params.is_greedy
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
        arr = self._array
        arr.data = self._cand.ctypes.data_as(llama_cpp.llama_token_data_p)
        arr.size = self.n_vocab
        arr.selected = -1
        arr.sorted = False
        llama_cpp.llama_sampler_apply(self._chain, self._array_ref)
        selected = arr.data[arr.selected]
        token = int(selected.id)
        llama_cpp.llama_sampler_accept(self._chain, token)
        if self._greedy:
            return SampledToken(token, 1.0, 1)
        return SampledToken(token, float(selected.p), int(arr.size))

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
