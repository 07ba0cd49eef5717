"""The token inspector: everything known about one generated token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

from playground.backends.base import Capabilities
from playground.events import Alternative, TokenEvent
from playground.params import SamplerParams
from playground.sampling import Reshaped, StageCut, is_classic, reshape
from playground.ui.text_cells import bar, fit, percent, token_label
from playground.ui.widgets.distribution import CUT_NAMES, removed_percent

NOT_AVAILABLE = "not available from this backend"


def is_chosen(alt: Alternative, event: TokenEvent) -> bool:
    """Whether ``alt`` is the generated token: by id, or by text where the backend gives no ids."""
    return alt.id == event.id if event.id >= 0 else alt.text == event.text


def stage_count(stage: StageCut) -> str:
    """A stage's survivors: exact count, a range, or a lower bound marked with "≥"."""
    if stage.exact:
        return str(stage.n_min)
    if stage.n_max >= stage.n_min and stage.n_max < 10**7 and stage.n_max != stage.n_min:
        return f"{stage.n_min}–{stage.n_max}"
    if stage.n_max == stage.n_min and stage.name not in ("top-k", "top-p", "min-p"):
        return f"≈{stage.n_min}"  # the newer stages' estimates (playground.sampling._reshape_general)
    return f"≥{stage.n_min}"


def constraint_line(event: TokenEvent) -> str | None:
    """What the constraint did at this token: "grammar removed 62% of the mass; the model wanted
    ' Sure'" (from ``constraint_mass_removed`` and ``unconstrained_text``); None without one."""
    if event.constraint_mass_removed is None:
        return None
    removed = f"grammar removed {removed_percent(event.constraint_mass_removed)} of the mass"
    if event.unconstrained_id is None:
        return removed + "; the model's own pick agreed"
    wanted = event.unconstrained_text
    return f"{removed}; the model wanted {token_label(wanted) if wanted is not None else f'id {event.unconstrained_id}'}"


#: stages that change logits without cutting (shown by name in the survivors' chain)
_NON_CUTTING = {"logit_bias": "bias", "penalties": "penalties", "dry": "dry", "temperature": "T"}


def survivor_parts(shaped: Reshaped, params: SamplerParams | None) -> list[str]:
    """Each acting stage in chain order, with the survivors of those that cut.

    The original five stages in their order show only the cuts (``top-k 40 → top-p 12``); any
    other chain also names the stages that only move logits, so that its order can be read.
    """
    cuts = [s for s in shaped.stages if s.active]
    if params is None or is_classic(params):
        return [f"{s.name} {stage_count(s)}" for s in cuts] or ["no truncation"]
    by_name = {s.name: s for s in cuts}
    parts = []
    for name in params.active_stages:
        if name in _NON_CUTTING:
            dyn = name == "temperature" and params.dynatemp_range > 0.0 and not params.mirostat
            parts.append(_NON_CUTTING[name] + ("±" if dyn else ""))
            continue
        stage = by_name.pop(CUT_NAMES.get(name, name), None)
        if stage is not None:
            parts.append(f"{stage.name} {stage_count(stage)}")
    parts += [f"{s.name} {stage_count(s)}" for s in by_name.values()]  # any cut not named above
    return parts or ["no truncation"]


