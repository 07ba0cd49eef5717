"""The sampler pane: sliders for every llama.cpp sampler setting, seed and greedy."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label

from playground.params import RANDOM_SEED, SamplerParams
from playground.ui.widgets.slider import Slider
from playground.ui.widgets.check import Check

#: slider id -> (label, SamplerParams field, minimum, maximum, step, hard max, integer, format, off value, tip)
SLIDERS = {
    "temperature": ("temperature", 0.0, 2.0, 0.05, 100.0, False, "{:.2f}", None,
                    "divides the logits before the final draw; 0 = greedy"),
    "top_k": ("top-k", 0, 100, 1, 1_000_000, True, "{}", 0, "keep the k most likely tokens; 0 = off"),
    "top_p": ("top-p", 0.01, 1.0, 0.01, 1.0, False, "{:.2f}", 1.0, "keep the smallest set reaching this mass; 1 = off"),
    "min_p": ("min-p", 0.0, 1.0, 0.01, 1.0, False, "{:.2f}", 0.0, "keep tokens >= min-p x the top token's p; 0 = off"),
    "repeat_penalty": ("repeat pen.", 0.5, 2.0, 0.05, 10.0, False, "{:.2f}", 1.0,
                       "penalise tokens seen in the last 64; 1 = off"),
}


def parse_stops(text: str) -> tuple[str, ...]:
    """Stop strings as typed on one line: separated by ``|``; ``\\n`` is a line break, ``\\|`` a bar."""
    out, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "n|\\t":
            current.append({"n": "\n", "t": "\t"}.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if ch == "|":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return tuple(s for s in out if s)


def format_stops(stops: tuple[str, ...]) -> str:
    """The inverse of ``parse_stops``."""
    return "|".join(s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t") for s in stops)


class SamplerPanel(VerticalScroll):
    """Edits a ``SamplerParams`` and the max new tokens; posts ``Changed`` on every edit."""

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

    def on_mount(self) -> None:
        self._ready = True
        self._sync_disabled_look()

    @property
    def params(self) -> SamplerParams:
        return self._params

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def set_params(self, params: SamplerParams, max_tokens: int | None = None, *,
                   stop: tuple[str, ...] | None = None) -> None:
        """Show ``params`` (e.g. from a session); posts Changed."""
        if stop is not None:
            self._stop = tuple(stop)
            self.query_one("#stop", Input).value = format_stops(self._stop)
        for field in SLIDERS:
            self.query_one(f"#s-{field}", Slider).set_reactive(Slider.value, float(getattr(params, field)))
            self.query_one(f"#s-{field}", Slider).refresh()
        if max_tokens is not None:
            self._max_tokens = max_tokens
            self.query_one("#s-max_tokens", Slider).set_reactive(Slider.value, float(max_tokens))
            self.query_one("#s-max_tokens", Slider).refresh()
        self.query_one("#seed", Input).value = "" if params.seed == RANDOM_SEED else str(params.seed)
        self.query_one("#greedy", Checkbox).value = params.greedy
        self._params = params
        self._emit()

    def mark_unsent(self, honoured: frozenset[str]) -> None:
        """Grey the settings a backend does not take (they are not sent) and say so."""
        unsent = [SLIDERS[f][0] for f in SLIDERS if f not in honoured]
        for field in SLIDERS:
            slider = self.query_one(f"#s-{field}", Slider)
            slider.set_class(field not in honoured, "-not-sent")
            slider.tooltip = SLIDERS[field][8] + ("" if field in honoured else " · not sent to this backend: the server's own default applies")
        note = self.query_one("#unsent", Label)
        note.update(f"not sent to this backend: {', '.join(unsent)} (the server's own defaults apply)" if unsent else "")
        note.set_class(bool(unsent), "-shown")

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
        for field in ("temperature", "top_k", "top_p", "min_p"):
            self.query_one(f"#s-{field}", Slider).set_class(self._params.greedy, "-disabled-look")

    def _emit(self) -> None:
        if self._ready:
            self.post_message(self.Changed(self._params, self._max_tokens, self._stop))
