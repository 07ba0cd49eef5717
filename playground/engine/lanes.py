"""Several completions of one prompt, decoded together: compare lanes and self-consistency samples.

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

Not thread-safe, and shares the engine's context: run one ``stream`` (or ``Engine.stream``) at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence


import llama_cpp

from playground.engine.lane_events import BatchDone, LaneEvent
from playground.engine.batch import Batch
from playground.engine.generator import Engine, resolve_seed
from playground.engine.llama_model import LlamaModel
from playground.engine.sequence import SequenceDecoder
from playground.engine.token_stats import StatsComputer
from playground.errors import InvalidParameterError, PlaygroundError
from playground.events import FailedEvent
from playground.params import GenerationRequest

#: Most lanes one run may hold (self-consistency asks for up to 32 samples).
MAX_LANES = 32


def seq_max_for(n_lanes: int) -> int:
    """The ``n_seq_max`` a context needs for ``n_lanes`` lanes: one per lane plus the prompt's."""
    return n_lanes + 1


class _Lane(SequenceDecoder):
    """One lane: a sequence decoder with its place in the batch and the KV cache."""

    def __init__(self, index: int, request: GenerationRequest, seed: int, model: LlamaModel, pos: int, stats: StatsComputer) -> None:
        super().__init__(request, seed, model, pos, stats)
        self.index = index
        self.seq = index + 1  # sequence 0 holds the shared prompt
        self.batch_index = -1  # its output row in the last decode (-1: the prompt's last token)


class LaneRunner:
    """Runs N lanes of one prompt on an engine whose context holds ``seq_max_for(N)`` sequences."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model = engine.model
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(self.model.ctx))
        self._batch = Batch(max(1, self.n_seq_max))

    @property
    def max_lanes(self) -> int:
        return min(MAX_LANES, self.n_seq_max - 1)

    def close(self) -> None:
        self._batch.close()

    def _check(self, requests: Sequence[GenerationRequest]) -> None:
        if not requests:
            raise InvalidParameterError("at least one lane is needed")
        if len(requests) > self.max_lanes:
            raise InvalidParameterError(
                f"{len(requests)} lanes, but this context holds {self.max_lanes} "
                f"(load the model with n_seq_max >= {seq_max_for(len(requests))}; at most {MAX_LANES} lanes)"
            )
        first = requests[0]
        for request in requests:
            request.validate()
            if request.prompt != first.prompt or request.add_special != first.add_special:
                raise InvalidParameterError("all lanes of one run share the same prompt")

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
            requests: one per lane, all with the same prompt; each has its own sampler, seed,
                max tokens, stop strings and top-n.
            cancel: set it to end every lane between two steps (finish_reason "cancelled").
            lane_cancel: per-lane events, to end one lane while the others go on.
            dist_size: keep this many head entries of the raw distribution per token.
            with_entropy: compute the raw distribution's entropy per token.
        """
        self._check(requests)
        t0 = time.perf_counter()
        model = self.model
        prompt_tokens = self.engine.tokenize_prompt(requests[0])
        n_prompt = len(prompt_tokens)
        stats = StatsComputer(model.n_vocab)
        lanes = [_Lane(k, r, resolve_seed(r.sampler.seed), model, n_prompt, stats) for k, r in enumerate(requests)]
        try:
            for lane in lanes:
                yield LaneEvent(lane.index, lane.start_event(prompt_tokens))
                lane.accept_prompt(prompt_tokens)
            try:
                self._clear_lane_sequences()
                n_evaluated = self.engine.evaluate_prompt(prompt_tokens)
            except PlaygroundError as exc:
                for lane in lanes:
                    yield LaneEvent(lane.index, FailedEvent(exc.title, exc.message, 0))
                yield self._summary(lanes, (t0, time.perf_counter() - t0, n_prompt, 0), 0)
                return
            t_prompt = time.perf_counter() - t0
            for lane in lanes:
                llama_cpp.llama_memory_seq_cp(model.memory, 0, lane.seq, -1, -1)
            timing = (t0, t_prompt, n_prompt, n_evaluated)
            yield from self._steps(lanes, cancel, lane_cancel, timing, dist_size, with_entropy)
        finally:
            for lane in lanes:
                lane.close()
            self._clear_lane_sequences()

    def _steps(
        self,
        lanes: list[_Lane],
        cancel: threading.Event | None,
        lane_cancel: Sequence[threading.Event | None] | None,
        timing: tuple[float, float, int, int],
        dist_size: int,
        with_entropy: bool,
    ) -> Iterator[LaneEvent | BatchDone]:
        model = self.model
        batch = self._batch
        t0, t_prompt, n_prompt, n_evaluated = timing
        cells_used = n_prompt  # KV cells in use: the shared prompt, then one per decoded lane token
        live = list(lanes)
        n_steps = 0
        while live:
            for lane in live:
                own = lane_cancel[lane.index] if lane_cancel is not None else None
                cancelled = (cancel is not None and cancel.is_set()) or (own is not None and own.is_set())
                # the first step of every lane samples from the prompt's kept last row
                logits = self.engine.prompt_logits if lane.batch_index < 0 else self.engine.logits_view(lane.batch_index)
                event = lane.step(logits, t0, dist_size, with_entropy, cancelled)
                if event is not None:
                    yield LaneEvent(lane.index, event)
                if lane.ended:
                    yield LaneEvent(lane.index, lane.done_event(t0, t_prompt, n_evaluated))
            live = [lane for lane in live if not lane.ended]
            if not live:
                break
            if cells_used + len(live) > model.n_ctx:
                # The unified cache is full: every lane still going ends as a single run would at n_ctx.
                for lane in live:
                    lane.end("length")
                    yield LaneEvent(lane.index, lane.done_event(t0, t_prompt, n_evaluated))
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
        yield self._summary(lanes, timing, n_steps)

    @staticmethod
    def _summary(lanes: list[_Lane], timing: tuple[float, float, int, int], n_steps: int) -> BatchDone:
        t0, t_prompt, n_prompt, n_evaluated = timing
        firsts = [lane.t_first for lane in lanes if lane.t_first is not None]
        n_tokens = sum(lane.n for lane in lanes)
        decode_s = max(lane.t_last for lane in lanes) - min(firsts) if firsts else 0.0
        counted = n_tokens - len(firsts)  # each lane's first token comes from the prompt's logits
        return BatchDone(
            n_lanes=len(lanes),
            prompt_tokens=n_prompt,
            prompt_tokens_evaluated=n_evaluated,
            prompt_s=t_prompt,
            n_tokens=n_tokens,
            n_steps=n_steps,
            decode_s=decode_s,
            decode_tok_s=(counted / decode_s) if counted > 0 and decode_s > 0 else None,
            wall_s=time.perf_counter() - t0,
        )
