"""The engine's decode loop: stream a completion token by token with the model's probabilities.

Schedule: the prompt in the canonical chunks of ``engine/prefill.py`` (a re-run reuses whole
chunks only, or, for an unchanged prompt, the kept copy of its last row: nothing is decoded), then
one token per decode. Between two decodes only the sampling happens: the statistics of token t
(logprob, top-N, entropy), its event and whatever the consumer does with it (a JSON line, a
widget) run while token t is decoded in a helper thread (ctypes releases the GIL in
``llama_decode``), on a copy of the logits row, since that decode overwrites llama.cpp's buffer.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

import llama_cpp

from playground.cores import available_cores
from playground.engine.batch import Batch
from playground.engine.forced import cells_to_keep, check_forced, force_tokens, plan_reuse
from playground.engine.llama_model import LlamaModel
from playground.engine.prefill import chunk_spans, common_prefix_len, reusable_prefix
from playground.engine.sequence import SequenceDecoder
from playground.engine.token_stats import StatsComputer
from playground.errors import PlaygroundError
from playground.events import FailedEvent, StreamEvent, TokenEvent
from playground.params import RANDOM_SEED, GenerationRequest

__all__ = ["Engine", "common_prefix_len", "resolve_seed"]


def resolve_seed(seed: int) -> int:
    """The seed actually used: a fresh random one for -1, so it can be shown and replayed."""
    return random.randrange(0, 2**32 - 1) if seed == RANDOM_SEED else seed


class Engine:
    """Streams completions from one local model, reusing the KV cache across runs exactly.

    Not thread-safe: one ``stream`` at a time (the UI runs it in one exclusive worker).

    Args:
        model: the loaded model (the engine owns and closes it).
        reuse_prefix: reuse whole chunks of the last prompt (exact: see ``engine/prefill.py``);
            False evaluates every prompt from scratch (the same numbers, only slower).
        overlap: decode token t in a helper thread while the statistics and the event of token t
            are computed and consumed. None (default): only when llama.cpp's threads leave a core
            free. Measured from outside on 2 cores (``playground bench --outside``): at -t 1 the
            stream went from 0.90x to 1.03x of plain decode with it; at -t 2 it fell from 0.86x to
            0.68x, as the Python thread preempts a llama.cpp worker spinning at its barrier.
    """

    def __init__(self, model: LlamaModel, *, reuse_prefix: bool = True, overlap: bool | None = None) -> None:
        self.model = model
        self.reuse_prefix = reuse_prefix
        self.overlap = model.n_threads < available_cores() if overlap is None else overlap
        self.prefill_chunk = model.prefill_chunk
        self._kv_tokens: list[int] = []  # what sequence 0 of the KV cache holds, by position
        self._prompt: list[int] = []  # the last prompt, as evaluated in the canonical schedule
        self._prompt_logits: np.ndarray | None = None  # a copy of its last position's logits row
        self._at_prompt = False  # nothing decoded since evaluate_prompt: logits_view(-1) is the copy
        self._batch = Batch(min(model.n_ctx, self.prefill_chunk))
        self._stats = StatsComputer(model.n_vocab)
        self._row = np.empty(model.n_vocab, dtype=np.float32)  # token t's logits while t decodes
        self._pool: ThreadPoolExecutor | None = None
        #: Events of the tokens decoded one by one after the last prompt, in order: ``trail[j]``
        #: was scored on the row after the prompt and ``trail[:j]``'s tokens (``engine/forced.py``
        #: reuses them for a branch). Emptied when the prompt changes.
        self.trail: list[TokenEvent] = []
        #: Tokens given to ``llama_decode`` so far (prompt chunks, single tokens, lane batches).
        self.tokens_decoded = 0

    @property
    def kv_tokens(self) -> tuple[int, ...]:
        """What sequence 0 of the KV cache holds, by position."""
        return tuple(self._kv_tokens)

    @property
    def prompt_tokens(self) -> tuple[int, ...]:
        """The last prompt evaluated in the canonical schedule (the cells after it in ``kv_tokens``
        were decoded one per token)."""
        return tuple(self._prompt) if self._prompt_logits is not None else ()

    def close(self) -> None:
        """Free the helper thread, the batch and the model (the engine owns the model it was built with)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._batch.close()
        self.model.close()

    def logits_view(self, index: int = -1) -> np.ndarray:
        """The logits of output ``index`` of the last decode, as a numpy view (no copy).

        Right after ``evaluate_prompt``, index -1 is the prompt's last position (its kept copy:
        an unchanged prompt decodes nothing, so llama.cpp's own buffer may hold older rows).
        """
        if index == -1 and self._at_prompt and self._prompt_logits is not None:
            return self._prompt_logits
        ptr = llama_cpp.llama_get_logits_ith(self.model.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    @property
    def prompt_logits(self) -> np.ndarray:
        """The last evaluated prompt's next-token logits (read-only copy)."""
        if self._prompt_logits is None:
            raise PlaygroundError("no prompt has been evaluated", title="Engine not ready")
        return self._prompt_logits

    def evaluate_prompt(self, tokens: list[int], *, keep: Sequence[int] = ()) -> int:
        """Bring the KV cache to hold exactly ``tokens``, computed as a cold run computes them,
        with the last position's logits ready (``prompt_logits``).

        ``keep``: tokens that follow the prompt (a forced prefix): when the prompt is the last
        one's, the cells after it that hold the longest common prefix of ``keep`` stay (they were
        decoded one per token after this same prompt, as forcing decodes them: exact); see
        ``kv_tokens`` for how many did. ``logits_view(-1)`` is the prompt's row only if none did.

        Returns how many tokens had to be evaluated: 0 when the prompt is the last one's.
        """
        memory = self.model.memory
        if self.reuse_prefix and self._prompt_logits is not None and tokens == self._prompt:
            # Drop the last run's generated tokens (but those ``keep`` reuses); the prompt's cells are the cold ones.
            n = len(tokens)
            n_keep = common_prefix_len(self._kv_tokens[n:], keep) if keep else 0
            if not llama_cpp.llama_memory_seq_rm(memory, 0, n + n_keep, -1):
                raise PlaygroundError("llama.cpp could not trim the KV cache", title="Generation failed")
            self._kv_tokens = self._kv_tokens[: n + n_keep]
            self._at_prompt = n_keep == 0
            return 0
        self.trail = []  # its rows came after another prompt
        keep = reusable_prefix(self._prompt, tokens, self.prefill_chunk) if self.reuse_prefix else 0
        if not llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1):
            keep = 0
            llama_cpp.llama_memory_clear(memory, True)
        self._kv_tokens = list(tokens[:keep])
        self._prompt, self._prompt_logits, self._at_prompt = self._prompt[:keep], None, False
        batch = self._batch
        last = len(tokens) - 1
        for start, end in chunk_spans(keep, len(tokens), self.prefill_chunk):
            batch.clear()
            for pos in range(start, end):
                batch.add(tokens[pos], pos, (0,), pos == last)
            batch.decode(self.model)  # on failure the cache holds whole chunks up to here
            self.tokens_decoded += end - start
            self._kv_tokens = list(tokens[:end])
            self._prompt = self._kv_tokens[:] if end % self.prefill_chunk == 0 else self._prompt
        ptr = llama_cpp.llama_get_logits_ith(self.model.ctx, -1)
        self._prompt_logits = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).copy()
        self._prompt_logits.flags.writeable = False
        self._prompt = list(tokens)
        self._at_prompt = True
        return len(tokens) - keep

    def forget_cache(self) -> None:
        """Empty the whole KV cache (every sequence): the next prompt is evaluated from cell 0."""
        llama_cpp.llama_memory_clear(self.model.memory, True)
        self._kv_tokens, self._prompt, self._prompt_logits, self._at_prompt = [], [], None, False

    def decode_one(self, token: int) -> None:
        """Append one token to sequence 0 and decode it (its logits at ``logits_view()``)."""
        batch = self._batch
        batch.clear()
        batch.add(token, len(self._kv_tokens), (0,), True)
        self._kv_tokens.append(token)
        self._at_prompt = False
        try:
            batch.decode(self.model)
        except PlaygroundError:
            self._kv_tokens.pop()
            raise
        self.tokens_decoded += 1

    def decode(self, batch: Batch) -> None:
        """Decode a batch built elsewhere (the compare lanes) on this engine's context."""
        self._at_prompt = False
        batch.decode(self.model)
        self.tokens_decoded += batch.n

    def tokenize_prompt(self, request: GenerationRequest) -> list[int]:
        tokens = self.model.tokenize(request.prompt, add_special=request.add_special)
        if not tokens:
            raise PlaygroundError("the prompt is empty", title="Empty prompt")
        self.model.check_fits(len(tokens))
        return tokens

    def _decode_ahead(self, token: int) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="playground-decode")
        return self._pool.submit(self.decode_one, token)

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
        forced = check_forced(self.model, len(prompt_tokens), request.force_ids)
        seq = SequenceDecoder(request, resolve_seed(request.sampler.seed), self.model, len(prompt_tokens), self._stats)
        pending: Future | None = None
        try:
            yield seq.start_event(prompt_tokens)
            seq.accept_prompt(prompt_tokens)
            # a forced prefix: reuse the trail's events and cells where exact (engine/forced.py)
            same_prompt = self.reuse_prefix and self._prompt_logits is not None and prompt_tokens == self._prompt
            known = self.trail[: plan_reuse(self.trail, forced, request.top_n, dist_size, with_entropy)] if same_prompt else []
            try:
                n_evaluated = self.evaluate_prompt(prompt_tokens, keep=cells_to_keep(forced, len(known)))
            except PlaygroundError as exc:
                yield FailedEvent(exc.title, exc.message, 0)
                return
            self.trail = []
            logits = self.prompt_logits
            if forced:
                # the forced tokens decoded now count as evaluated context, as a prompt holding them would
                n_evaluated += len(forced) - (len(self._kv_tokens) - len(prompt_tokens))
                try:
                    yield from force_tokens(self, seq, forced, known, t0, dist_size, with_entropy)
                except PlaygroundError as exc:
                    yield FailedEvent(exc.title, exc.message, seq.n)
                    return
                logits = self.logits_view()
            t_prompt = time.perf_counter() - t0
            while True:
                cancelled = cancel is not None and cancel.is_set()
                picked = seq.choose(logits, cancelled)  # the only work that must sit between decodes
                if picked is None:
                    break
                if self.overlap and not seq.ended:
                    if logits is not self._prompt_logits:
                        np.copyto(self._row, logits)  # the next decode overwrites llama.cpp's row
                        logits = self._row
                    pending = self._decode_ahead(seq.next_token)
                event = seq.token_event(picked, logits, t0, dist_size, with_entropy)
                self.trail.append(event)
                yield event
                if seq.ended:
                    break
                try:
                    if pending is not None:
                        done, pending = pending, None
                        done.result()
                    else:
                        self.decode_one(seq.next_token)
                except PlaygroundError as exc:
                    yield FailedEvent(exc.title, exc.message, seq.n)
                    return
                seq.pos += 1
                logits = self.logits_view()
            yield seq.done_event(t0, t_prompt, n_evaluated)
        finally:
            if pending is not None:  # the consumer left mid-stream: let the decode finish first
                try:
                    pending.result()
                except PlaygroundError:
                    pass
            seq.close()
