"""Human ratings of eval cells (the human gold standard), kept in the results file beside the cells.

A results file (``evaluate.results``) gains one top-level table::

    "ratings": {"<variant>#<case index>": {"verdict": "pass" | "fail", "score": 1-5, "note": ".."}}

each field omitted when unset, a cell with none of them omitted. Ratings sit beside the cells,
not inside them, so every cell stays exactly its ``--json`` line and a tool that reads cells sees
no difference. Each variant's summary row gets ``"human"`` (``human_summary``): how many cells
are rated, the human pass rate, the mean score, and how often the human verdict agrees with the
automatic pass/fail. ``save_ratings`` reads the file again and writes it back through
``results.write_results`` (atomic), so cells written meanwhile are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.evaluate.errors import SuiteError
from playground.evaluate.results import load_results, write_results

VERDICTS = ("pass", "fail")
SCORES = range(1, 6)

CellKey = tuple[str, int]
"""A cell: (variant name, case index)."""


@dataclass(frozen=True)
class Rating:
    """One person's judgement of one cell."""

    verdict: str | None = None
    """"pass", "fail", or None (not given)."""
    score: int | None = None
    """1 (worst) to 5 (best), or None."""
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in (None, *VERDICTS):
            raise ValueError(f"verdict must be 'pass' or 'fail', not {self.verdict!r}")
        if self.score is not None and (isinstance(self.score, bool) or self.score not in SCORES):
            raise ValueError(f"score must be 1 to 5, not {self.score!r}")
        if not isinstance(self.note, str):
            raise ValueError("note must be a string")

    @property
    def empty(self) -> bool:
        return self.verdict is None and self.score is None and not self.note

    def to_dict(self) -> dict[str, Any]:
        """The stored form, defaults omitted."""
        out: dict[str, Any] = {}
        if self.verdict is not None:
            out["verdict"] = self.verdict
        if self.score is not None:
            out["score"] = self.score
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Rating:
        unknown = set(raw) - {"verdict", "score", "note"}
        if unknown:
            raise ValueError(f"'{sorted(unknown)[0]}' is not a rating field")
        return cls(raw.get("verdict"), raw.get("score"), raw.get("note", ""))


def key_text(key: CellKey) -> str:
    """``"plain#3"``: the stored key of a cell."""
    return f"{key[0]}#{key[1]}"


def parse_key(text: str) -> CellKey:
    """A stored key back (the last ``#`` splits it, so a variant name may contain one)."""
    variant, sep, index = text.rpartition("#")
    if not sep or not index.isdigit():
        raise ValueError(f"{text!r} is not 'VARIANT#CASE'")
    return variant, int(index)


def cell_key(cell: Mapping[str, Any]) -> CellKey:
    return str(cell["variant"]), int(cell["case"])


def ratings_of(document: Mapping[str, Any], name: str = "results file") -> dict[CellKey, Rating]:
    """The ratings a results document holds (none: an empty dict); SuiteError for a malformed one."""
    table = document.get("ratings") or {}
    if not isinstance(table, dict):
        raise SuiteError(f"{name}: 'ratings' must be a table of 'VARIANT#CASE' keys")
    out: dict[CellKey, Rating] = {}
    for text, raw in table.items():
        try:
            if not isinstance(raw, dict):
                raise ValueError("a rating must be a table")
            out[parse_key(text)] = Rating.from_dict(raw)
        except ValueError as exc:
            raise SuiteError(f"{name}: rating {text!r}: {exc}") from None
    return out


def ratings_table(ratings: Mapping[CellKey, Rating]) -> dict[str, dict[str, Any]]:
    """The stored ``"ratings"`` table: empty ratings left out, keys in (variant, case) order."""
    return {key_text(k): r.to_dict() for k, r in sorted(ratings.items()) if not r.empty}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def human_summary(cells: Iterable[Mapping[str, Any]], ratings: Mapping[CellKey, Rating]) -> dict[str, dict[str, Any]]:
    """Per variant (the cells' first-seen order), over the rated cells of the results:

    - ``n_rated``: cells with any rating; ``n_verdict``: with a pass/fail verdict;
    - ``n_pass``: human "pass" verdicts; ``pass_rate``: ``n_pass / n_verdict`` (None: no verdict yet);
    - ``n_score``, ``mean_score``: cells with a 1-5 score and their mean;
    - ``n_agree_checked``: cells with a human verdict and an automatic pass/fail (``"pass"`` not
      null); ``n_agree``: those where the two say the same; ``agreement``: ``n_agree / n_agree_checked``.

    Ratings of cells that are not in ``cells`` (a variant or case since removed) are not counted.
    """
    out: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[tuple[Mapping[str, Any], Rating | None]]] = {}
    for cell in cells:
        groups.setdefault(str(cell["variant"]), []).append((cell, ratings.get(cell_key(cell))))
    for name, group in groups.items():
        rated = [(c, r) for c, r in group if r is not None and not r.empty]
        verdicts = [r.verdict for _, r in rated if r.verdict is not None]
        scores = [r.score for _, r in rated if r.score is not None]
        both = [(c["pass"], r.verdict == "pass") for c, r in rated if r.verdict is not None and c.get("pass") is not None]
        agree = sum(1 for auto, human in both if bool(auto) == human)
        out[name] = {
            "n_rated": len(rated),
            "n_verdict": len(verdicts),
            "n_pass": verdicts.count("pass"),
            "pass_rate": _rate(verdicts.count("pass"), len(verdicts)),
            "n_score": len(scores),
            "mean_score": math.fsum(scores) / len(scores) if scores else None,
            "n_agree_checked": len(both),
            "n_agree": agree,
            "agreement": _rate(agree, len(both)),
        }
    return out


def with_ratings(document: Mapping[str, Any], ratings: Mapping[CellKey, Rating]) -> dict[str, Any]:
    """``document`` with ``ratings`` as its ratings table and each summary row's ``"human"`` filled
    (a document without a summary yet, a run still going, keeps ``"summary": null``)."""
    out = dict(document)
    out["ratings"] = ratings_table(ratings)
    summary = document.get("summary")
    if isinstance(summary, dict):
        human = human_summary(document["cells"], ratings)
        out["summary"] = {name: {**row, "human": human.get(name)} if isinstance(row, dict) else row
                          for name, row in summary.items()}
    return out


def save_ratings(path: str | Path, ratings: Mapping[CellKey, Rating]) -> dict[str, Any]:
    """Write ``ratings`` into the results file at ``path`` (read again first, so its cells stay as they
    are on disk) atomically; the document written is returned. SuiteError if it is no results file."""
    document = with_ratings(load_results(path), ratings)
    write_results(path, document)
    return document


def kept_ratings(previous: Mapping[str, Any], cells: Iterable[Mapping[str, Any]]) -> dict[CellKey, Rating]:
    """The ratings of ``previous`` (an older results document) that still apply to ``cells`` (a
    resumed or repeated run): a rating judged one output, so it is kept where the cell's input and
    output are unchanged."""
    old = {cell_key(c): c for c in previous.get("cells") or () if isinstance(c, dict)}
    ratings = ratings_of(previous)
    kept: dict[CellKey, Rating] = {}
    for cell in cells:
        key = cell_key(cell)
        before = old.get(key)
        if key in ratings and before is not None and (before.get("input"), before.get("output")) == \
                (cell.get("input"), cell.get("output")):
            kept[key] = ratings[key]
    return kept
