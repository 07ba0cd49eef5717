"""Branches of one completion as a tree (pure: no Textual, no model).

The root is a run; a branch is a run that took the first ``at`` tokens of its parent and then a
token of its own at position ``at`` (an alternative, typed text, or one more step). Siblings at a
branch point are the parent (which took its own token there) and every child branching at that
same position, in the order they were made; moving between them is what "the other path" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Branch(Generic[T]):
    """One run in the tree: its payload (e.g. a run record), its parent and where it branched."""

    payload: T
    parent: int | None = None
    """Index of the parent branch; None for the root."""
    at: int = 0
    """The completion position where this branch's own tokens begin (the parent's tokens before it are shared)."""
    label: str = ""
    """How it branched, e.g. "' Paris' (12.5%)" or "step"."""


@dataclass
class BranchTree(Generic[T]):
    """Every branch made from one root run, and which one is shown."""

    branches: list[Branch[T]] = field(default_factory=list)
    current: int = 0
    point: int | None = None
    """The branch point last moved through: from a parent, ``[`` / ``]`` go back into that group."""

    def reset(self, root: T) -> None:
        """A new root run: the old tree is gone."""
        self.branches = [Branch(root)]
        self.current = 0
        self.point = None

    def __len__(self) -> int:
        return len(self.branches)

    @property
    def shown(self) -> Branch[T] | None:
        return self.branches[self.current] if self.branches else None

    def add(self, parent: int, at: int, payload: T, label: str = "") -> int:
        """A new branch of ``parent`` at position ``at``; it becomes the one shown."""
        if not 0 <= parent < len(self.branches):
            raise IndexError(f"no branch {parent}")
        if at < 0:
            raise ValueError("a branch point is a completion position (>= 0)")
        self.branches.append(Branch(payload, parent, at, label))
        self.current = len(self.branches) - 1
        self.point = at
        return self.current

    def replace_payload(self, index: int, payload: T) -> None:
        self.branches[index].payload = payload

    def children(self, index: int) -> list[int]:
        return [k for k, b in enumerate(self.branches) if b.parent == index]

    def siblings(self, index: int | None = None) -> list[int]:
        """The branches that share a prefix and differ at one branch point, the parent first.

        The point is ``index``'s own (where it left its parent), unless ``index`` is the parent of
        the group last moved through (``point``): then that group, so ``[`` / ``]`` go back into it.
        """
        index = self.current if index is None else index
        branch = self.branches[index]
        own_point = branch.at if branch.parent is not None else None
        if self.point is not None and self.point != own_point:
            kids = [k for k in self.children(index) if self.branches[k].at == self.point]
            if kids:
                return [index, *kids]
        if branch.parent is None:
            return [index]
        same_point = [k for k in self.children(branch.parent) if self.branches[k].at == branch.at]
        return [branch.parent, *same_point]

    def branch_points(self, index: int | None = None) -> list[int]:
        """Positions of ``index``'s completion where another branch leaves it (its own start too)."""
        index = self.current if index is None else index
        points = {self.branches[k].at for k in self.children(index)}
        branch = self.branches[index]
        if branch.parent is not None:
            points.add(branch.at)
        return sorted(points)

    def depth(self, index: int | None = None) -> int:
        index = self.current if index is None else index
        n = 0
        while self.branches[index].parent is not None:
            index = self.branches[index].parent  # type: ignore[assignment]
            n += 1
        return n

    # --- moving ----------------------------------------------------------------------------
    def move_sibling(self, delta: int) -> int:
        """Show the previous / next sibling at the current branch point (wrapping)."""
        group = self.siblings()
        point = self.branches[group[-1]].at if len(group) > 1 else self.point
        self.current = group[(group.index(self.current) + delta) % len(group)]
        self.point = point
        return self.current

    def up(self) -> int:
        """Show the parent (the root stays)."""
        branch = self.branches[self.current]
        if branch.parent is not None:
            self.point, self.current = branch.at, branch.parent
        return self.current

    def down(self) -> int:
        """Show the newest child (a leaf stays)."""
        kids = self.children(self.current)
        if kids:
            self.current = kids[-1]
            self.point = self.branches[self.current].at
        return self.current
