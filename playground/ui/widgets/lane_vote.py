"""Self-consistency results: the vote histogram, majority and agreement, and the list of samples.

Highlighting a sample in the list posts ``OptionList.OptionHighlighted``; the compare screen then
shows that sample's completion.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from playground.compare.events import Vote
from playground.ui.text_cells import bar, fit


def histogram(vote: Vote, width: int = 40) -> Text:
    """One row per answer (most votes first) with a bar, its count and share; then the summary."""
    out = Text()
    n = vote.n_samples or 1
    answers = list(vote.answers.items())
    if vote.no_answer:
        answers.append(("(no answer)", vote.no_answer))
    label_w = min(16, max((len(a) for a, _ in answers), default=4))
    leaders = set(vote.tied) if vote.tied else {vote.majority}
    for answer, count in answers:
        lead = answer in leaders
        out.append(fit(answer, label_w).ljust(label_w) + " ", "bold" if lead else "")
        out.append(bar(count / n, max(4, width - label_w - 12)), "green" if lead else "dim")
        out.append(f" {count:>2} {count / n:4.0%}\n")
    out.append(verdict(vote), "bold")
    return out


def verdict(vote: Vote) -> str:
    """The summary line: the majority, or a tie (no answer wins a tie, so none is called a majority)."""
    share = f"{vote.agreement:.0%} of {vote.n_samples}"
    if vote.majority is None:
        return f"no answer in {vote.n_samples} samples"
    if vote.tied:
        return f"tie: {len(vote.tied)}-way between {', '.join(map(repr, vote.tied))} · {share} each"
    return f"majority {vote.majority!r} · agreement {share}"


class VotePanel(Vertical):
    """The vote over N samples and one row per sample (its answer)."""

    DEFAULT_CSS = """
    VotePanel { height: 1fr; }
    VotePanel > #vote-histogram { height: auto; max-height: 9; padding: 0 1; }
    VotePanel > OptionList { height: 1fr; border: none; background: $surface; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vote: Vote | None = None
        self.extractor_name = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="vote-histogram")
        yield OptionList(id="samples")

    def start(self, n: int, extractor_name: str) -> None:
        """N samples are running: list them (answers come with the vote)."""
        self.vote = None
        self.extractor_name = extractor_name
        self.query_one("#vote-histogram", Static).update(f"{n} samples running · extractor: {escape(extractor_name)}…")
        self.set_rows([f"sample {k + 1}  …" for k in range(n)], keep=False)  # a new run starts at sample 1

    def set_rows(self, rows: Sequence[str], keep: bool = True) -> None:
        """Replace the rows; ``keep`` keeps the highlighted row (the answers of the same samples)."""
        options = self.query_one(OptionList)
        highlighted = options.highlighted if keep else None
        options.clear_options()
        options.add_options([Option(Text(row), id=f"s{k}") for k, row in enumerate(rows)])
        if rows:
            options.highlighted = highlighted if highlighted is not None and highlighted < len(rows) else 0

    def show_vote(self, vote: Vote, texts: Sequence[str]) -> None:
        """The result: histogram and each sample's answer next to the start of its text."""
        self.vote = vote
        width = max(24, (self.size.width or 60) - 2)
        head = Text(f"extractor: {self.extractor_name}\n", "dim")
        self.query_one("#vote-histogram", Static).update(head + histogram(vote, width))
        rows = []
        for k, (answer, text) in enumerate(zip(vote.by_sample, texts)):
            shown = "—" if answer is None else answer
            rows.append(f"{k + 1:>2}. {fit(shown, 12):<12} {fit(' '.join(text.split()), max(8, width - 18))}")
        self.set_rows(rows)
