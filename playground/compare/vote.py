"""Self-consistency voting: count the extracted answers of N samples."""

from __future__ import annotations

from collections.abc import Sequence

from playground.compare.events import Vote


def tally(by_sample: Sequence[str | None]) -> Vote:
    """The vote over each sample's answer (None: no answer found).

    Answers are counted as exact strings (extractors normalise what should vote together). Ties
    go to the answer seen first, and are reported in ``Vote.tied``.
    """
    counts: dict[str, int] = {}
    for answer in by_sample:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    # dicts keep first-seen order and sorted() is stable: most votes first, then first seen
    ordered = dict(sorted(counts.items(), key=lambda item: -item[1]))
    majority = next(iter(ordered), None)
    top = ordered[majority] if majority is not None else 0
    tied = tuple(a for a, c in ordered.items() if c == top) if majority is not None else ()
    return Vote(
        answers=ordered,
        majority=majority,
        agreement=(top / len(by_sample)) if by_sample else 0.0,
        by_sample=tuple(by_sample),
        tied=tied if len(tied) > 1 else (),
    )
