"""The check of a finished constrained output: pretty JSON when valid, else the reason.

Shows an ``OutputCheck`` (``playground/constraint.py``): valid JSON pretty-printed (a choice, the
choice taken), invalid output with what is wrong, cut-off output with why it ended early (max
tokens, cancelled, a stop string), a free grammar as not re-checked. The model's text passes
through ``terminal_text.inert``: nothing it wrote reaches the terminal as a control sequence.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from playground.constraint import Constraint, OutputCheck, check_output
from playground.terminal_text import inert, inert_line

#: status -> (mark, heading)
HEADINGS = {
    "valid": ("✓", "valid"),
    "invalid": ("✗", "invalid"),
    "cut_off": ("✂", "cut off"),
    "unchecked": ("·", "not checked"),
}


class StructuredView(Static):
    """The result of the output check of the last run; hidden while there is none."""

    COMPONENT_CLASSES = {"structured--valid", "structured--invalid", "structured--cut", "structured--muted"}
    """
    | Class | Description |
    | :- | :- |
    | `structured--valid` | The heading of a valid output. |
    | `structured--invalid` | The heading of an invalid output. |
    | `structured--cut` | The heading of an output cut off before it was complete. |
    | `structured--muted` | Notes (keywords not checked, an unchecked grammar). |
    """

    DEFAULT_CSS = """
    StructuredView { height: auto; max-height: 12; overflow-y: auto; padding: 0 1; background: $surface; }
    StructuredView > .structured--valid { color: $success; text-style: bold; }
    StructuredView > .structured--invalid { color: $error; text-style: bold; }
    StructuredView > .structured--cut { color: $warning; text-style: bold; }
    StructuredView > .structured--muted { color: $text-muted; text-style: italic; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.result: OutputCheck | None = None
        self.constraint: Constraint | None = None
        self.display = False

    def show(self, result: OutputCheck | None, constraint: Constraint | None = None) -> None:
        """Show ``result`` (None hides the view)."""
        self.result, self.constraint = result, constraint
        self.display = result is not None
        self.update(self._text() if result is not None else "")

    def show_run(self, constraint: Constraint | None, text: str, finish_reason: str,
                 stop_string: str | None = None) -> OutputCheck | None:
        """Check a finished run's ``text`` against ``constraint`` and show it (None hides: no constraint)."""
        result = check_output(constraint, text, finish_reason, stop_string) if constraint is not None else None
        self.show(result, constraint)
        return result

    def _text(self) -> Text:
        result = self.result
        assert result is not None
        style = self.get_component_rich_style
        mark, heading = HEADINGS.get(result.status, ("?", result.status))
        heading_style = {"valid": "structured--valid", "invalid": "structured--invalid",
                         "cut_off": "structured--cut"}.get(result.status, "structured--muted")
        kind = self.constraint.label if self.constraint is not None else "constraint"
        out = Text()
        out.append(f"{mark} {heading}", style(heading_style))
        out.append(f" · {kind}", style("structured--muted"))
        if result.reason:
            out.append(": " + inert_line(result.reason), "" if result.status != "unchecked" else style("structured--muted"))
        out.append("\n")
        if result.parsed and self.constraint is not None and self.constraint.kind == "json_schema":
            out.append(inert(result.pretty or "") + "\n")
        elif result.parsed:
            out.append(inert_line(str(result.value)) + "\n")
        if result.unchecked:
            out.append(f"not checked here: {', '.join(map(inert_line, result.unchecked))}", style("structured--muted"))
        out.rstrip()
        return out
