"""Several completions decoded together: compare lanes, prompt variants and self-consistency samples.

Schedule: the prompt goes into sequence 0 through ``Engine.evaluate_prompt`` (so the engine's
prefix reuse keeps working), ``llama_memory_seq_cp`` shares it with sequences 1..N (the context is
created with a unified KV cache when it holds several sequences, so this only tags cells: no copy,
no extra memory), then every step is ONE ``llama_decode`` holding the next token of each live lane,
lane k in sequence k + 1. Each lane samples from its own output row
(``llama_get_logits_ith(ctx, batch_index)``) with its own sampler chain and seed, so it takes the
tokens a single-lane run with the same settings would take: with flash attention (the default) the
batched logits are bit-identical to a single run's (tests/test_lanes.py). Without it, llama.cpp's
logits depend on how tokens are batched even for one sequence, and lanes inherit that. Sequence 0
keeps only the prompt (evaluated in the engine's canonical schedule), so a re-run of the same prompt
evaluates nothing and samples every lane's first token from the kept copy of the prompt's last row,
exactly as a cold run does; the lanes' sequences are emptied when the run ends.

Lanes with different prompts (prompt variants): lanes with the same tokens form one group. The first
lane's prompt goes into sequence 0 as above; every other group's prompt goes into its first lane's
sequence, where the longest whole-chunk prefix it shares with an earlier group's prompt
(``prefill.plan_shared_prefill``) is copied with ``llama_memory_seq_cp`` instead of evaluated again,
and its remaining positions are evaluated in the canonical chunks of a single run of that prompt,
the last one with its logits (copied: the next decode overwrites them). Each position then holds
what a cold single run of that prompt computes, so the lane equals the single run token for token
(tests/test_lanes_prompts.py). Two things keep the floats exact. (1) Each chunk is its own
``llama_decode``: putting two groups' chunks in one decode changed the logits (measured there).
(2) A batch of 64 or more queries runs llama.cpp's tiled flash attention, whose sums follow tiles
of ``FA_TILE_KV`` cells, so the cell layout matters: with several prompts the cache is cleared
first (no cross-run reuse for such runs, but the shared prefix is evaluated once within the run),
laid out from cell 0 without holes, and each group's own chunks start at a tile boundary, as
their first position does in a single run; the gap is filled with padding tokens in a spare
sequence that is emptied when the run ends (at most ``FA_TILE_KV - 1`` cells per prompt; emptied
earlier, its cells would be holes that the lanes' next tokens fill, out of position order, and
flash attention sums a sequence's cells in cell order).

Not thread-safe, and shares the engine's context: run one ``stream`` (or ``Engine.stream``) at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np

from playground.engine.lane_events import BatchDone, LaneEvent, batch_summary
from playground.engine.batch import Batch
from playground.engine.generator import Engine, resolve_seed
from playground.engine.llama_model import LlamaModel
from playground.engine.prefill import chunk_spans, plan_shared_prefill
from playground.engine.sequence import SequenceDecoder
from playground.engine.token_stats import StatsComputer
from playground.errors import InvalidParameterError, PlaygroundError, PromptTooLongError
from playground.events import FailedEvent
from playground.params import GenerationRequest

#: KV cells per tile of llama.cpp's tiled CPU flash attention (``GGML_FA_TILE_KV``), which it uses
#: for a batch of 64 queries or more (a canonical chunk of 128): its sums follow the tiles, so a
#: prompt's own chunks must start at a cell whose offset in its tile equals their position's
#: offset in a single run (where position = cell), and a tile must hold no other sequence's cells.
FA_TILE_KV = 64

#: Most lanes one run may hold (self-consistency asks for up to 32 samples).
MAX_LANES = 32


def seq_max_for(n_lanes: int) -> int:
    """The ``n_seq_max`` a context needs for ``n_lanes`` lanes: one per lane, the prompt's, and a
    spare one for the padding that aligns the prompts of lanes with different prompts."""
    return n_lanes + 2


class _Lane(SequenceDecoder):
    """One lane: a sequence decoder with its place in the batch and the KV cache."""

    def __init__(self, index: int, request: GenerationRequest, seed: int, model: LlamaModel, pos: int, stats: StatsComputer) -> None:
        super().__init__(request, seed, model, pos, stats)
        self.index = index
        self.seq = index + 1  # sequence 0 holds the shared prompt
        self.batch_index = -1  # its output row in the last decode (-1: the prompt's last token)
        self.prompt_logits: np.ndarray | None = None  # its prompt's last row (its first step samples it)
        self.n_evaluated = 0  # prompt tokens evaluated for its prompt in this run


@dataclass
class _Group:
    """The lanes of one prompt: its tokens, the sequence holding them, its last logits row."""

    tokens: list[int]
    seq: int
    lanes: list[int]
    source: int = -1  # the group whose sequence lends it [0, keep)
    keep: int = 0
    done: int = -1  # positions evaluated (or copied) so far; -1: not started
    evaluated: int = 0
    logits: np.ndarray | None = None


class LaneRunner:
    """Runs N lanes of one prompt on an engine whose context holds ``seq_max_for(N)`` sequences."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model = engine.model
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(self.model.ctx))
        self._batch = Batch(max(1, self.n_seq_max))
        # one micro-batch at most, so that llama.cpp never splits a chunk
        n_ubatch = int(llama_cpp.llama_n_ubatch(self.model.ctx))
        self._prefill_capacity = max(engine.prefill_chunk, min(self.model.n_ctx, n_ubatch))
        self._prefill_batch: Batch | None = None
        self._last_row = -1

    @property
    def max_lanes(self) -> int:
        return min(MAX_LANES, self.n_seq_max - 2)

    def close(self) -> None:
        self._batch.close()
        if self._prefill_batch is not None:
            self._prefill_batch.close()
            self._prefill_batch = None

    def _check(self, requests: Sequence[GenerationRequest]) -> None:
        if not requests:
            raise InvalidParameterError("at least one lane is needed")
        if len(requests) > self.max_lanes:
            raise InvalidParameterError(
                f"{len(requests)} lanes, but this context holds {self.max_lanes} "
                f"(load the model with n_seq_max >= {seq_max_for(len(requests))}; at most {MAX_LANES} lanes)"
            )
        for request in requests:
            request.validate()
            if request.force_ids:  # forced prefixes run through Engine.stream, one at a time
                raise InvalidParameterError("a forced prefix runs as a single lane, not in a batch of lanes")

    def _clear_lane_sequences(self) -> None:
        for seq in range(1, self.n_seq_max):
            llama_cpp.llama_memory_seq_rm(self.model.memory, seq, -1, -1)

    def stream(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        *,
        lane_cancel: Sequence[threading.Event | None] | None = None,
        dist_size: int = 0,
        with_entropy: bool = True,
    ) -> Iterator[LaneEvent | BatchDone]:
        """Yield each lane's Start event, then Token events as the steps produce them (lane order
        within a step), each lane's Done or Failed event when it ends, and one ``BatchDone``.

        Args:
            requests: one per lane, each with its own prompt (lanes of equal prompts share
                it), sampler, seed, max tokens, stop strings and top-n.
            cancel: set it to end every lane between two steps (finish_reason "cancelled").
            lane_cancel: per-lane events, to end one lane while the others go on.
            dist_size: keep this many head entries of the raw distribution per token.
            with_entropy: compute the raw distribution's entropy per token.
        """
        self._check(requests)
        t0 = time.perf_counter()
        model = self.model
        prompts = [self.engine.tokenize_prompt(r) for r in requests]
        groups = self._groups(prompts)
        n_prompt = sum(len(g.tokens) for g in groups)
        stats = StatsComputer(model.n_vocab)
        lanes = [_Lane(k, r, resolve_seed(r.sampler.seed), model, len(prompts[k]), stats) for k, r in enumerate(requests)]
        try:
            for lane in lanes:
                yield LaneEvent(lane.index, lane.start_event(prompts[lane.index]))
                lane.accept_prompt(prompts[lane.index])
            try:
                self._clear_lane_sequences()
                self._prefill(groups)
            except PlaygroundError as exc:
                for lane in lanes:
                    yield LaneEvent(lane.index, FailedEvent(exc.title, exc.message, 0))
                yield self._summary(lanes, (t0, time.perf_counter() - t0, n_prompt, 0), 0, groups)
                return
            t_prompt = time.perf_counter() - t0
            for group in groups:
                for k in group.lanes:
                    lane = lanes[k]
                    if lane.seq != group.seq:
                        llama_cpp.llama_memory_seq_cp(model.memory, group.seq, lane.seq, -1, -1)
                    lane.prompt_logits = group.logits
                    lane.n_evaluated = group.evaluated
            timing = (t0, t_prompt, n_prompt, sum(g.evaluated for g in groups))
            yield from self._steps(lanes, cancel, lane_cancel, timing, dist_size, with_entropy, groups)
        finally:
            for lane in lanes:
                lane.close()
            self._clear_lane_sequences()

    def _groups(self, prompts: Sequence[list[int]]) -> list[_Group]:
        """One group per distinct prompt, in order of first use, with its sharing plan."""
        groups: list[_Group] = []
        by_tokens: dict[tuple[int, ...], _Group] = {}
        for k, tokens in enumerate(prompts):
            group = by_tokens.get(tuple(tokens))
            if group is None:
                group = by_tokens[tuple(tokens)] = _Group(tokens, 0 if not groups else k + 1, [])
                groups.append(group)
            group.lanes.append(k)
        plan = plan_shared_prefill([g.tokens for g in groups], self.engine.prefill_chunk)
        for group, (source, keep) in zip(groups, plan):
            group.source, group.keep = source, keep
        return groups

    @staticmethod
    def _cells(groups: Sequence[_Group]) -> int:
        """KV cells the prompts take: each group's own positions (shared ones are counted once)."""
        return sum(len(g.tokens) - g.keep for g in groups)

    def _prefill(self, groups: list[_Group]) -> None:
        """Evaluate every group's prompt (see the module docstring)."""
        model = self.model
        several = len(groups) > 1
        room = self._cells(groups) + (FA_TILE_KV * (len(groups) - 1) if several else 0)
        if room + 1 > model.n_ctx:
            raise PromptTooLongError(
                f"the lanes' prompts take {room} KV cells together; the context holds {model.n_ctx}")
        if several:
            self.engine.forget_cache()  # a known cell layout: every prompt is laid out from cell 0
        first = groups[0]
        first.evaluated = self.engine.evaluate_prompt(first.tokens)
        first.logits, first.done = self.engine.prompt_logits, len(first.tokens)
        head = len(first.tokens)  # the next free cell: the cache is filled from 0 without holes
        spare = self.n_seq_max - 1  # holds the padding until the run ends (no holes before then)
        filler = 0
        for group in groups[1:]:
            source = groups[group.source] if group.source >= 0 else None
            if source is not None and group.keep:
                llama_cpp.llama_memory_seq_cp(model.memory, source.seq, group.seq, 0, group.keep)
            pad = (group.keep - head) % FA_TILE_KV
            if pad:
                self._decode_span([0] * pad, filler, spare, False)
                filler += pad
                head += pad
            last = len(group.tokens) - 1
            for start, end in chunk_spans(group.keep, len(group.tokens), self.engine.prefill_chunk):
                self._decode_span(group.tokens[start:end], start, group.seq, end - 1 == last)
                group.evaluated += end - start
                head += end - start
            row = self.engine.logits_view(self._last_row).copy()
            row.flags.writeable = False
            group.logits, group.done = row, len(group.tokens)

    def _decode_span(self, tokens: Sequence[int], pos: int, seq: int, logits: bool) -> None:
        """One ``llama_decode`` of ``tokens`` at positions ``pos...`` of ``seq`` (logits of the last)."""
        if self._prefill_batch is None:
            self._prefill_batch = Batch(self._prefill_capacity)
        batch = self._prefill_batch
        batch.clear()
        for i, token in enumerate(tokens):
            self._last_row = batch.add(token, pos + i, (seq,), logits and i == len(tokens) - 1)
        self.engine.decode(batch)

    def _steps(
        self,
        lanes: list[_Lane],
        cancel: threading.Event | None,
        lane_cancel: Sequence[threading.Event | None] | None,
        timing: tuple[float, float, int, int],
        dist_size: int,
        with_entropy: bool,
        groups: list[_Group],
    ) -> Iterator[LaneEvent | BatchDone]:
        model = self.model
        batch = self._batch
        t0, t_prompt, n_prompt, n_evaluated = timing
        cells_used = self._cells(groups)  # KV cells in use: the prompts, then one per decoded lane token
        live = list(lanes)
        n_steps = 0
        while live:
            for lane in live:
                own = lane_cancel[lane.index] if lane_cancel is not None else None
                cancelled = (cancel is not None and cancel.is_set()) or (own is not None and own.is_set())
                # the first step of every lane samples from the prompt's kept last row
                logits = lane.prompt_logits if lane.batch_index < 0 else self.engine.logits_view(lane.batch_index)
                event = lane.step(logits, t0, dist_size, with_entropy, cancelled)
                if event is not None:
                    yield LaneEvent(lane.index, event)
                if lane.ended:
                    yield LaneEvent(lane.index, lane.done_event(t0, t_prompt, lane.n_evaluated))
            live = [lane for lane in live if not lane.ended]
            if not live:
                break
            if cells_used + len(live) > model.n_ctx:
                # The unified cache is full: every lane still going ends as a single run would at n_ctx.
                for lane in live:
                    lane.end("length")
                    yield LaneEvent(lane.index, lane.done_event(t0, t_prompt, lane.n_evaluated))
                break
            batch.clear()
            for lane in live:
                lane.batch_index = batch.add(lane.next_token, lane.pos, (lane.seq,), True)
                lane.pos += 1
            try:
                self.engine.decode(batch)
            except PlaygroundError as exc:
                for lane in live:
                    yield LaneEvent(lane.index, FailedEvent(exc.title, exc.message, lane.n))
                break
            cells_used += len(live)
            n_steps += 1
        yield self._summary(lanes, timing, n_steps, groups)

    @staticmethod
    def _summary(lanes: list[_Lane], timing: tuple[float, float, int, int], n_steps: int,
                 groups: Sequence[_Group] = ()) -> BatchDone:
        t0, t_prompt, n_prompt, n_evaluated = timing
        return batch_summary(t0, t_prompt, n_prompt, n_evaluated, [(lane.n, lane.t_first, lane.t_last) for lane in lanes],
                             n_steps, n_prompts=len(groups), prompt_tokens_shared=sum(g.keep for g in groups))
