"""A checkbox whose mark says on or off by its shape, not only by its colour."""

from __future__ import annotations

from textual.widgets import Checkbox

ON, OFF = "✓", " "


class Check(Checkbox):
    """``Checkbox`` showing ✓ when on and an empty box when off (Textual draws "X" for both,
    told apart only by colour, which some themes and terminals lose)."""

    def __init__(self, label: str = "", value: bool = False, **kwargs) -> None:
        super().__init__(label, value, **kwargs)
        self.BUTTON_INNER = ON if value else OFF

    def watch_value(self) -> None:
        self.BUTTON_INNER = ON if self.value else OFF
        super().watch_value()
        self.refresh()
