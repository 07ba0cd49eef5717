"""Run metrics: time to first token, prompt and decode speed, tokens, perplexity, entropy, gaps."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from playground.ui.run_record import RunRecord

FROZEN = "—"


class MetricsPanel(Widget):
    """A line of figures, and a sparkline of the gaps between tokens below it.

    With ``freeze_timings`` (snapshot tests) wall-clock figures show as "—" and the sparkline stays
    empty, so screenshots do not depend on the machine's speed.
    """

    DEFAULT_CSS = """
    MetricsPanel { height: 2; layout: vertical; }
    MetricsPanel > #figures { width: 1fr; height: 1; }
    MetricsPanel > Horizontal { height: 1; }
    MetricsPanel Label { width: auto; color: $text-muted; }
    MetricsPanel Sparkline { width: 1fr; height: 1; margin-left: 1; }
    MetricsPanel Sparkline > .sparkline--max-color { color: $prob-low; }
    MetricsPanel Sparkline > .sparkline--min-color { color: $prob-high; }
    """

    def __init__(self, *, freeze_timings: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.freeze_timings = freeze_timings
        self.figures: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="figures")
        with Horizontal():
            yield Label("gaps between tokens")
            gaps = Sparkline([], id="gaps")
            gaps.tooltip = "time between consecutive tokens (taller = slower)"
            yield gaps

    def on_mount(self) -> None:
        self.update(RunRecord())

    def update(self, record: RunRecord) -> None:
        """Redraw from ``record`` (called once per frame while a run streams, and at its end)."""
        done = record.done
        timing = self._timing
        rate = done.decode_tok_s if done is not None else record.live_rate()
        ppl, ent = record.perplexity(), record.mean_entropy()
        self.figures = {
            "TTFT": timing(f"{done.ttft_s * 1000:.0f} ms" if done and done.ttft_s is not None else None),
            "prompt": timing(_prompt_figure(record)),
            "decode": timing(f"{rate:.1f} tok/s" if rate else None),
            "tokens": str(len(record.tokens)),
            "ppl": f"{ppl:.2f}" if ppl is not None else FROZEN,
            "H̄": f"{ent:.2f} nats" if ent is not None else FROZEN,
        }
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, (name, value) in enumerate(self.figures.items()):
            text.append(("   " if n else "") + name + " ", "dim")
            text.append(value, "bold")
        self.query_one("#figures", Static).update(text, layout=False)  # a fixed-size line: no relayout
        if not self.freeze_timings:
            self.query_one("#gaps", Sparkline).data = [g * 1000 for g in record.gaps()] or []

    def _timing(self, value: str | None) -> str:
        return FROZEN if self.freeze_timings or value is None else value


def _prompt_figure(record: RunRecord) -> str | None:
    """Prompt rate; "cached" when a local run evaluated no prompt token (the same prompt as the
    last run: its kept logits were sampled again, exactly as a cold run's)."""
    done = record.done
    if done is None:
        return None
    local = record.start is not None and record.start.backend == "llama.cpp"
    if local and done.prompt_tokens_evaluated == 0 and done.ttft_s is not None:
        return "cached"
    return f"{done.prompt_tok_s:.0f} tok/s" if done.prompt_tok_s else None
