"""One sequence's side of the decode loop: sample, measure, detect the end, build the events.

Shared by the single-run ``Engine`` and the batched compare lanes (``engine/lanes.py``), so that a
lane takes exactly the steps a single run takes; only who calls ``llama_decode`` differs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from playground.engine.constraint import ConstrainedSampler, ConstrainedStep
from playground.engine.forced import restated
from playground.engine.llama_model import LlamaModel
from playground.engine.sampler_chain import SampledToken, SamplerChain
from playground.engine.token_stats import StatsComputer
from playground.engine.utf8_stream import Utf8Stream
from playground.events import Alternative, DoneEvent, RawDistribution, StartEvent, TokenEvent
from playground.params import GenerationRequest


class SequenceDecoder:
    """Sampler chain, UTF-8 stream, stop strings, limits and timing of one generated sequence.

    After ``step`` either ``ended`` is set or ``next_token`` must be decoded at ``pos``.
    """

    def __init__(self, request: GenerationRequest, seed: int, model: LlamaModel, pos: int, stats: StatsComputer) -> None:
        self.request = request
        self.seed = seed
        self.model = model
        self.stats = stats
        # a constraint: llama.cpp's grammar sampler, grammar first (engine/constraint.py); None costs nothing
        self.constrained = ConstrainedSampler(request.constraint, model) if request.constraint is not None else None
        self._step: ConstrainedStep | None = None  # what the constraint did at the token ``choose`` took
        self.chain = SamplerChain(request.sampler, model.n_vocab, seed, model=model)
        self.utf8 = Utf8Stream()
        self.longest_stop = max((len(s) for s in request.stop), default=0)
        self.recent = ""  # tail of the completion, long enough to see a stop string arrive
        self.n = 0
        self.pos = pos  # KV position of the next token this sequence decodes
        self.next_token = -1
        self.t_first: float | None = None
        self.t_last = 0.0
        self.finish = "length"
        self.stop_hit: str | None = None
        self.ended = False
        self._text = ""  # the text of the token ``choose`` took, for its event
        self.n_forced = 0  # leading token events that were forced, not sampled (``force``)

    def start_event(self, prompt_tokens: Sequence[int]) -> StartEvent:
        r = self.request
        return StartEvent(
            model=self.model.describe(),
            prompt=r.prompt,
            prompt_tokens=tuple(prompt_tokens),
            params={**r.sampler.to_dict(), "seed": self.seed, "max_tokens": r.max_tokens, "stop": list(r.stop), "top_n": r.top_n,
                    "prefill_chunk": self.model.prefill_chunk,
                    **({"constraint": r.constraint.to_dict()} if r.constraint is not None else {})},
        )

    def accept_prompt(self, prompt_tokens: Sequence[int]) -> None:
        """Let the penalties and DRY see the prompt's tail (as llama-cli does)."""
        n_history = self.chain.history_needed
        self.chain.accept(prompt_tokens if n_history < 0 else prompt_tokens[-n_history:] if n_history else ())

    def end(self, finish: str) -> None:
        self.finish = finish
        self.ended = True

    def close(self) -> None:
        self.chain.close()
        if self.constrained is not None:
            self.constrained.close()

    def step(self, logits: np.ndarray, t0: float, dist_size: int, with_entropy: bool, cancelled: bool) -> TokenEvent | None:
        """Sample the next token from ``logits``; return its event, or None if the sequence ended
        without one (cancelled before sampling, or an end-of-generation token)."""
        picked = self.choose(logits, cancelled)
        return None if picked is None else self.token_event(picked, logits, t0, dist_size, with_entropy)

    def choose(self, logits: np.ndarray, cancelled: bool) -> SampledToken | None:
        """The part of a step that must happen before the next decode: sample, and decide whether
        the sequence goes on (``next_token``) or ends. None: it ended without a token."""
        if cancelled:
            self.end("cancelled")
            return None
        model = self.model
        if self.constrained is None:
            picked = self.chain.sample(logits)
        else:
            got = self.constrained.choose(self.chain, logits)
            if got is None:  # the grammar allows only an end of generation (or nothing: dead_end)
                self.end("stop")
                return None
            picked, self._step = got
        token = picked.id
        if model.is_eog(token):
            self.end("stop")
            return None
        text = self.utf8.push(model.piece(token))
        self._text = text
        stops = self.request.stop
        if stops and text:
            self.recent = (self.recent + text)[-(self.longest_stop + len(text)) :]
            self.stop_hit = next((s for s in stops if s in self.recent), None)
            if self.stop_hit is not None:
                self.end("stop")
                return picked
        if self.n - self.n_forced + 1 >= self.request.max_tokens or self.pos + 1 > model.n_ctx:
            self.end("length")
            return picked
        self.next_token = token
        return picked

    def force(self, token: int, logits: np.ndarray | None, t0: float, dist_size: int, with_entropy: bool,
              known: TokenEvent | None = None) -> TokenEvent:
        """Take ``token`` without sampling it (a forced prefix, see ``engine/forced.py``): its event
        carries the raw statistics of ``logits`` (the row before it), or those of ``known`` (an
        earlier run's event of the same token after the same tokens), and ``forced=True``.

        The token enters the sampler's history (the repeat penalty sees it, as it sees a prompt's
        tail) but draws no random number; it is not checked for a stop string (a cold run whose
        prompt holds it would not see it either) and does not count against ``max_tokens``, which
        counts new tokens. The caller decodes ``next_token`` at ``pos``.
        """
        if self.constrained is not None:
            self.constrained.accept_forced(token)  # InvalidParameterError if the grammar forbids it
        self._step = None
        self.chain.accept((token,))
        self._text = self.utf8.push(self.model.piece(token))
        if known is not None:
            self.t_last = time.perf_counter()
            event = restated(known, self.n, self._text, self.t_last - t0, self.request.top_n, dist_size, with_entropy)
            self.n += 1
        else:
            assert logits is not None
            t_first = self.t_first
            event = replace(self.token_event(SampledToken(token, None, None), logits, t0, dist_size, with_entropy),  # type: ignore[arg-type]
                            forced=True)
            self.t_first = t_first  # the time to the first token is the first generated one's
        self.n_forced += 1  # max_tokens counts the new tokens after these (``choose``)
        self.next_token = token
        return event

    def token_event(self, picked: SampledToken, logits: np.ndarray, t0: float, dist_size: int, with_entropy: bool) -> TokenEvent:
        """The event of the token ``choose`` just took: raw statistics of ``logits`` (the same row
        it was sampled from; may run while the next token decodes)."""
        model = self.model
        token = picked.id
        top_n = self.request.top_n
        stats = self.stats(logits, token, max(top_n, dist_size), with_entropy=with_entropy)
        top = tuple(
            Alternative(i, model.piece_text(i), lp)
            for i, lp in zip(stats.top_ids[:top_n].tolist(), stats.top_logprobs[:top_n].tolist())
        )
        dist = (
            RawDistribution(stats.top_ids[:dist_size], stats.top_logprobs[:dist_size], model.n_vocab, stats.log_z)
            if dist_size
            else None
        )
        self.t_last = time.perf_counter()
        if self.t_first is None:
            self.t_first = self.t_last
        event = TokenEvent(
            i=self.n,
            id=token,
            text=self._text,
            logprob=stats.logprob,
            p_sampled=picked.p_sampled,
            top=top,
            t=self.t_last - t0,
            n_candidates=picked.n_candidates,
            entropy=stats.entropy,
            dist=dist,
        )
        if self._step is not None:
            step, self._step = self._step, None
            differs = step.unconstrained_id != token
            if dist is not None:  # which of the head's tokens the grammar allowed (the view strikes the rest)
                allowed = step.allowed
                at = np.minimum(np.searchsorted(allowed, dist.ids), max(0, allowed.size - 1))
                mask = allowed[at] == dist.ids if allowed.size else np.zeros(dist.ids.size, dtype=bool)
                dist = replace(dist, allowed=mask, n_allowed=int(allowed.size), allowed_mass=1.0 - step.mass_removed)
            event = replace(event, dist=dist, constraint_mass_removed=step.mass_removed,
                            unconstrained_id=step.unconstrained_id if differs else None,
                            unconstrained_text=model.piece_text(step.unconstrained_id) if differs else None)
        self.n += 1
        return event

    def done_event(self, t0: float, t_prompt: float, n_evaluated: int) -> DoneEvent:
        t_first = self.t_first
        decode_s = self.t_last - t_first if t_first is not None else 0.0
        return DoneEvent(
            finish_reason=self.finish,  # type: ignore[arg-type]
            n_tokens=self.n,
            ttft_s=(t_first - t0) if t_first is not None else None,
            prompt_tok_s=(n_evaluated / t_prompt) if t_prompt > 0 else None,
            decode_tok_s=((self.n - self.n_forced - 1) / decode_s) if self.n - self.n_forced > 1 and decode_s > 0 else None,
            prompt_tokens_evaluated=n_evaluated,
            stop_string=self.stop_hit,
            seed=self.seed,
            tail=self.utf8.flush(),
        )
