"""The sampler pane: the common sliders on top, seed, greedy and stops, then every other llama.cpp
sampler setting in a collapsed "Advanced samplers" group (``advanced_samplers.py``)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label

from playground.errors import InvalidParameterError
from playground.params import RANDOM_SEED, SamplerParams
from playground.ui.widgets.advanced_samplers import (
    ADVANCED, TEXT_FIELDS, AdvancedSamplers, advanced_summary, chain_line, param_value, slider_value,
)
from playground.ui.widgets.check import Check
from playground.ui.widgets.slider import Slider
from playground.ui.widgets.stops import format_stops, parse_stops

__all__ = ["SamplerPanel", "format_stops", "parse_stops"]

#: slider id -> (label, SamplerParams field, minimum, maximum, step, hard max, integer, format, off value, tip)
SLIDERS = {
    "temperature": ("temperature", 0.0, 2.0, 0.05, 100.0, False, "{:.2f}", None,
                    "divides the logits before the final draw; 0 = greedy"),
    "top_k": ("top-k", 0, 100, 1, 1_000_000, True, "{}", 0, "keep the k most likely tokens; 0 = off"),
    "top_p": ("top-p", 0.01, 1.0, 0.01, 1.0, False, "{:.2f}", 1.0, "keep the smallest set reaching this mass; 1 = off"),
    "min_p": ("min-p", 0.0, 1.0, 0.01, 1.0, False, "{:.2f}", 0.0, "keep tokens >= min-p x the top token's p; 0 = off"),
    "repeat_penalty": ("repeat pen.", 0.5, 2.0, 0.05, 10.0, False, "{:.2f}", 1.0,
                       "penalise tokens seen in the last n (pen. last n, advanced); 1 = off"),
}


#: the stages greedy makes moot (it takes the top token after the penalties): greyed, still editable
_MOOT_UNDER_GREEDY = ("temperature", "top_k", "top_p", "min_p", "top_n_sigma", "typical_p", "xtc_probability",
                      "xtc_threshold", "dynatemp_range", "dynatemp_exponent", "mirostat", "mirostat_eta", "mirostat_tau")


class SamplerPanel(VerticalScroll):
    """Edits a ``SamplerParams`` and the max new tokens; posts ``Changed`` on every valid edit.

    A text field that does not parse (the order, the logit bias) shows its error in the pane and
    leaves the params as they were, the other values untouched.
    """

    DEFAULT_CSS = """
    SamplerPanel { height: auto; padding: 0 1; }
    SamplerPanel > Horizontal { height: 1; }
    SamplerPanel Checkbox { border: none; padding: 0; height: 1; background: transparent; }
    SamplerPanel Checkbox:focus { background: $boost; }
    SamplerPanel #seed-row Label, SamplerPanel #stop-row Label { width: 13; color: $text-muted; }
    SamplerPanel #stop { border: none; height: 1; width: 1fr; padding: 0 1; background: $boost; }
    SamplerPanel #stop:focus { background: $primary 30%; }
    SamplerPanel #seed { border: none; height: 1; width: 14; padding: 0 1; background: $boost; }
    SamplerPanel #seed:focus { background: $primary 30%; }
    SamplerPanel #seed-used { width: 1fr; color: $text-muted; padding-left: 1; display: none; }
    SamplerPanel #seed-used.-shown { display: block; }
    SamplerPanel #unsent { width: 1fr; color: $warning; display: none; }
    SamplerPanel #unsent.-shown { display: block; }
    SamplerPanel Slider.-not-sent > .slider--label { text-style: strike; }
    SamplerPanel Slider.-not-sent > .slider--value { color: $text-disabled; }
    """

    class Changed(Message):
        """The sampler settings changed."""

        def __init__(self, params: SamplerParams, max_tokens: int, stop: tuple[str, ...]) -> None:
            super().__init__()
            self.params = params
            self.max_tokens = max_tokens
            self.stops = stop
            """The stop strings (not ``stop``: that would hide ``Message.stop()``, which Textual calls)."""

    def __init__(self, params: SamplerParams, max_tokens: int, *, stop: tuple[str, ...] = (),
                 max_tokens_limit: int = 4096, id: str | None = None) -> None:
        super().__init__(id=id)
        self._params = params
        self._max_tokens = max_tokens
        self._stop = stop
        self._limit = max_tokens_limit
        self._ready = False
        self._errors: dict[str, str] = {}
        """Text field -> why its text was not taken (the params keep the last valid value)."""

    def compose(self) -> ComposeResult:
        p = self._params
        for field, (label, lo, hi, step, hard, integer, fmt, off, tip) in SLIDERS.items():
            yield Slider(label, getattr(p, field), minimum=lo, maximum=hi, step=step, hard_max=hard,
                         integer=integer, fmt=fmt, off_value=off, id=f"s-{field}", tooltip=tip)
        yield Slider("max tokens", self._max_tokens, minimum=1, maximum=1024, step=16, hard_max=self._limit,
                     integer=True, fmt="{}", id="s-max_tokens", tooltip="maximum new tokens (type a value up to the context)")
        with Horizontal(id="seed-row"):
            yield Label("seed")
            yield Input(str(p.seed if p.seed != RANDOM_SEED else ""), placeholder="random", id="seed",
                        restrict=r"[0-9]*", max_length=10, tooltip="empty = a fresh random seed per run")
            yield Check("greedy", p.greedy, id="greedy", tooltip="always take the most likely token")
        with Horizontal(id="stop-row"):
            yield Label("stop")
            yield Input(format_stops(self._stop), placeholder="none  (e.g. \\n\\n|Input:)", id="stop",
                        tooltip="stop strings, separated by |; \\n = line break")
        yield Label("", id="seed-used")
        yield Label("", id="unsent")
        yield AdvancedSamplers(p, id="advanced")

    def on_mount(self) -> None:
        self._ready = True
        self._sync_disabled_look()

    @property
    def params(self) -> SamplerParams:
        return self._params

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def errors(self) -> dict[str, str]:
        """Text fields whose text was refused -> the reason shown in the pane."""
        return dict(self._errors)

    def set_params(self, params: SamplerParams, max_tokens: int | None = None, *,
                   stop: tuple[str, ...] | None = None) -> None:
        """Show ``params`` (e.g. from a session); posts Changed."""
        if stop is not None:
            self._stop = tuple(stop)
            self.query_one("#stop", Input).value = format_stops(self._stop)
        values = {f: float(getattr(params, f)) for f in SLIDERS} | {f: slider_value(f, params) for f in ADVANCED}
        for field, value in values.items():
            self.query_one(f"#s-{field}", Slider).set_reactive(Slider.value, value)
            self.query_one(f"#s-{field}", Slider).refresh()
        if max_tokens is not None:
            self._max_tokens = max_tokens
            self.query_one("#s-max_tokens", Slider).set_reactive(Slider.value, float(max_tokens))
            self.query_one("#s-max_tokens", Slider).refresh()
        self.query_one("#seed", Input).value = "" if params.seed == RANDOM_SEED else str(params.seed)
        self.query_one("#greedy", Checkbox).value = params.greedy
        for field, spec in TEXT_FIELDS.items():
            self.query_one(f"#t-{field}", Input).value = spec.format(getattr(params, field))
        self._errors.clear()
        self._show_errors()
        self._params = params
        self._sync_disabled_look()
        self._emit()

    def mark_unsent(self, honoured: frozenset[str]) -> None:
        """Grey the settings a backend does not take (they are not sent) and say so.

        A common setting left out falls back to the server's default; an advanced one set away
        from its default makes a run refuse (``backends.base.refuse_unhonoured_samplers``).
        """
        unsent = [SLIDERS[f][0] for f in SLIDERS if f not in honoured]
        for field in SLIDERS:
            slider = self.query_one(f"#s-{field}", Slider)
            slider.set_class(field not in honoured, "-not-sent")
            slider.tooltip = SLIDERS[field][8] + ("" if field in honoured else " · not sent to this backend: the server's own default applies")
        groups: list[str] = []
        for field, spec in ADVANCED.items():
            slider = self.query_one(f"#s-{field}", Slider)
            slider.set_class(field not in honoured, "-not-sent")
            slider.tooltip = spec.tip + ("" if field in honoured else " · this backend cannot take it")
            if field not in honoured and spec.group not in groups:
                groups.append(spec.group)
        for field, text_spec in TEXT_FIELDS.items():
            self.query_one(f"#row-{field}").set_class(field not in honoured, "-not-sent")
            if field not in honoured and text_spec.group not in groups:
                groups.append(text_spec.group)
        lines = []
        if unsent:
            lines.append(f"not sent to this backend: {', '.join(unsent)} (the server's own defaults apply)")
        if groups:
            lines.append(f"this backend cannot take {', '.join(groups)}: a run refuses them set")
        note = self.query_one("#unsent", Label)
        note.update("\n".join(lines))
        note.set_class(bool(lines), "-shown")

    def show_seed_used(self, seed: int | None) -> None:
        """Show the seed a run actually used (a random seed is otherwise lost)."""
        pin = " (type it to pin)" if self._params.seed == RANDOM_SEED else ""
        text = "" if seed is None else f"last run: seed {seed}{pin}"
        label = self.query_one("#seed-used", Label)
        label.update(text)
        label.set_class(bool(text), "-shown")

    @on(Slider.Changed)
    def _slider_changed(self, event: Slider.Changed) -> None:
        event.stop()
        field = (event.slider.id or "").removeprefix("s-")
        if field == "max_tokens":
            self._max_tokens = int(event.value)
        elif field in SLIDERS:
            value = int(event.value) if SLIDERS[field][5] else float(event.value)
            self._params = self._params.replace(**{field: value})
        elif field in ADVANCED:
            self._params = self._params.replace(**{field: param_value(field, event.value)})
        self._emit()

    @on(Input.Changed, "#seed")
    def _seed_changed(self, event: Input.Changed) -> None:
        event.stop()
        text = event.value.strip()
        seed = int(text) if text.isdigit() and int(text) < 2**32 else RANDOM_SEED
        self._params = self._params.replace(seed=seed)
        self._emit()

    @on(Input.Changed, "#stop")
    def _stop_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._stop = parse_stops(event.value)
        self._emit()

    @on(Input.Changed, ".text-row Input")
    def _text_changed(self, event: Input.Changed) -> None:
        event.stop()
        field = (event.input.id or "").removeprefix("t-")
        spec = TEXT_FIELDS[field]
        try:
            params = self._params.replace(**{field: spec.parse(event.value)}).validate()
        except InvalidParameterError as exc:  # keep the last valid value; say why this one is not taken
            self._errors[field] = f"{spec.label}: {exc}"
        else:
            self._errors.pop(field, None)
            if params != self._params:
                self._params = params
                self._emit()
        event.input.set_class(field in self._errors, "-invalid")
        self._show_errors()

    def _show_errors(self) -> None:
        label = self.query_one("#sampler-error", Label)
        label.update("\n".join(self._errors.values()))
        label.set_class(bool(self._errors), "-shown")
        for field in TEXT_FIELDS:
            self.query_one(f"#t-{field}", Input).set_class(field in self._errors, "-invalid")

    @property
    def stop(self) -> tuple[str, ...]:
        return self._stop

    @on(Checkbox.Changed, "#greedy")
    def _greedy_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._params = self._params.replace(greedy=event.value)
        self._sync_disabled_look()
        self._emit()

    def _sync_disabled_look(self) -> None:
        # Under greedy the truncations and temperature do not matter: grey them, keep them editable.
        for field in _MOOT_UNDER_GREEDY:
            self.query_one(f"#s-{field}", Slider).set_class(self._params.greedy, "-disabled-look")

    def _emit(self) -> None:
        if self._ready:
            self.query_one(AdvancedSamplers).title = advanced_summary(self._params)
            self.query_one("#chain", Label).update(chain_line(self._params))
            self.post_message(self.Changed(self._params, self._max_tokens, self._stop))
