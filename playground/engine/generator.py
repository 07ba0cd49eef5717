"""The engine's decode loop: stream a completion token by token with the model's probabilities.

Schedule: the (new part of the) prompt in one ``llama_decode``, then one token per decode. After
each decode we read only the last position's logits (``llama_get_logits_ith``), let llama.cpp's
sampler chain pick the token, and compute the raw statistics with numpy.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import numpy as np

import llama_cpp

from playground.engine.batch import Batch
from playground.engine.llama_model import LlamaModel
from playground.engine.sequence import SequenceDecoder
from playground.engine.token_stats import StatsComputer
from playground.errors import PlaygroundError
from playground.events import FailedEvent, StreamEvent
from playground.params import RANDOM_SEED, GenerationRequest


def resolve_seed(seed: int) -> int:
    """The seed actually used: a fresh random one for -1, so it can be shown and replayed."""
    return random.randrange(0, 2**32 - 1) if seed == RANDOM_SEED else seed


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Engine:
    """Streams completions from one local model, reusing the KV cache across runs.

    Not thread-safe: one ``stream`` at a time (the UI runs it in one exclusive worker).
    """

    def __init__(self, model: LlamaModel, *, reuse_prefix: bool = True) -> None:
        self.model = model
        self.reuse_prefix = reuse_prefix
        self._kv_tokens: list[int] = []  # what sequence 0 of the KV cache holds, by position
        self._batch = Batch(model.n_ctx)
        self._stats = StatsComputer(model.n_vocab)

    def close(self) -> None:
        """Free the batch and the model (the engine owns the model it was built with)."""
        self._batch.close()
        self.model.close()

    def logits_view(self, index: int = -1) -> np.ndarray:
        """The logits of output ``index`` of the last decode, as a numpy view (no copy)."""
        ptr = llama_cpp.llama_get_logits_ith(self.model.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    def evaluate_prompt(self, tokens: list[int]) -> int:
        """Bring the KV cache to hold exactly ``tokens`` with the last one's logits ready.

        Returns how many tokens had to be evaluated (the rest were reused from the last run).
        """
        keep = common_prefix_len(self._kv_tokens, tokens) if self.reuse_prefix else 0
        keep = min(keep, len(tokens) - 1)  # the last token is always decoded again: we need its logits
        if not llama_cpp.llama_memory_seq_rm(self.model.memory, 0, keep, -1):
            keep = 0
            llama_cpp.llama_memory_clear(self.model.memory, True)
        self._kv_tokens = self._kv_tokens[:keep]
        batch = self._batch
        batch.clear()
        last = len(tokens) - 1
        for pos in range(keep, len(tokens)):
            batch.add(tokens[pos], pos, (0,), pos == last)
        batch.decode(self.model)
        self._kv_tokens = list(tokens)
        return len(tokens) - keep

    def decode_one(self, token: int) -> None:
        batch = self._batch
        batch.clear()
        batch.add(token, len(self._kv_tokens), (0,), True)
        self._kv_tokens.append(token)
        try:
            batch.decode(self.model)
        except PlaygroundError:
            self._kv_tokens.pop()
            raise

    def tokenize_prompt(self, request: GenerationRequest) -> list[int]:
        tokens = self.model.tokenize(request.prompt, add_special=request.add_special)
        if not tokens:
            raise PlaygroundError("the prompt is empty", title="Empty prompt")
        self.model.check_fits(len(tokens))
        return tokens

    def stream(
        self,
        request: GenerationRequest,
        cancel: threading.Event | None = None,
        *,
        dist_size: int = 0,
        with_entropy: bool = True,
    ) -> Iterator[StreamEvent]:
        """Yield Start, Token..., then Done or Failed for one completion.

        Args:
            request: prompt, sampler settings, limits.
            cancel: set it to stop between two tokens (finish_reason "cancelled").
            dist_size: keep this many head entries of the raw distribution per token (for the
                live sampler view); 0 keeps none.
            with_entropy: compute the raw distribution's entropy per token.
        """
        request.validate()
        t0 = time.perf_counter()
        prompt_tokens = self.tokenize_prompt(request)
        seq = SequenceDecoder(request, resolve_seed(request.sampler.seed), self.model, len(prompt_tokens), self._stats)
        try:
            yield seq.start_event(prompt_tokens)
            seq.accept_prompt(prompt_tokens)
            try:
                n_evaluated = self.evaluate_prompt(prompt_tokens)
            except PlaygroundError as exc:
                yield FailedEvent(exc.title, exc.message, 0)
                return
            t_prompt = time.perf_counter() - t0
            while True:
                cancelled = cancel is not None and cancel.is_set()
                event = seq.step(self.logits_view(), t0, dist_size, with_entropy, cancelled)
                if event is not None:
                    yield event
                if seq.ended:
                    break
                try:
                    self.decode_one(seq.next_token)
                except PlaygroundError as exc:
                    yield FailedEvent(exc.title, exc.message, seq.n)
                    return
                seq.pos += 1
            yield seq.done_event(t0, t_prompt, n_evaluated)
        finally:
            seq.close()
