"""Where two lanes' completions part: the first token index whose ids differ."""

from __future__ import annotations

from collections.abc import Sequence

from playground.compare.events import Divergence, TokenChoice
from playground.events import TokenEvent


def first_divergence(
    tokens: Sequence[TokenEvent], reference: Sequence[TokenEvent], lane: int, reference_lane: int = 0
) -> Divergence:
    """Compare ``tokens`` (lane ``lane``) with ``reference`` token by token.

    Works on partial lists too (the UI may call it while lanes stream), but a strict-prefix result
    is only final once the shorter lane has ended.
    """
    n = min(len(tokens), len(reference))
    index = next((i for i in range(n) if tokens[i].id != reference[i].id), None)
    if index is None:
        if len(tokens) == len(reference):
            return Divergence(lane, reference_lane, None, None, None)
        index = n  # one completion is a prefix of the other: the shorter one had ended there

    def choice(seq: Sequence[TokenEvent]) -> TokenChoice | None:
        return TokenChoice.of(seq[index]) if index < len(seq) else None

    return Divergence(lane, reference_lane, index, choice(tokens), choice(reference))


def divergences(completions: Sequence[Sequence[TokenEvent]], reference: int = 0) -> list[Divergence]:
    """Each lane against the reference lane (lane 0 by default), in lane order."""
    ref = completions[reference]
    return [first_divergence(c, ref, k, reference) for k, c in enumerate(completions) if k != reference]
