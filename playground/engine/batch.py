"""A reusable llama_batch: fill it with tokens of one or more sequences and decode."""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp

from playground.errors import GenerationError
from playground.engine.llama_model import LlamaModel, last_llama_log


class Batch:
    """Owns one ``llama_batch`` of a fixed capacity; freed with ``close``."""

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self._batch.n_tokens = 0

    def add(self, token: int, pos: int, seq_ids: Sequence[int], want_logits: bool) -> int:
        """Append one token; return its index in the batch (for ``llama_get_logits_ith``)."""
        if self.n >= self.capacity:
            raise GenerationError(f"batch full ({self.capacity} tokens)")
        i = self.n
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = len(seq_ids)
        for j, seq in enumerate(seq_ids):
            b.seq_id[i][j] = seq
        b.logits[i] = want_logits
        self.n += 1
        b.n_tokens = self.n
        return i

    def decode(self, model: LlamaModel) -> None:
        rc = llama_cpp.llama_decode(model.ctx, self._batch)
        if rc != 0:
            reason = {1: "no room in the KV cache", 2: "aborted"}.get(rc, f"error code {rc}")
            raise GenerationError(f"llama_decode failed: {reason} {last_llama_log(1)}".strip())

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