class TokenInspector(Widget):
    """Shows a ``TokenEvent``: raw and sampled probability, rank, entropy, stage survivors, alternatives.

    Stage survivors are recomputed from the token's raw distribution head under the settings the
    run used (``playground.sampling.reshape``); "≥"/ranges mark counts the head cannot pin down.
    """

    COMPONENT_CLASSES = {"inspector--label", "inspector--token", "inspector--bar", "inspector--chosen", "inspector--muted"}
    """
    | Class | Description |
    | :- | :- |
    | `inspector--label` | Field names. |
    | `inspector--token` | The token's text. |
    | `inspector--bar` | Probability bars of the alternatives. |
    | `inspector--chosen` | The alternative that was sampled. |
    | `inspector--muted` | Hints and unavailable values. |
    """

    DEFAULT_CSS = """
    TokenInspector { height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    TokenInspector > .inspector--label { color: $text-muted; }
    TokenInspector > .inspector--token { color: $accent; text-style: bold; }
    TokenInspector > .inspector--bar { color: $bar-raw; }
    TokenInspector > .inspector--chosen { color: $bar-final; text-style: bold; }
    TokenInspector > .inspector--muted { color: $text-disabled; text-style: italic; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.event: TokenEvent | None = None
        self.count = 0
        self.capabilities: Capabilities | None = None
        self.reshaped: Reshaped | None = None
        self.params: SamplerParams | None = None
        self.resolve: Callable[[SamplerParams], dict[str, Any]] | None = None
        """Params -> extra ``reshape`` arguments (``logit_bias`` resolved to ids, ``dry_breakers``);
        see ``DistributionView.resolve``."""
        self.hint = "Generate (ctrl+g), then select a token (click, or ← → in the completion)."

    def show(
        self,
        event: TokenEvent | None,
        params: SamplerParams | None = None,
        history: Sequence[int] = (),
        count: int = 0,
        capabilities: Capabilities | None = None,
    ) -> None:
        """Inspect ``event`` (None clears); ``params``/``history`` are the run's, for stage counts;
        ``capabilities`` (of a live backend) say how many alternatives it could give at most."""
        self.event = event
        self.count = count
        self.capabilities = capabilities
        self.params = params
        shown = event is not None and event.dist is not None and params is not None
        extra = self.resolve(params) if shown and self.resolve is not None else {}
        self.reshaped = reshape(event.dist, params, history, **extra) if shown else None
        self.refresh()

    def token_title(self) -> str:
        """The token's own piece, and the text it completes when that differs (multi-byte characters)."""
        event = self.event
        assert event is not None
        piece = next((alt.text for alt in event.top if alt.id == event.id), None) if event.id >= 0 else None
        if piece is None or piece == event.text:
            return token_label(event.text)
        if not event.text:
            return f"{token_label(piece)} · part of a character"
        return f"{token_label(piece)} → {token_label(event.text)}"

    def raw_rank(self) -> int | None:
        """1-based rank of the token in the raw distribution, None if outside the known head."""
        event = self.event
        if event is None:
            return None
        if event.id < 0:  # no token ids from this backend: find it among the alternatives by text
            return next((k + 1 for k, alt in enumerate(event.top) if is_chosen(alt, event)), None)
        ids = event.dist.ids if event.dist is not None else np.array([a.id for a in event.top])
        hits = np.flatnonzero(np.asarray(ids) == event.id)
        return int(hits[0]) + 1 if hits.size else None

    def render(self) -> Text:
        style = self.get_component_rich_style
        event = self.event
        if event is None:
            return Text(self.hint, style("inspector--muted"))
        width = max(20, self.size.width)
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(fit(self.token_title(), width - 24), style("inspector--token"))
        out.append((f" id {event.id}" if event.id >= 0 else " id n/a").rjust(10), style("inspector--label"))
        out.append(f"  #{event.i + 1}/{self.count}\n" if self.count else f"  #{event.i + 1}\n", style("inspector--label"))

        def line(label: str, value: str, muted: bool = False) -> None:
            out.append(label.ljust(11), style("inspector--label"))
            out.append(value + "\n", style("inspector--muted") if muted else "")

        rank = self.raw_rank()
        head = event.dist.ids.size if event.dist is not None else len(event.top)
        rank_text = f"rank {rank}" if rank else (f"rank > {head}" if head else "")
        line("raw p", f"{percent(event.prob):>8}   {rank_text}" if event.prob is not None else NOT_AVAILABLE, event.prob is None)
        if event.p_sampled is None:
            line("sampled p", NOT_AVAILABLE, True)
        else:
            line("sampled p", f"{percent(event.p_sampled):>8}   after sampling")
        line("entropy", f"{event.entropy:8.3f} nats" if event.entropy is not None else NOT_AVAILABLE, event.entropy is None)
        constrained = constraint_line(event)
        if constrained is not None:
            line("constraint", constrained)
        extra = self._stages(line) + (constrained is not None)
        self._alternatives(out, width, extra)
        return out

    def _stages(self, line) -> int:
        """The survivors' lines; returns how many rows they took beyond one."""
        event, shaped = self.event, self.reshaped
        assert event is not None
        if shaped is None:
            final = f"{event.n_candidates} candidates" if event.n_candidates is not None else NOT_AVAILABLE
            line("survivors", final, event.n_candidates is None)
            return 0
        if shaped.greedy:
            before = [_NON_CUTTING[s] for s in (self.params.active_stages if self.params else ()) if s in _NON_CUTTING]
            line("survivors", " → ".join([*before, "greedy: the most likely token"]))
            return 0
        parts = survivor_parts(shaped, self.params)
        width = max(20, self.size.width) - 11
        rows = [""]
        for part in parts:  # wrap between stages, never inside one
            joined = f"{rows[-1]} → {part}" if rows[-1] else part
            if rows[-1] and len(joined) > width:
                rows[-1] += " →"
                rows.append(part)
            else:
                rows[-1] = joined
        for k, row in enumerate(rows):
            line("survivors" if k == 0 else "", row)
        if event.n_candidates is not None:
            line("", f"{event.n_candidates} in the final draw (engine)")
        return len(rows) - 1

    def _alternatives(self, out: Text, width: int, extra_rows: int = 0) -> None:
        style = self.get_component_rich_style
        event = self.event
        assert event is not None
        most = self.capabilities.max_alternatives if self.capabilities is not None else None
        if not event.top:
            out.append("alternatives: " + NOT_AVAILABLE, style("inspector--muted"))
            return
        out.append("top alternatives (raw, T = 1)\n", style("inspector--label"))
        limited = most is not None and most < 100
        if limited:
            out.append(f"at most {most} from this backend\n", style("inspector--muted"))
        room = max(0, self.size.height - 6 - limited - extra_rows) if self.size.height else len(event.top)
        label_w = min(18, max(8, width // 3))
        bar_w = max(4, width - label_w - 10)
        for alt in event.top[: max(1, room)]:
            chosen = is_chosen(alt, event)
            st = style("inspector--chosen") if chosen else style("inspector--bar")
            p = float(np.exp(alt.logprob))
            out.append(("▶" if chosen else " ") + fit(token_label(alt.text), label_w - 1), st if chosen else "")
            out.append(" " + bar(p, bar_w), st)
            out.append(f"{percent(p):>8}\n", st if chosen else "")
