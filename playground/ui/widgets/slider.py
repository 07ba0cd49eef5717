"""A one-line slider: ``label ━━━━━●━━━━ value``, keyboard, mouse, and exact values typed in."""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

_TYPING = set("0123456789.-")


class Slider(Widget, can_focus=True):
    """A numeric slider.

    The track spans ``[minimum, maximum]``; a typed value may go up to ``hard_max`` (e.g. top-k
    beyond the track). Typing a digit starts editing; enter commits, escape abandons.
    """

    BINDINGS = [
        Binding("left,minus", "step(-1)", "Less", show=False),
        Binding("right,plus,equals_sign", "step(1)", "More", show=False),
        Binding("shift+left,pagedown", "step(-10)", "Much less", show=False),
        Binding("shift+right,pageup", "step(10)", "Much more", show=False),
        Binding("home", "jump(0)", "Minimum", show=False),
        Binding("end", "jump(1)", "Maximum", show=False),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | left, minus | One step less. |
    | right, plus | One step more. |
    | shift+left/right | Ten steps. |
    | home / end | Minimum / maximum. |
    | digits | Type an exact value (enter commits, escape abandons). |
    """

    COMPONENT_CLASSES = {"slider--label", "slider--track", "slider--fill", "slider--knob", "slider--value", "slider--edit"}
    """
    | Class | Description |
    | :- | :- |
    | `slider--label` | The name on the left. |
    | `slider--track` | The empty part of the track. |
    | `slider--fill` | The part of the track up to the knob. |
    | `slider--knob` | The knob. |
    | `slider--value` | The number on the right. |
    | `slider--edit` | The value while it is being typed. |
    """

    DEFAULT_CSS = """
    Slider { height: 1; width: 1fr; }
    Slider > .slider--label { color: $text-muted; }
    Slider:focus > .slider--label { color: $text; text-style: bold; }
    Slider > .slider--track { color: $foreground 30%; }
    Slider > .slider--fill { color: $primary-darken-1; }
    Slider:focus > .slider--fill { color: $primary; }
    Slider > .slider--knob { color: $primary; }
    Slider:focus > .slider--knob { color: $accent; }
    Slider > .slider--value { color: $text; }
    Slider > .slider--edit { color: $text; background: $boost; text-style: underline; }
    Slider.-disabled-look > .slider--fill { color: $text-disabled; }
    Slider.-disabled-look > .slider--value { color: $text-disabled; }
    """

    value: reactive[float] = reactive(0.0, init=False)

    class Changed(Message):
        """The value changed (by key, mouse or typing)."""

        def __init__(self, slider: "Slider", value: float) -> None:
            super().__init__()
            self.slider = slider
            self.value = value

        @property
        def control(self) -> "Slider":
            return self.slider

    def __init__(
        self,
        label: str,
        value: float,
        *,
        minimum: float,
        maximum: float,
        step: float,
        hard_max: float | None = None,
        integer: bool = False,
        fmt: str = "{:.2f}",
        label_width: int = 12,
        off_value: float | None = None,
        names: dict[float, str] | None = None,
        id: str | None = None,
        tooltip: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.label = label
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.hard_max = maximum if hard_max is None else hard_max
        self.integer = integer
        self.fmt = fmt
        self.label_width = label_width
        self.off_value = off_value
        """A value that disables the stage; shown as "off"."""
        self.names = names or {}
        """Other values with a meaning of their own, shown by name (e.g. -1: "all")."""
        self._edit: str | None = None
        self._dragging = False
        self.set_reactive(Slider.value, self._clamp(value))
        if tooltip:
            self.tooltip = tooltip

    # --- value -----------------------------------------------------------------------------
    def _clamp(self, value: float) -> float:
        value = min(max(value, self.minimum), self.hard_max)
        if self.integer:
            return float(round(value))
        # snap to the step grid to avoid 0.30000000000000004 creeping in
        return round(value, max(0, -int(math.floor(math.log10(self.step)))) + 2)

    def validate_value(self, value: float) -> float:
        return self._clamp(value)

    def watch_value(self, value: float) -> None:
        self.post_message(self.Changed(self, value))

    def format_value(self) -> str:
        if self.off_value is not None and self.value == self.off_value:
            return "off"
        if self.value in self.names:
            return self.names[self.value]
        return self.fmt.format(int(self.value) if self.integer else self.value)

    # --- actions ---------------------------------------------------------------------------
    def action_step(self, steps: int) -> None:
        base = min(self.value, self.maximum) if steps < 0 and self.value > self.maximum else self.value
        self.value = self._snap(base + steps * self.step)

    def _snap(self, value: float) -> float:
        n = round((value - self.minimum) / self.step)
        return self.minimum + n * self.step

    def action_jump(self, where: int) -> None:
        self.value = self.maximum if where else self.minimum

    # --- typing an exact value -------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        if self._edit is None:
            if event.character and event.character in _TYPING and event.key not in ("minus",):
                self._edit = event.character
                event.stop()
                event.prevent_default()
                self.refresh()
            return
        if event.key in ("tab", "shift+tab"):  # commit, and let the key move the focus as usual
            self._commit()
            self.refresh()
            return
        event.stop()
        event.prevent_default()
        if event.key == "enter":
            self._commit()
        elif event.key == "escape":
            self._edit = None
        elif event.key == "backspace":
            self._edit = self._edit[:-1]
        elif event.character and event.character in _TYPING:
            self._edit += event.character
        self.refresh()

    def _commit(self) -> None:
        text, self._edit = self._edit or "", None
        try:
            typed = float(text)
        except ValueError:
            self.notify(f"{self.label}: '{text}' is not a number", severity="warning")
            return
        self.value = typed
        if not self.minimum <= typed <= self.hard_max:  # clamped: say so, a silent change looks like a bug
            self.notify(f"{self.label}: {text} is out of range {self._shown(self.minimum)}–{self._shown(self.hard_max)}; "
                        f"set to {self.format_value()}", title="Value out of range", severity="warning")

    def _shown(self, value: float) -> str:
        return self.fmt.format(int(value) if self.integer else value)

    @property
    def editing(self) -> bool:
        return self._edit is not None

    def on_blur(self) -> None:
        if self._edit is not None:
            self._commit()

    # --- mouse -----------------------------------------------------------------------------
    def _track_span(self) -> tuple[int, int]:
        start = self.label_width + 1
        return start, max(4, self.size.width - start - 8)

    def _value_at(self, x: int) -> float:
        start, width = self._track_span()
        frac = min(max((x - start) / max(1, width - 1), 0.0), 1.0)
        return self._snap(self.minimum + frac * (self.maximum - self.minimum))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        start, width = self._track_span()
        if start <= event.x < start + width:
            self._dragging = True
            self.capture_mouse()
            self.value = self._value_at(event.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            self.value = self._value_at(event.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_step(1)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_step(-1)
        event.stop()

    # --- rendering -------------------------------------------------------------------------
    def render(self) -> Text:
        style = self.get_component_rich_style
        label = self.label[: self.label_width].ljust(self.label_width)
        text = Text(no_wrap=True, overflow="crop")
        text.append(label + " ", style("slider--label"))
        start, width = self._track_span()
        frac = (min(self.value, self.maximum) - self.minimum) / ((self.maximum - self.minimum) or 1)
        knob = round(frac * (width - 1))
        text.append("━" * knob, style("slider--fill"))
        text.append("●", style("slider--knob"))
        text.append("━" * (width - knob - 1), style("slider--track"))
        if self._edit is not None:
            value = (self._edit + "▏").rjust(7)
            text.append(" " + value, style("slider--edit"))
        else:
            value = self.format_value()
            text.append(" " * max(1, 8 - cell_len(value)) + value, style("slider--value"))
        return text
