"""Step mode: generate one token at a time, picked by the sampler or by hand, with undo.

A ``Stepper`` holds a prompt and the completion so far, and keeps sequence 0 of the engine's KV
cache holding exactly prompt + completion, with the next position's row ready
(``distribution``). The schedule is a generation's (the prompt in canonical chunks, then one token
per decode), so every number equals what ``Engine.stream`` reports at the same place.

The sampler's state, decided so that each step equals a run one can replay headlessly:
    - ``step()`` lets the sampler chain pick, drawing one random number, as ``Engine.stream`` does:
      steps that are all the sampler's equal a plain run with the same seed, token for token.
    - ``step(token)`` is a manual pick, i.e. a branch: the token enters the penalty history without
      a draw, and the chain starts again from its seed, as the sampler of a forced branch does.
      So after manual picks, the sampler's steps equal ``generate --force-prefix-ids`` of the
      completion so far with the same seed (tests/test_stepper.py).
    - ``undo()`` removes the last token from the completion and the KV cache
      (``llama_memory_seq_rm``) and restores the chain as it was before that step (a clone taken
      then: RNG and penalty history), so stepping again draws the same token again.
The row of the new last position is computed again by decoding its token once more (llama.cpp
keeps no older rows; that decode is the same one-token decode, so the row is bit-identical).

An end-of-generation token picked by the sampler is not taken: ``step()`` returns None and leaves
everything as it was (stepping again gives the same answer; pick a token by hand to go on).

Shares the engine's context: another ``Engine.stream`` in between is fine (the stepper evaluates its
state again when the cache no longer holds it), but not at the same time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from playground.engine.generator import Engine, resolve_seed
from playground.engine.sampler_chain import SamplerChain
from playground.engine.token_stats import StatsComputer
from playground.engine.utf8_stream import Utf8Stream
from playground.errors import InvalidParameterError
from playground.events import Alternative, RawDistribution, TokenEvent
from playground.params import GenerationRequest


@dataclass
class _Step:
    event: TokenEvent
    chain_before: object  # the sampler chain's clone from before this step (for undo)


class Stepper:
    """One prompt's completion, built a token at a time (see the module docstring).

    Args:
        engine: the local engine (one user at a time).
        request: prompt, sampler (its seed: -1 draws one, see ``seed``) and ``top_n``;
            ``max_tokens`` and ``stop`` do not apply (the caller decides when to stop).
        dist_size: keep this many head entries of the raw distribution in each event.
    """

    def __init__(self, engine: Engine, request: GenerationRequest, *, dist_size: int = 0) -> None:
        request.validate()
        self.engine = engine
        self.model = engine.model
        self.request = request
        self.dist_size = dist_size
        self.prompt = tuple(engine.tokenize_prompt(request))
        self.seed = resolve_seed(request.sampler.seed)
        self._stats = StatsComputer(self.model.n_vocab)
        self._steps: list[_Step] = []
        self._utf8 = Utf8Stream()
        self._t0 = time.perf_counter()
        self._chain = self._fresh_chain()
        self._row: np.ndarray = self._reach()

    # --- state -----------------------------------------------------------------------------
    @property
    def completion(self) -> tuple[int, ...]:
        return tuple(step.event.id for step in self._steps)

    @property
    def events(self) -> tuple[TokenEvent, ...]:
        return tuple(step.event for step in self._steps)

    @property
    def text(self) -> str:
        return "".join(step.event.text for step in self._steps)

    @property
    def logits(self) -> np.ndarray:
        """The raw logits of the next position (read-only)."""
        view = self._row.view()
        view.flags.writeable = False
        return view

    def distribution(self, top: int = 20) -> RawDistribution:
        """The head of the next position's raw distribution (T = 1, before any penalty)."""
        stats = self._stats(self._row, 0, top, with_entropy=False)
        return RawDistribution(stats.top_ids, stats.top_logprobs, self.model.n_vocab, stats.log_z)

    # --- moves -----------------------------------------------------------------------------
    def step(self, token: int | None = None) -> TokenEvent | None:
        """Append one token: the sampler's pick (None), or ``token`` picked by hand.

        Returns its event (``forced`` for a manual pick), or None when the sampler picked an
        end-of-generation token (nothing changes then).
        """
        if token is not None and not 0 <= token < self.model.n_vocab:
            raise InvalidParameterError(f"token id {token} is not in this model's vocabulary (0-{self.model.n_vocab - 1})")
        self.model.check_fits(len(self.prompt) + len(self._steps) + 1)
        if not self._in_cache():
            self._row = self._reach()
        row = self._row
        before = self._chain.snapshot()
        if token is None:
            picked = self._chain.sample(row)
            if self.model.is_eog(picked.id):
                self._chain.restore(before)
                return None
            token, p_sampled, n_candidates, forced = picked.id, picked.p_sampled, picked.n_candidates, False
        else:
            # a manual pick is a branch: the sampler starts from its seed with this token in its history
            self._chain.close()
            self._chain = self._fresh_chain((*self.completion, token))
            p_sampled = n_candidates = None
            forced = True
        event = self._event(token, row, self._utf8.push(self.model.piece(token)), p_sampled, n_candidates, forced)
        try:
            self.engine.decode_one(token)
        except Exception:
            self._chain.restore(before)
            self._utf8 = self._replayed(self.completion)
            raise
        self._steps.append(_Step(event, before))
        self._row = self.engine.logits_view().copy()
        self.engine.trail = list(self.events)  # a later forced branch reuses these events and cells
        return event

    def undo(self) -> TokenEvent | None:
        """Remove the last token (from the completion, the KV cache and the sampler's state)."""
        if not self._steps:
            return None
        step = self._steps.pop()
        self._chain.restore(step.chain_before)
        self._utf8 = self._replayed(self.completion)
        self._row = self._reach()
        self.engine.trail = list(self.events)
        return step.event

    def close(self) -> None:
        """Free the sampler chain and the kept clones (the engine stays open)."""
        for step in self._steps:
            SamplerChain.free_snapshot(step.chain_before)
        self._steps.clear()
        self._chain.close()

    # --- helpers ---------------------------------------------------------------------------
    def _fresh_chain(self, history: tuple[int, ...] = ()) -> SamplerChain:
        sampler = self.request.sampler
        chain = SamplerChain(sampler, self.model.n_vocab, self.seed)
        n_history = sampler.repeat_last_n  # the prompt's tail, as SequenceDecoder.accept_prompt feeds it
        chain.accept(self.prompt if n_history < 0 else self.prompt[-n_history:] if n_history else ())
        chain.accept(history)
        return chain

    def _in_cache(self) -> bool:
        engine = self.engine
        return engine.prompt_tokens == self.prompt and engine.kv_tokens == self.prompt + self.completion

    def _reach(self) -> np.ndarray:
        """Make the cache hold prompt + completion (reusing the cells it has of them); its last row."""
        done = self.completion
        engine = self.engine
        engine.evaluate_prompt(list(self.prompt), keep=done[:-1])
        for token in done[len(engine.kv_tokens) - len(self.prompt):]:
            engine.decode_one(token)
        return engine.logits_view().copy() if done else engine.prompt_logits

    def _replayed(self, tokens: tuple[int, ...]) -> Utf8Stream:
        stream = Utf8Stream()
        for token in tokens:
            stream.push(self.model.piece(token))
        return stream

    def _event(self, token: int, row: np.ndarray, text: str, p_sampled: float | None, n_candidates: int | None,
               forced: bool) -> TokenEvent:
        top_n = self.request.top_n
        dist_size = self.dist_size
        stats = self._stats(row, token, max(top_n, dist_size))
        return TokenEvent(
            i=len(self._steps),
            id=token,
            text=text,
            logprob=stats.logprob,
            p_sampled=p_sampled,
            top=tuple(Alternative(i, self.model.piece_text(i), lp)
                      for i, lp in zip(stats.top_ids[:top_n].tolist(), stats.top_logprobs[:top_n].tolist())),
            t=time.perf_counter() - self._t0,
            n_candidates=n_candidates,
            entropy=stats.entropy,
            dist=RawDistribution(stats.top_ids[:dist_size], stats.top_logprobs[:dist_size], self.model.n_vocab, stats.log_z)
            if dist_size else None,
            forced=forced,
        )
