"""The sampler pane's "Advanced samplers" group: llama.cpp's newer stages, collapsed by default.

The fields are data (``ADVANCED`` sliders, ``TEXT_FIELDS`` one-line fields); ``SamplerPanel`` reads
their changes and turns them into ``SamplerParams``. Text fields are parsed with the core's own
parsers (``params.parse_sampler_order``, ``LogitBias.parse``), so the pane accepts what the CLI and
lane specs accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.containers import Horizontal
from textual.widgets import Collapsible, Input, Label

from playground.errors import InvalidParameterError
from playground.params import INT32_MAX, LogitBias, SamplerParams, parse_sampler_order
from playground.ui.widgets.slider import Slider
from playground.ui.widgets.stops import format_stops, parse_stops


@dataclass(frozen=True)
class SliderSpec:
    """One numeric field: its slider and what it means."""

    label: str
    group: str
    """The stage it belongs to, as named in the "not sent" note."""
    minimum: float
    maximum: float
    step: float
    hard_max: float
    integer: bool
    fmt: str
    off: float | None
    tip: str
    names: dict[float, str] | None = None


_WHOLE = {-1.0: "all"}

#: SamplerParams field -> its slider, in the order shown (grouped by stage, the chain's order).
ADVANCED: dict[str, SliderSpec] = {
    "repeat_last_n": SliderSpec("pen. last n", "penalties", -1, 512, 1, INT32_MAX, True, "{}", 0,
                                "how many recent tokens repeat/presence/frequency penalties look at; -1 = all, 0 = off", _WHOLE),
    "presence_penalty": SliderSpec("presence pen", "penalties", -2.0, 2.0, 0.05, 100.0, False, "{:.2f}", 0.0,
                                   "subtracted once from every token seen in the last n; 0 = off"),
    "frequency_penalty": SliderSpec("freq. pen.", "penalties", -2.0, 2.0, 0.05, 100.0, False, "{:.2f}", 0.0,
                                    "subtracted per occurrence in the last n; 0 = off"),
    "dry_multiplier": SliderSpec("dry mult.", "dry", 0.0, 2.0, 0.05, 100.0, False, "{:.2f}", 0.0,
                                 "DRY: penalise repeating sequences by mult x base^(length - allowed); 0 = off"),
    "dry_base": SliderSpec("dry base", "dry", 1.0, 4.0, 0.05, 100.0, False, "{:.2f}", None, "DRY's growth per repeated token"),
    "dry_allowed_length": SliderSpec("dry allowed", "dry", 0, 16, 1, INT32_MAX, True, "{}", None,
                                     "repeats up to this long go unpunished"),
    "dry_penalty_last_n": SliderSpec("dry last n", "dry", -1, 512, 1, INT32_MAX, True, "{}", 0,
                                     "how many recent tokens DRY scans; -1 = all, 0 = off", _WHOLE),
    "top_n_sigma": SliderSpec("top-n-sigma", "top-n-sigma", 0.0, 5.0, 0.1, 100.0, False, "{:.1f}", 0.0,
                              "keep logits within n standard deviations of the top one; 0 = off"),
    "typical_p": SliderSpec("typical", "typical", 0.01, 1.0, 0.01, 1.0, False, "{:.2f}", 1.0,
                            "locally typical sampling: keep the tokens nearest the entropy up to mass p; 1 = off"),
    "xtc_probability": SliderSpec("xtc prob.", "xtc", 0.0, 1.0, 0.01, 1.0, False, "{:.2f}", 0.0,
                                  "XTC: chance per token of removing the top choices above the threshold; 0 = off"),
    "xtc_threshold": SliderSpec("xtc thresh.", "xtc", 0.0, 1.0, 0.01, 1.0, False, "{:.2f}", None,
                                "XTC removes the choices above this probability but the least; above 0.5 = off"),
    "dynatemp_range": SliderSpec("dynatemp rng", "dynatemp", 0.0, 2.0, 0.05, 100.0, False, "{:.2f}", 0.0,
                                 "dynamic temperature: T ± range by the candidates' entropy; 0 = off"),
    "dynatemp_exponent": SliderSpec("dynatemp exp", "dynatemp", 0.0, 4.0, 0.1, 100.0, False, "{:.1f}", None,
                                    "how the entropy maps to the temperature"),
    "mirostat": SliderSpec("mirostat", "mirostat", 0, 2, 1, 2, True, "{}", 0,
                           "1 = Mirostat, 2 = Mirostat 2.0: replaces the chain but logit bias and temperature; 0 = off",
                           {1.0: "v1", 2.0: "v2"}),
    "mirostat_eta": SliderSpec("mirostat lr", "mirostat", 0.01, 1.0, 0.01, 1.0, False, "{:.2f}", None, "Mirostat's learning rate"),
    "mirostat_tau": SliderSpec("mirostat ent", "mirostat", 0.1, 10.0, 0.1, 100.0, False, "{:.1f}", None,
                               "Mirostat's target entropy (surprise)"),
}


def slider_value(field: str, params: SamplerParams) -> float:
    """The value a field's slider shows (top-n-sigma's "off" is -1 in params, 0 on the track)."""
    value = float(getattr(params, field))
    return max(value, 0.0) if field == "top_n_sigma" else value


def param_value(field: str, value: float) -> float | int:
    """A slider's value as the SamplerParams field takes it."""
    if ADVANCED[field].integer:
        return int(value)
    if field == "top_n_sigma" and value <= 0.0:
        return -1.0  # llama.cpp's own "off", so that an untouched chain stays the default
    return float(value)


