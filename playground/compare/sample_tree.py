"""N samples of one prompt as a prefix tree: each edge a token, with how many samples took it.

Pure: built from the samples' token events and how each ended (``build_tree``); drawing them is
``compare/tree_job.py``'s job. Every node's ``count`` is the number of samples whose completion
starts with the path to it. A sample that ends adds an *end leaf* under its last token (``id``
None, ``end`` = its finish reason: "stop" for an end-of-generation token or a stop string,
"length" at max tokens), so every inner node's count is the sum of its children's, and at every
depth the counts of the tokens there plus those of the end leaves above add up to N.

``logprob`` is the raw log-probability (T = 1) of the edge's token after its path: the same for
every sample through it (they share the prompt and the path, and lanes compute the rows a single
run computes). Children are ordered most common first (then most likely, then by id), so the first
path down is the most common one. The greedy path is the raw most likely token at each node (the
``top[0]`` of the events there), followed as far as some sample went; it is what ``--temp 0``
takes when the repeat penalty is off (with a penalty, greedy decoding can leave it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from playground.events import TokenEvent, round_logprob


@dataclass
class TreeNode:
    """One edge of the tree (the root has no token)."""

    id: int | None
    """The token id; None for the root and for end leaves."""
    text: str
    """The token's text in the completion ("" while a multi-byte character is incomplete)."""
    count: int = 0
    """Samples whose completion runs through this edge."""
    logprob: float | None = None
    """Raw log-probability of the token after the path to it (None: root, end leaf, remote)."""
    children: list["TreeNode"] = field(default_factory=list)
    greedy: bool = False
    """On the greedy path (see the module docstring)."""
    end: str | None = None
    """For an end leaf: how those samples ended (a finish reason)."""
    best: int | None = field(default=None, repr=False)
    """The raw most likely next token here (from the children's events), for the greedy path."""

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``id``, ``text``, ``count``, ``logprob``, ``children``; ``greedy`` and
        ``end`` only where they apply."""
        out: dict[str, Any] = {"id": self.id, "text": self.text, "count": self.count,
                               "logprob": round_logprob(self.logprob)}
        if self.greedy:
            out["greedy"] = True
        if self.end is not None:
            out["end"] = self.end
        out["children"] = [child.to_dict() for child in self.children]
        return out


def build_tree(samples: Sequence[Sequence[TokenEvent]], ends: Sequence[str | None]) -> TreeNode:
    """The prefix tree of ``samples`` (each a completion's token events, in order).

    Args:
        samples: one token list per sample.
        ends: each sample's finish reason (None: it has no end, e.g. it failed: "error" is shown).
    """
    if len(samples) != len(ends):
        raise ValueError("one finish reason per sample")
    root = TreeNode(None, "", len(samples))
    index: dict[int, dict[Any, TreeNode]] = {}  # id(node) -> its children by key
    for tokens, end in zip(samples, ends):
        node = root
        for event in tokens:
            if node.best is None and event.top:
                node.best = event.top[0].id
            node = _child(index, node, event.id, lambda e=event: TreeNode(e.id, e.text, 0, e.logprob))
            node.count += 1
        reason = end or "error"
        leaf = _child(index, node, ("end", reason), lambda r=reason: TreeNode(None, "", 0, None, end=r))
        leaf.count += 1
    _order(root)
    _mark_greedy(root)
    return root


def _child(index: dict[int, dict[Any, TreeNode]], node: TreeNode, key: Any, make) -> TreeNode:
    kids = index.setdefault(id(node), {})
    child = kids.get(key)
    if child is None:
        child = kids[key] = make()
        node.children.append(child)
    return child


def _order(root: TreeNode) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        node.children.sort(key=lambda c: (-c.count, c.end is not None,
                                          -(c.logprob if c.logprob is not None else -math.inf), c.id or 0))
        stack.extend(node.children)


def _mark_greedy(root: TreeNode) -> None:
    node = root
    while node.best is not None:
        nxt = next((c for c in node.children if c.id == node.best), None)
        if nxt is None:
            return  # no sample took the greedy token here: the path leaves the tree
        nxt.greedy = True
        node = nxt


def depth_totals(root: TreeNode) -> list[int]:
    """For each depth d >= 1: the counts of the tokens at depth d plus the end leaves above or at
    it (samples already ended). Each total is N for a consistent tree."""
    totals: list[int] = []
    level, ended = [root], 0
    while True:
        nxt = [c for node in level for c in node.children]
        ended += sum(c.count for c in nxt if c.end is not None)
        tokens = [c for c in nxt if c.end is None]
        if not tokens:
            return totals
        totals.append(ended + sum(c.count for c in tokens))
        level = tokens


def paths(root: TreeNode) -> list[tuple[list[TreeNode], TreeNode]]:
    """Every root-to-leaf path (the nodes below the root, and the end leaf), most common first."""
    out: list[tuple[list[TreeNode], TreeNode]] = []

    def walk(node: TreeNode, path: list[TreeNode]) -> None:
        for child in node.children:
            if child.end is not None:
                out.append((path, child))
            else:
                walk(child, [*path, child])

    walk(root, [])
    return out
