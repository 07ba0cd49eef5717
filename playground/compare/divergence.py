"""Where two lanes' completions part: the first token index whose ids differ."""

from __future__ import annotations

from collections.abc import Sequence

from playground.compare.events import Divergence, TokenChoice
from playground.events import TokenEvent


def first_divergence(
    tokens: Sequence[TokenEvent],
    reference: Sequence[TokenEvent],
    lane: int,
    reference_lane: int = 0,
    *,
    by_text: bool = False,
) -> Divergence:
    """Compare ``tokens`` (lane ``lane``) with ``reference`` token by token.

    Works on partial lists too (the UI may call it while lanes stream), but a strict-prefix result
    is only final once the shorter lane has ended.

    Args:
        by_text: compare token texts instead of ids (ids missing, or from different vocabularies);
            also chosen when either side has a token without an id (remote tokens have id -1).
    """
    n = min(len(tokens), len(reference))
    by_text = by_text or any(t.id < 0 for t in tokens[:n]) or any(t.id < 0 for t in reference[:n])
    key = (lambda t: t.text) if by_text else (lambda t: t.id)
    by = "text" if by_text else "id"
    index = next((i for i in range(n) if key(tokens[i]) != key(reference[i])), None)
    if index is None:
        if len(tokens) == len(reference):
            return Divergence(lane, reference_lane, None, None, None, by)
        index = n  # one completion is a prefix of the other: the shorter one had ended there

    def choice(seq: Sequence[TokenEvent]) -> TokenChoice | None:
        return TokenChoice.of(seq[index]) if index < len(seq) else None

    return Divergence(lane, reference_lane, index, choice(tokens), choice(reference), by)


def divergences(
    completions: Sequence[Sequence[TokenEvent]],
    reference: int = 0,
    id_spaces: Sequence[str | None] | None = None,
) -> list[Divergence]:
    """Each lane against the reference lane (lane 0 by default), in lane order.

    Args:
        id_spaces: per lane, what its token ids index (a local model's path; None: no ids, e.g. a
            remote lane). Lanes are compared by id only when both share a non-None space; absent:
            all lanes share one model.
    """
    ref = completions[reference]

    def by_text(k: int) -> bool:
        if id_spaces is None:
            return False
        return id_spaces[k] is None or id_spaces[k] != id_spaces[reference]

    return [first_divergence(c, ref, k, reference, by_text=by_text(k)) for k, c in enumerate(completions) if k != reference]