# --- one-line text fields -------------------------------------------------------------------------

def split_items(text: str) -> list[str]:
    """Comma-separated items; a comma inside quotes belongs to the item (``','+2``)."""
    items, current, quote = [], [], ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_biases(text: str) -> tuple[LogitBias, ...]:
    """``15043+1, " Hello"-5`` -> logit biases (raises InvalidParameterError)."""
    return tuple(LogitBias.parse(item) for item in split_items(text))


def format_biases(biases: tuple[LogitBias, ...]) -> str:
    return ", ".join(b.label() for b in biases)


def parse_order(text: str) -> tuple[str, ...]:
    """The chain's order as typed (llama.cpp's names and aliases, ``;`` or ``,`` between them)."""
    order = parse_sampler_order(text)
    if not order:
        raise InvalidParameterError("the sampler order is empty: name the stages, e.g. top_k;top_p;min_p;temperature")
    return order


@dataclass(frozen=True)
class TextSpec:
    label: str
    group: str
    parse: Callable[[str], object]
    format: Callable[[object], str]
    placeholder: str
    tip: str


#: SamplerParams field -> its one-line field.
TEXT_FIELDS: dict[str, TextSpec] = {
    "samplers": TextSpec("order", "order", parse_order, lambda v: ";".join(v), "penalties;dry;top_k;…",
                         "the chain's order, llama.cpp's --samplers names separated by ';' "
                         "(penalties dry top_n_sigma top_k typ_p top_p min_p xtc temperature)"),
    "logit_bias": TextSpec("logit bias", "logit bias", parse_biases, format_biases, 'none  (e.g. 15043+1, " Hi"-5)',
                           "ID+BIAS or TEXT-BIAS, comma separated; quote text with spaces or digits; -100 bans"),
    "dry_sequence_breakers": TextSpec("dry breakers", "dry", parse_stops, format_stops, "none",
                                      "strings that end a repeat for DRY, separated by |; \\n = line break"),
}


def advanced_summary(params: SamplerParams) -> str:
    """What of the group acts, for its title (seen while it is collapsed)."""
    on = [name for name, acting in (
        ("order", params.samplers != SamplerParams().samplers),
        ("bias", bool(params.logit_bias)),
        ("presence/freq", params.presence_penalty != 0.0 or params.frequency_penalty != 0.0),
        ("dry", params.stage_on("dry")),
        ("top-n-sigma", params.stage_on("top_n_sigma")),
        ("typical", params.stage_on("typ_p")),
        ("xtc", params.stage_on("xtc")),
        ("dynatemp", params.dynatemp_range > 0.0),
        ("mirostat", params.mirostat != 0),
    ) if acting]
    return "Advanced samplers" + (f" · on: {', '.join(on)}" if on else " · all off")


def chain_line(params: SamplerParams) -> str:
    """The stages that act, in the order the chain runs them (under the order field)."""
    return "acting: " + " → ".join(params.active_stages)


class AdvancedSamplers(Collapsible):
    """The collapsed group of the newer stages (enter on its title opens it)."""

    DEFAULT_CSS = """
    AdvancedSamplers { border-top: none; padding: 0; background: transparent; height: auto; }
    AdvancedSamplers > Contents { padding: 0; }
    AdvancedSamplers > CollapsibleTitle { padding: 0; width: 1fr; color: $text-muted; }
    AdvancedSamplers > CollapsibleTitle:focus { color: $text; background: $boost; text-style: bold; }
    AdvancedSamplers .text-row { height: 1; }
    AdvancedSamplers .text-row Label { width: 13; color: $text-muted; }
    AdvancedSamplers .text-row Input { border: none; height: 1; width: 1fr; padding: 0 1; background: $boost; }
    AdvancedSamplers .text-row Input:focus { background: $primary 30%; }
    AdvancedSamplers .text-row Input.-invalid { background: $error 30%; }
    AdvancedSamplers .text-row.-not-sent Label { text-style: strike; }
    AdvancedSamplers #chain { width: 1fr; color: $text-muted; padding-left: 14; }
    AdvancedSamplers #sampler-error { width: 1fr; color: $error; display: none; }
    AdvancedSamplers #sampler-error.-shown { display: block; }
    """

    def __init__(self, params: SamplerParams, *, id: str | None = None) -> None:
        super().__init__(*self._rows(params), title=advanced_summary(params), collapsed=True, id=id)

    @classmethod
    def _rows(cls, p: SamplerParams) -> list:
        rows: list = [cls._text_row(field, p) for field in ("samplers", "logit_bias")]
        rows.append(Label(chain_line(p), id="chain"))
        rows.append(Label("", id="sampler-error"))
        for field, spec in ADVANCED.items():
            rows.append(Slider(spec.label, slider_value(field, p), minimum=spec.minimum, maximum=spec.maximum,
                               step=spec.step, hard_max=spec.hard_max, integer=spec.integer, fmt=spec.fmt,
                               off_value=spec.off, names=spec.names, id=f"s-{field}", tooltip=spec.tip))
            if field == "dry_penalty_last_n":
                rows.append(cls._text_row("dry_sequence_breakers", p))
        return rows

    @staticmethod
    def _text_row(field: str, p: SamplerParams) -> Horizontal:
        spec = TEXT_FIELDS[field]
        return Horizontal(
            Label(spec.label),
            Input(spec.format(getattr(p, field)), placeholder=spec.placeholder, id=f"t-{field}", tooltip=spec.tip),
            id=f"row-{field}", classes="text-row",
        )
