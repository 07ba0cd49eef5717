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
from playground.engine.sampler_chain import SamplerChain
from playground.engine.token_stats import position_stats
from playground.engine.utf8_stream import Utf8Stream
from playground.errors import PlaygroundError
from playground.events import (
    Alternative,
    DoneEvent,
    FailedEvent,
    RawDistribution,
    StartEvent,
    StreamEvent,
    TokenEvent,
)
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

    def close(self) -> None:
        self._batch.close()

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
        model = self.model
        prompt_tokens = self.tokenize_prompt(request)
        seed = resolve_seed(request.sampler.seed)
        yield StartEvent(
            model=model.describe(),
            prompt=request.prompt,
            prompt_tokens=tuple(prompt_tokens),
            params={
                **request.sampler.to_dict(),
                "seed": seed,
                "max_tokens": request.max_tokens,
                "stop": list(request.stop),
                "top_n": request.top_n,
            },
        )
        chain = SamplerChain(request.sampler, model.n_vocab, seed)
        n_tokens = 0
        try:
            n_history = request.sampler.repeat_last_n
            chain.accept(prompt_tokens if n_history < 0 else prompt_tokens[-n_history:] if n_history else ())
            n_evaluated = self.evaluate_prompt(prompt_tokens)
            t_prompt = time.perf_counter() - t0
            yield from self._decode_loop(request, chain, cancel, t0, t_prompt, n_evaluated, seed, dist_size, with_entropy)
        except PlaygroundError as exc:
            yield FailedEvent(exc.title, exc.message, n_tokens)
        finally:
            chain.close()

    def _decode_loop(
        self,
        request: GenerationRequest,
        chain: SamplerChain,
        cancel: threading.Event | None,
        t0: float,
        t_prompt: float,
        n_evaluated: int,
        seed: int,
        dist_size: int,
        with_entropy: bool,
    ) -> Iterator[StreamEvent]:
        model = self.model
        utf8 = Utf8Stream()
        top_n = request.top_n
        head_k = max(top_n, dist_size)
        stops = request.stop
        longest_stop = max((len(s) for s in stops), default=0)
        recent = ""  # tail of the completion, long enough to see a stop string arrive
        n = 0
        t_first: float | None = None
        t_last = t0
        finish = "length"
        stop_hit: str | None = None
        try:
            while n < request.max_tokens:
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                logits = self.logits_view()
                picked = chain.sample(logits)
                token = picked.id
                if model.is_eog(token):
                    finish = "stop"
                    break
                stats = position_stats(logits, token, head_k, with_entropy=with_entropy)
                text = utf8.push(model.piece(token))
                top = tuple(
                    Alternative(int(i), model.piece_text(int(i)), float(lp))
                    for i, lp in zip(stats.top_ids[:top_n], stats.top_logprobs[:top_n])
                )
                dist = (
                    RawDistribution(stats.top_ids[:dist_size], stats.top_logprobs[:dist_size], model.n_vocab, stats.log_z)
                    if dist_size
                    else None
                )
                t_last = time.perf_counter()
                if t_first is None:
                    t_first = t_last
                yield TokenEvent(
                    i=n,
                    id=token,
                    text=text,
                    logprob=stats.logprob,
                    p_sampled=picked.p_sampled,
                    top=top,
                    t=t_last - t0,
                    n_candidates=picked.n_candidates,
                    entropy=stats.entropy,
                    dist=dist,
                )
                n += 1
                if stops and text:
                    recent = (recent + text)[-(longest_stop + len(text)) :]
                    stop_hit = next((s for s in stops if s in recent), None)
                    if stop_hit is not None:
                        finish = "stop"
                        break
                if n >= request.max_tokens:
                    break
                if len(self._kv_tokens) + 1 > model.n_ctx:
                    finish = "length"
                    break
                self.decode_one(token)
        except PlaygroundError as exc:
            yield FailedEvent(exc.title, exc.message, n)
            return
        decode_s = t_last - t_first if t_first is not None else 0.0
        yield DoneEvent(
            finish_reason=finish,  # type: ignore[arg-type]
            n_tokens=n,
            ttft_s=(t_first - t0) if t_first is not None else None,
            prompt_tok_s=(n_evaluated / t_prompt) if t_prompt > 0 else None,
            decode_tok_s=((n - 1) / decode_s) if n > 1 and decode_s > 0 else None,
            prompt_tokens_evaluated=n_evaluated,
            stop_string=stop_hit,
            seed=seed,
            tail=utf8.flush(),
        )
