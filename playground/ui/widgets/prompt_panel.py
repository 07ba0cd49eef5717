"""The prompt pane: structured fields or one free-form prompt, and the plain/chat template switch."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Static, TabbedContent, TabPane, TextArea

from playground.prompt_builder import PromptSpec
from playground.ui.widgets.check import Check

FIELDS = ("instruction", "context", "input")


class PromptPanel(Vertical):
    """Edits the text parts of a ``PromptSpec``; posts ``Changed`` on every edit."""

    DEFAULT_CSS = """
    PromptPanel { height: 1fr; }
    PromptPanel TabbedContent { height: 1fr; }
    PromptPanel TabPane { padding: 0; height: 1fr; }
    PromptPanel TextArea { border: round $foreground 30%; padding: 0; height: 1fr; min-height: 3; }
    PromptPanel TextArea:focus { border: round $primary; }
    PromptPanel #instruction { height: 5; }
    PromptPanel #context { height: 5; }
    PromptPanel #input { height: 1fr; }
    PromptPanel #prompt-bar { height: 1; padding: 0 1; }
    PromptPanel #prompt-bar Checkbox { border: none; padding: 0; height: 1; width: auto; background: transparent; }
    PromptPanel #prompt-bar Checkbox:focus { background: $boost; }
    PromptPanel #prompt-count { width: 1fr; text-align: right; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    PromptPanel #prompt-count.-over { color: $error; text-style: bold; }
    PromptPanel #prompt-count.-warn { color: $warning; }
    """

    class Changed(Message):
        """Some text, the mode or the template switch changed."""

    def __init__(self, spec: PromptSpec, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spec = spec

    def compose(self) -> ComposeResult:
        spec = self._spec
        with TabbedContent(initial=spec.mode, id="prompt-mode"):
            with TabPane("Structured", id="structured"):
                for name in FIELDS:
                    area = TextArea(getattr(spec, name), id=name, soft_wrap=True, tab_behavior="focus",
                                    show_line_numbers=False, highlight_cursor_line=False)
                    area.border_title = name
                    yield area
            with TabPane("Free-form", id="freeform"):
                area = TextArea(spec.text, id="freeform-text", soft_wrap=True, tab_behavior="focus",
                                show_line_numbers=False, highlight_cursor_line=False)
                area.border_title = "prompt (used verbatim)"
                yield area
        with Horizontal(id="prompt-bar"):
            yield Check("chat template", spec.template == "chat", id="chat",
                           tooltip="render through the model's chat template (ctrl+t)")
            yield Static("", id="prompt-count")

    @property
    def mode(self) -> str:
        return self.query_one(TabbedContent).active or "structured"

    def spec(self, base: PromptSpec) -> PromptSpec:
        """``base`` (examples, format) with this pane's text, mode and template."""
        values = {name: self.query_one(f"#{name}", TextArea).text for name in FIELDS}
        return base.replace(
            mode=self.mode,
            text=self.query_one("#freeform-text", TextArea).text,
            template="chat" if self.query_one("#chat", Checkbox).value else "plain",
            **values,
        )

    def set_spec(self, spec: PromptSpec) -> None:
        """Fill the fields from ``spec`` (e.g. ``--prompt`` or a session)."""
        for name in FIELDS:
            self.query_one(f"#{name}", TextArea).load_text(getattr(spec, name))
        self.query_one("#freeform-text", TextArea).load_text(spec.text)
        self.query_one("#chat", Checkbox).value = spec.template == "chat"
        # The screen's focused widget, also while another screen is on top (then has_focus_within
        # is False): left on a field of the pane being hidden, it would switch the tabs back as
        # soon as that screen is shown again.
        focused = self.screen.focused if self.is_mounted else None
        had_focus = focused is not None and self in focused.ancestors
        self.query_one(TabbedContent).active = spec.mode
        if had_focus:
            self.focus_prompt()
        # A TabPane.Focused message posted before this call (the field focused at start) may still
        # be queued; handled later, it would switch back to that pane. Settle once it has passed.
        self.call_after_refresh(self._settle_mode, spec.mode)

    def _settle_mode(self, mode: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active != mode:
            tabs.active = mode
            focused = self.screen.focused
            if focused is not None and self in focused.ancestors:
                self.focus_prompt()

    def toggle_template(self) -> None:
        switch = self.query_one("#chat", Checkbox)
        switch.value = not switch.value

    def focus_prompt(self) -> None:
        """Focus the field a user most likely types into."""
        target = "#input" if self.mode == "structured" else "#freeform-text"
        self.query_one(target, TextArea).focus()

    def show_count(self, text: str, level: str = "") -> None:
        """Token count line, e.g. "123 / 4096 tokens"; level "warn" or "over" colours it."""
        count = self.query_one("#prompt-count", Static)
        count.update(text)
        count.set_class(level == "warn", "-warn")
        count.set_class(level == "over", "-over")

    @on(TextArea.Changed)
    @on(Checkbox.Changed)
    @on(TabbedContent.TabActivated)
    def _changed(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed())
