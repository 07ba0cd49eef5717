"""The next-token distribution at one position: raw (T = 1) beside the reshaped one, cut-offs drawn.

Setting ``params`` (the current sliders) recomputes with ``playground.sampling.reshape`` from the
stored head and redraws; the model is not run again.

Under a constraint (the head carries ``RawDistribution.allowed``) the engine samples grammar first:
the chain sees only the allowed tokens. The view reshapes exactly that (``allowed_only``) and
draws the forbidden tokens of the head struck through at their raw rank, with no sampled bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

from playground.events import RawDistribution
from playground.params import SamplerParams
from playground.sampling import Reshaped, is_classic, reshape
from playground.ui.text_cells import bar, fit, percent, token_label



def removed_percent(mass: float) -> str:
    """The mass a constraint removed, as a percentage that says "not all" when it is not all."""
    text = percent(mass)
    return ">99.9%" if text == "100.0%" and mass < 1.0 else text


def cut_marks(shaped: Reshaped) -> dict[int, list[str]]:
    """Row index after which a cut line is drawn -> the names of the stages cutting there."""
    marks: dict[int, list[str]] = {}
    before = shaped.n_vocab
    for stage in shaped.stages:
        # survivor counts are cumulative: a stage cuts only where it keeps fewer than the one before
        if stage.active and not shaped.greedy and stage.n_min < min(before, shaped.ids.size):
            marks.setdefault(stage.n_min, []).append(stage.name)
        before = min(before, stage.n_min)
    if shaped.greedy:
        marks.setdefault(1, []).append("greedy")
    return marks


#: a ``SamplerParams.samplers`` / ``active_stages`` name -> the name of its cut in ``Reshaped.stages``
CUT_NAMES = {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p", "typ_p": "typical", "top_n_sigma": "top-n-sigma",
             "xtc": "xtc", "mirostat": "mirostat", "mirostat_v2": "mirostat", "greedy": "greedy"}


def stage_label(name: str, p: SamplerParams) -> str:
    """One acting stage with its setting, short: ``k=40``, ``xtc=0.5@0.1``, ``T=0.8±0.3``."""
    if name == "logit_bias":
        return f"bias×{len(p.logit_bias)}"
    if name == "penalties":
        parts = [f"rp={p.repeat_penalty:g}" if p.repeat_penalty != 1.0 else "",
                 f"pres={p.presence_penalty:g}" if p.presence_penalty else "",
                 f"freq={p.frequency_penalty:g}" if p.frequency_penalty else ""]
        return " ".join(part for part in parts if part)
    if name in ("mirostat", "mirostat_v2"):
        return f"mirostat{'' if name == 'mirostat' else ' 2'} τ={p.mirostat_tau:g} η={p.mirostat_eta:g}"
    if name == "temperature":
        dyn = p.dynatemp_range > 0.0 and not p.mirostat
        return f"T={p.temperature:g}" + (f"±{p.dynatemp_range:g}" if dyn else "")
    return {
        "dry": f"dry={p.dry_multiplier:g}", "top_n_sigma": f"nσ={p.top_n_sigma:g}", "top_k": f"k={p.top_k}",
        "typ_p": f"typ={p.typical_p:g}", "top_p": f"p={p.top_p:g}", "min_p": f"min-p={p.min_p:g}",
        "xtc": f"xtc={p.xtc_probability:g}@{p.xtc_threshold:g}", "greedy": "greedy",
    }.get(name, name)


def params_label(p: SamplerParams, shaped: Reshaped | None = None) -> str:
    """The settings as the view's legend; "≈" follows a stage whose cut ``shaped`` cannot pin down.

    The original five stages in llama.cpp's order keep their compact form (``T=0.8 k=40 p=off
    min-p=0.05``); anything else lists the acting stages in the configured order, joined by "→".
    """
    def approx(name: str) -> str:
        stage = shaped.stage(CUT_NAMES.get(name, "")) if shaped is not None else None
        return "≈" if stage is not None and stage.active and not stage.exact else ""

    if not is_classic(p):
        labels = [stage_label(s, p) + approx(s) for s in p.active_stages if s != "dist"]
        return " → ".join(label for label in labels if label)
    if p.is_greedy:
        return "greedy" + (f" rp={p.repeat_penalty:g}" if p.repeat_penalty != 1.0 else "")
    parts = [f"T={p.temperature:g}", f"k={p.top_k}{approx('top_k')}" if p.top_k else "k=off",
             f"p={p.top_p:g}{approx('top_p')}" if p.top_p < 1 else "p=off",
             f"min-p={p.min_p:g}{approx('min_p')}" if p.min_p else "min-p=off"]
    if p.repeat_penalty != 1.0:
        parts.append(f"rp={p.repeat_penalty:g}")
    return " ".join(parts)


class DistributionView(Widget):
    """Bar chart of one position's distribution under the current sampler settings."""

    COMPONENT_CLASSES = {
        "distribution--header", "distribution--raw", "distribution--final", "distribution--cut",
        "distribution--chosen", "distribution--muted", "distribution--approx", "distribution--forbidden",
    }
    """
    | Class | Description |
    | :- | :- |
    | `distribution--header` | Column titles. |
    | `distribution--raw` | Raw (T = 1) bars. |
    | `distribution--final` | Bars after the sampler chain. |
    | `distribution--cut` | Cut-off lines and cut tokens. |
    | `distribution--chosen` | The token that was sampled at this position. |
    | `distribution--muted` | Hints. |
    | `distribution--approx` | The "≈" marker of an inexact reshape. |
    | `distribution--forbidden` | Tokens the constraint forbade at this position (struck through). |
    """

    DEFAULT_CSS = """
    DistributionView { height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: clip; }
    DistributionView > .distribution--header { color: $text-muted; text-style: bold; }
    DistributionView > .distribution--raw { color: $bar-raw; }
    DistributionView > .distribution--final { color: $bar-final; }
    DistributionView > .distribution--cut { color: $cut-mark; }
    DistributionView > .distribution--chosen { color: $accent; text-style: bold; }
    DistributionView > .distribution--muted { color: $text-disabled; text-style: italic; }
    DistributionView > .distribution--approx { color: $warning; text-style: bold; }
    DistributionView > .distribution--forbidden { color: $text-disabled; text-style: strike; }
    """

    def __init__(self, params: SamplerParams, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        self.dist: RawDistribution | None = None
        self.history: Sequence[int] = ()
        self.chosen: int | None = None
        self.position: int | None = None
        self.shaped: Reshaped | None = None
        self.token_text: Callable[[int], str | None] = lambda token: None
        """Token id -> its text (None when unknown: the id is shown)."""
        self.last_redraw_s = 0.0
        """Seconds the last render took (the benchmark reads it)."""
        self.last_reshape_s = 0.0
        """Seconds the last reshape took."""
        self.hint = "The distribution of the selected token's position appears here after a run."
        self.resolve: Callable[[SamplerParams], dict[str, Any]] | None = None
        """Params -> extra ``reshape`` arguments (``logit_bias`` resolved to ids, ``dry_breakers``)
        from the model's tokenizer; without it text biases and DRY breakers are shown as "≈"."""

    def show(self, dist: RawDistribution | None, history: Sequence[int] = (), chosen: int | None = None,
             position: int | None = None) -> None:
        """Show the distribution at a new position (None clears)."""
        self.dist, self.history, self.chosen, self.position = dist, history, chosen, position
        self._reshape()

    def set_params(self, params: SamplerParams) -> None:
        """New slider values: reshape the stored head and redraw (no model call)."""
        self.params = params
        self._reshape()

    def on_mount(self) -> None:
        self.border_subtitle = params_label(self.params)

    def _reshape(self) -> None:
        t0 = time.perf_counter()
        extra = self.resolve(self.params) if self.resolve is not None and self.dist is not None else {}
        # under a constraint the chain draws among the allowed tokens only: reshape exactly those
        source = self.dist.allowed_only() if self.dist is not None and self.dist.allowed is not None else self.dist
        self.shaped = reshape(source, self.params, self.history, **extra) if source is not None else None
        self.last_reshape_s = time.perf_counter() - t0
        self.border_subtitle = params_label(self.params, self.shaped)
        self.refresh()

    def render(self) -> Text:
        t0 = time.perf_counter()
        text = self._draw()
        self.last_redraw_s = time.perf_counter() - t0
        return text

    def _draw(self) -> Text:
        style = self.get_component_rich_style
        shaped = self.shaped
        if self.dist is not None and self.dist.allowed is not None:
            return self._draw_constrained(self.dist, shaped)
        if shaped is None:
            if self.dist is None and self.position is not None:
                return Text("No distribution for this token: " + "not available from this backend",
                            style("distribution--muted"))
            return Text(self.hint, style("distribution--muted"))
        # Drawn for the width there is (rows must never wrap): narrow panes get shorter bars and labels.
        width, height = max(28, self.size.width), max(6, self.size.height)
        label_w = min(18, max(6, width // 5))
        bar_w = max(2, (width - label_w - 4 - 2 * 8 - 2) // 2)
        out = Text(no_wrap=True, overflow="crop")
        approx = "" if shaped.exact else "≈ "
        out.append(fit(f"pos {self.position + 1}" if self.position is not None else "", label_w + 4), style("distribution--header"))
        out.append(fit("raw (T = 1)", bar_w + 8), style("distribution--header"))
        out.append(approx, style("distribution--approx"))
        out.append(fit("after sampling", bar_w + 8 - len(approx)) + "\n", style("distribution--header"))
        marks = cut_marks(shaped)
        scale = max(float(shaped.raw_probs[0]), float(shaped.final_probs.max()), 1e-9)
        rows = height - 3
        shown = 0
        for i in range(shaped.ids.size):
            if shown >= rows:
                break
            if i in marks and i > 0:
                out.append(self._cut_line(marks[i], shaped, i, width) + "\n", style("distribution--cut"))
                shown += 1
                if shown >= rows:
                    break
            token = int(shaped.ids[i])
            raw, final = float(shaped.raw_probs[i]), float(shaped.final_probs[i])
            chosen = token == self.chosen
            label_style = style("distribution--chosen") if chosen else ""
            out.append(f"{i + 1:>3}{'▶' if chosen else ' '}", label_style)
            text = self.token_text(token)  # None: the text is not known (another model's vocabulary)
            out.append(fit(token_label(text) if text is not None else f"id {token}", label_w), label_style)
            out.append(bar(raw / scale, bar_w), style("distribution--raw"))
            out.append(f"{percent(raw):>8}", style("distribution--raw"))
            if final > 0:
                out.append(" " + bar(final / scale, bar_w), style("distribution--final"))
                out.append(f"{percent(final):>8}\n", style("distribution--final"))
            else:
                out.append(" " + fit("cut", bar_w + 8, align="right") + "\n", style("distribution--cut"))
            shown += 1
        out.append(self._footer(shaped), style("distribution--muted"))
        return out

    def _cut_line(self, names: list[str], shaped: Reshaped, i: int, width: int) -> str:
        stage = shaped.stage(names[-1])
        exact = stage is None or stage.exact
        mass = f" · {percent(stage.mass_min)} of raw mass" if stage is not None and exact else ""
        label = f" {'' if exact else '≈ '}{' + '.join(names)} cut · {i} kept{mass} "
        side = max(2, (width - len(label)) // 2)
        return ("┄" * side + label + "┄" * side)[:width]

    def _footer(self, shaped: Reshaped) -> str:
        n = shaped.n_final
        final = "1 candidate" if shaped.greedy else f"{'≥' if not shaped.exact else ''}{n} candidates"
        tail = max(0.0, 1.0 - float(shaped.raw_probs.sum()))
        parts = [final, f"head {shaped.ids.size} of {shaped.n_vocab}", f"rest {percent(tail)} raw"]
        if not shaped.exact:
            parts.append("≈ approximate: the head is too short to be exact")
        return " · ".join(parts)

    # --- under a constraint --------------------------------------------------------------------
    #: consecutive forbidden tokens drawn one per row; more are summed up in one row
    FORBIDDEN_RUN = 3

    def _draw_constrained(self, dist: RawDistribution, shaped: Reshaped | None) -> Text:
        """The allowed tokens as the chain saw them (``shaped``), the head's forbidden ones struck
        through between them at their raw rank; raw bars are the model's own (T = 1)."""
        style = self.get_component_rich_style
        width, height = max(28, self.size.width), max(6, self.size.height)
        label_w = min(18, max(6, width // 5))
        bar_w = max(2, (width - label_w - 4 - 2 * 8 - 2) // 2)
        out = Text(no_wrap=True, overflow="crop")
        approx = "" if shaped is None or shaped.exact else "≈ "
        out.append(fit(f"pos {self.position + 1}" if self.position is not None else "", label_w + 4), style("distribution--header"))
        out.append(fit("raw (T = 1)", bar_w + 8), style("distribution--header"))
        out.append(approx, style("distribution--approx"))
        out.append(fit("after grammar + sampling", bar_w + 8 - len(approx)) + "\n", style("distribution--header"))
        raw_all = np.exp(dist.logprobs.astype(np.float64))
        rank = {int(t): k for k, t in enumerate(dist.ids.tolist())}
        forbidden = [k for k in range(dist.ids.size) if not dist.allowed[k]]
        final_max = float(shaped.final_probs.max()) if shaped is not None and shaped.ids.size else 0.0
        scale = max(float(raw_all[0]) if raw_all.size else 0.0, final_max, 1e-9)
        marks = cut_marks(shaped) if shaped is not None else {}
        rows, shown, fi = height - 3, 0, 0

        def label(k: int | None, token: int, struck: bool) -> None:
            """Raw rank, the sampled-token mark, the token's text (struck when forbidden)."""
            chosen = token == self.chosen
            st = style("distribution--forbidden") if struck else style("distribution--chosen") if chosen else ""
            out.append(f"{k + 1:>3}" if k is not None else "  ·", st)
            out.append("▶" if chosen else " ", st)
            text = self.token_text(token)
            out.append(fit(token_label(text) if text is not None else f"id {token}", label_w), st)

        def forbidden_until(raw: float) -> None:
            """Draw the forbidden tokens more likely (raw) than ``raw``; a long run is summed up."""
            nonlocal fi, shown
            run = []
            while fi < len(forbidden) and raw_all[forbidden[fi]] >= raw:
                run.append(forbidden[fi])
                fi += 1
            for j, k in enumerate(run):
                if shown >= rows:
                    return
                if j == self.FORBIDDEN_RUN - 1 and len(run) > self.FORBIDDEN_RUN:
                    rest = run[j:]
                    note = f"  + {len(rest)} more forbidden · {percent(float(raw_all[rest].sum()))} raw"
                    out.append(fit(note, width) + "\n", style("distribution--forbidden"))
                    shown += 1
                    return
                st = style("distribution--forbidden")
                label(k, int(dist.ids[k]), True)
                p = float(raw_all[k])
                out.append(bar(p / scale, bar_w) + f"{percent(p):>8}", st)
                out.append(" " + fit("forbidden", bar_w + 8, align="right") + "\n", style("distribution--cut"))
                shown += 1

        n = shaped.ids.size if shaped is not None else 0
        for i in range(n):
            if shown >= rows:
                break
            assert shaped is not None
            raw = float(shaped.raw_probs[i]) * dist.allowed_mass  # the model's raw p, not renormalised
            forbidden_until(raw)
            if shown >= rows:
                break
            if i in marks and i > 0:
                out.append(self._cut_line(marks[i], shaped, i, width) + "\n", style("distribution--cut"))
                shown += 1
                if shown >= rows:
                    break
            token = int(shaped.ids[i])
            label(rank.get(token), token, False)
            out.append(bar(raw / scale, bar_w), style("distribution--raw"))
            out.append(f"{percent(raw):>8}", style("distribution--raw"))
            final = float(shaped.final_probs[i])
            if final > 0:
                out.append(" " + bar(final / scale, bar_w), style("distribution--final"))
                out.append(f"{percent(final):>8}\n", style("distribution--final"))
            else:
                out.append(" " + fit("cut", bar_w + 8, align="right") + "\n", style("distribution--cut"))
            shown += 1
        if shown < rows:
            forbidden_until(0.0)
        removed = f"grammar: {dist.n_allowed} of {dist.n_vocab} allowed · removed {removed_percent(1.0 - dist.allowed_mass)} raw"
        if shaped is None:
            out.append(removed + " · no allowed token in the head", style("distribution--muted"))
        else:
            out.append(removed + " · " + self._footer(shaped), style("distribution--muted"))
        return out
