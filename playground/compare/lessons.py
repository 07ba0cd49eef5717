"""What a comparison teaches beyond "where do the lanes part": confidence and a summary per lane.

When two lanes take the same tokens (e.g. zero-shot vs 3-shot both answer " negative"), the
difference is in how sure the model was: ``confidence_gaps`` gives, for each shared position, the
difference of the chosen token's raw log-probability (lane minus reference), so "few-shot made the
model 3x more confident in ' negative'" is ``exp(delta) = 3``. ``lane_summary`` is the one line per
lane: mean logprob, perplexity, tokens and time to first token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from playground.events import DoneEvent, StreamEvent, TokenEvent


@dataclass(frozen=True, slots=True)
class ConfidenceGap:
    """One position both lanes filled with the same token."""

    index: int
    text: str
    logprob: float
    reference_logprob: float

    @property
    def delta(self) -> float:
        """lane minus reference, in nats; exp(delta) is the ratio of the two probabilities."""
        return self.logprob - self.reference_logprob

    @property
    def ratio(self) -> float:
        return math.exp(self.delta)


def confidence_gaps(tokens: Sequence[TokenEvent], reference: Sequence[TokenEvent], *,
                    by_text: bool = False) -> list[ConfidenceGap]:
    """Per position of the common prefix (same id, or same text when ids are not comparable), the
    difference of the chosen tokens' raw log-probabilities; positions without logprobs are skipped."""
    out = []
    for i, (mine, ref) in enumerate(zip(tokens, reference)):
        same = mine.text == ref.text if by_text or mine.id < 0 or ref.id < 0 else mine.id == ref.id
        if not same:
            break
        if mine.logprob is None or ref.logprob is None or math.isnan(mine.logprob) or math.isnan(ref.logprob):
            continue
        out.append(ConfidenceGap(i, mine.text, mine.logprob, ref.logprob))
    return out


def strongest_gap(gaps: Sequence[ConfidenceGap]) -> ConfidenceGap | None:
    """The shared position where the lanes' confidence differs most (either way); None when it
    does not differ at all (lanes of one prompt: the sampler never changes raw logprobs)."""
    best = max(gaps, key=lambda g: abs(g.delta), default=None)
    return best if best is not None and best.delta != 0.0 else None


def gap_line(gap: ConfidenceGap) -> str:
    """``' negative' 3.1x more likely (-0.21 vs -1.34) at #0``."""
    more = "more" if gap.delta >= 0 else "less"
    times = gap.ratio if gap.delta >= 0 else 1 / gap.ratio
    return f"{gap.text!r} {times:.1f}x {more} likely ({gap.logprob:.2f} vs {gap.reference_logprob:.2f}) at #{gap.index}"


@dataclass(frozen=True, slots=True)
class LaneSummary:
    n_tokens: int
    mean_logprob: float | None
    perplexity: float | None
    ttft_s: float | None

    def line(self, *, timings: bool = True) -> str:
        mean = "—" if self.mean_logprob is None else f"{self.mean_logprob:.3f}"
        ppl = "—" if self.perplexity is None else f"{self.perplexity:.2f}"
        ttft = "—" if self.ttft_s is None or not timings else f"{1000 * self.ttft_s:.0f} ms"
        return f"mean logprob {mean} · ppl {ppl} · {self.n_tokens} tokens · TTFT {ttft}"


def lane_summary(tokens: Sequence[TokenEvent], end: StreamEvent | None = None) -> LaneSummary:
    """Mean raw logprob and perplexity of the generated tokens (None when any is unavailable)."""
    generated = [t for t in tokens if not t.forced]
    lps = [t.logprob for t in generated]
    known = bool(lps) and all(lp is not None and math.isfinite(lp) for lp in lps)
    mean = sum(lps) / len(lps) if known else None  # type: ignore[arg-type]
    ttft = end.ttft_s if isinstance(end, DoneEvent) else None
    return LaneSummary(len(generated), mean, math.exp(-mean) if mean is not None else None, ttft)
