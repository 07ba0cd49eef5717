"""The prompt pane: structured fields, one free-form prompt or a conversation, and the plain/chat switch."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Static, TabbedContent, TabPane, TextArea

from playground.prompt_builder import ChatTemplate, PromptSpec, Turn, template_default_system
from playground.ui.widgets.check import Check
from playground.ui.widgets.turns_editor import TurnsEditor

FIELDS = ("instruction", "context", "input")


class PromptPanel(Vertical):
    """Edits the text parts of a ``PromptSpec``; posts ``Changed`` on every edit.

    The system prompt's placeholder says what an empty one means: the chat template's default
    (read from the app's ``chat_template`` whenever the pane changes or ``show_count`` is called,
    as the screen does once the model is loaded), or no system line in plain mode.
    """

    DEFAULT_CSS = """
    PromptPanel { height: 1fr; }
    PromptPanel TabbedContent { height: 1fr; }
    PromptPanel TabPane { padding: 0; height: 1fr; }
    PromptPanel TextArea { border: round $foreground 30%; padding: 0; height: 1fr; min-height: 3; }
    PromptPanel TextArea:focus { border: round $primary; }
    PromptPanel #instruction { height: 5; }
    PromptPanel #context { height: 5; }
    PromptPanel #input { height: 1fr; }
    PromptPanel #system { height: 4; min-height: 3; }
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
        self._default_for: tuple[ChatTemplate, str | None] | None = None

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
            with TabPane("Conversation", id="conversation"):
                area = TextArea(spec.system, id="system", soft_wrap=True, tab_behavior="focus",
                                show_line_numbers=False, highlight_cursor_line=False)
                area.border_title = "system prompt"
                yield area
                yield TurnsEditor(spec.turns, id="turns")
        with Horizontal(id="prompt-bar"):
            yield Check("chat template", spec.template == "chat", id="chat",
                           tooltip="render through the model's chat template (ctrl+t)")
            yield Static("", id="prompt-count")

    @property
    def mode(self) -> str:
        return self.query_one(TabbedContent).active or "structured"

    def spec(self, base: PromptSpec) -> PromptSpec:
        """``base`` (examples, format) with this pane's text, turns, mode and template.

        The system prompt is this pane's only in conversation mode, where it is edited: a
        structured prompt has its instruction for that, and keeps ``base.system``.
        """
        values = {name: self.query_one(f"#{name}", TextArea).text for name in FIELDS}
        mode = self.mode
        if mode == "conversation":
            values["system"] = self.query_one("#system", TextArea).text
        return base.replace(
            mode=mode,
            text=self.query_one("#freeform-text", TextArea).text,
            turns=tuple(self.query_one(TurnsEditor).turns),
            template="chat" if self.query_one("#chat", Checkbox).value else "plain",
            **values,
        )

    def set_spec(self, spec: PromptSpec) -> None:
        """Fill the fields from ``spec`` (e.g. ``--prompt`` or a session)."""
        for name in FIELDS:
            self.query_one(f"#{name}", TextArea).load_text(getattr(spec, name))
        self.query_one("#freeform-text", TextArea).load_text(spec.text)
        self.query_one("#system", TextArea).load_text(spec.system)
        self.query_one(TurnsEditor).set_turns(spec.turns)
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
        """Focus the field a user most likely types into (a conversation: its turns)."""
        mode = self.mode
        target = self.query_one("#turn-list") if mode == "conversation" else \
            self.query_one("#input" if mode == "structured" else "#freeform-text", TextArea)
        # This screen's own focus, at once: ``focus()`` is deferred and lands on whatever screen is
        # on top by then (a session opened onto the compare screen), leaving this screen's focus in
        # the hidden pane, whose TabPane.Focused then switches the tabs back.
        self.screen.set_focus(target)

    def append_reply(self, text: str) -> bool:
        """Continue the conversation: ``text`` (the model's reply) becomes the last assistant turn.

        In another mode the pane switches to Conversation first; if it has no turns yet, the prompt
        that was answered (the structured input or the free-form text) becomes the first user turn,
        so the reply follows what it replied to, and an empty system prompt takes the structured
        instruction and context. Returns False (and changes nothing) for an empty reply.
        """
        if not text.strip():
            return False
        turns = self.query_one(TurnsEditor)
        mode = self.mode
        if mode != "conversation":
            asked = self.query_one("#input" if mode == "structured" else "#freeform-text", TextArea).text
            if not turns.turns and asked.strip():
                turns.turns.append(Turn("user", asked))
            system = self.query_one("#system", TextArea)
            if mode == "structured" and not system.text.strip():
                parts = (self.query_one(f"#{name}", TextArea).text.strip() for name in ("instruction", "context"))
                system.load_text("\n\n".join(part for part in parts if part))
            self.query_one(TabbedContent).active = "conversation"
        turns.append(Turn("assistant", text))
        return True

    def show_count(self, text: str, level: str = "") -> None:
        """Token count line, e.g. "123 / 4096 tokens"; level "warn" or "over" colours it."""
        count = self.query_one("#prompt-count", Static)
        count.update(text)
        count.set_class(level == "warn", "-warn")
        count.set_class(level == "over", "-over")
        self._show_system_hint()

    def _show_system_hint(self) -> None:
        """Say in the empty system prompt what the model gets instead."""
        area = self.query_one("#system", TextArea)
        chat = self.query_one("#chat", Checkbox).value
        template = getattr(self.app, "chat_template", None)
        if not chat:
            hint, subtitle = "empty: no system line (plain completion)", ""
        elif not isinstance(template, ChatTemplate):
            hint, subtitle = "empty: the chat template's default, if it has one", ""
        elif (default := self._default_system(template)) is None:
            hint, subtitle = "empty: the chat template adds no system prompt", ""
        else:
            hint, subtitle = f"template default: {default}", "empty: template default"
        area.placeholder = hint
        area.border_subtitle = subtitle if not area.text else ""

    def _default_system(self, template: ChatTemplate) -> str | None:
        # Rendering the template twice per keystroke is wasteful: remember the last answer.
        if self._default_for is None or self._default_for[0] is not template:
            self._default_for = (template, template_default_system(template))
        return self._default_for[1]

    def on_mount(self) -> None:
        self._show_system_hint()

    @on(TextArea.Changed)
    @on(Checkbox.Changed)
    @on(TabbedContent.TabActivated)
    @on(TurnsEditor.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        self._show_system_hint()
        self.post_message(self.Changed())
