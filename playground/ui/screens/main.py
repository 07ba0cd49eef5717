"""The playground screen: prompt, examples and sampler on the left; completion and analysis right."""

from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from playground.errors import PlaygroundError
from playground.events import FailedEvent, TokenEvent
from playground.params import GenerationRequest
from playground.prompt_builder import PromptSpec, RenderedPrompt, check_fits, render
from playground.ui.pump import EventPump
from playground.ui.run_record import RunRecord
from playground.ui.screens.example_editor import ExampleEditor
from playground.ui.screens.rendered_prompt import RenderedPromptScreen
from playground.ui.settings import AppSettings
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.examples_panel import ExamplesPanel
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.metrics import MetricsPanel
from playground.ui.widgets.prompt_panel import PromptPanel
from playground.ui.widgets.sampler_panel import SamplerPanel

FRAME_S = 1 / 30
"""How often streamed events are drained into the widgets (one batch per frame)."""

LEGEND = "[$prob-high]p≥.5[/] [$prob-mid]≥.2[/] [$prob-low]≥.05[/] [$prob-very-low]<.05[/]"


class MainScreen(Screen):
    """One prompt, one completion, everything about it."""

    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", priority=True, id="generate"),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+r", "show_rendered", "Rendered prompt", id="show_rendered"),
        Binding("ctrl+t", "toggle_template", "Chat/plain", id="toggle_template"),
        Binding("f2", "focus_pane('prompt')", "Prompt", show=False, id="focus_prompt"),
        Binding("f3", "focus_pane('examples')", "Examples", show=False, id="focus_examples"),
        Binding("f4", "focus_pane('sampler')", "Sampler", show=False, id="focus_sampler"),
        Binding("f5", "focus_pane('completion')", "Completion", show=False, id="focus_completion"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | generate | ctrl+g | Generate a completion. |
    | cancel | escape | Stop the running generation (the partial output is kept). |
    | show_rendered | ctrl+r | Show the exact rendered prompt and its token count. |
    | toggle_template | ctrl+t | Switch between plain completion and the chat template. |
    | focus_* | f2..f5 | Focus the prompt, examples, sampler or completion pane. |
    """

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self.settings = settings
        self.sampler = settings.sampler
        self.max_tokens = settings.max_tokens
        self.stop = settings.stop
        self.record = RunRecord()
        self.pump = EventPump()
        self._cancel = threading.Event()
        self._generating = False
        self._base_spec = settings.prompt

    # --- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        s = self.settings
        yield Static("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PromptPanel(s.prompt, id="prompt")
                yield ExamplesPanel(s.prompt.examples, s.prompt.example_format, id="examples")
                yield SamplerPanel(s.sampler, s.max_tokens, stop=s.stop, max_tokens_limit=s.engine_choice.n_ctx,
                                   id="sampler")
            with Vertical(id="right"):
                yield CompletionView("Type a prompt on the left, then press ctrl+g to generate.", id="completion")
                with Horizontal(id="analysis"):
                    yield TokenInspector(id="inspector")
                    yield DistributionView(s.sampler, id="distribution")
                yield MetricsPanel(freeze_timings=s.freeze_timings, id="metrics")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt").border_title = "Prompt"
        self.query_one("#sampler").border_title = "Sampler"
        completion = self.query_one(CompletionView)
        completion.border_title = "Completion  " + LEGEND
        self.query_one("#inspector").border_title = "Token"
        self.query_one("#distribution").border_title = "Next-token distribution · raw vs. current sliders"
        self.query_one("#metrics").border_title = "Metrics"
        self._drain_timer = self.set_interval(FRAME_S, self._drain, pause=True)
        self._count_timer = None
        self.set_status("loading model…")
        self.query_one(PromptPanel).focus_prompt()
        if self.settings.freeze_timings:  # snapshots: a blinking cursor is a timing too
            for field in self.query("TextArea, Input"):
                field.cursor_blink = False

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # --- model -----------------------------------------------------------------------------
    @property
    def engine(self):
        return getattr(self.app, "engine", None)

    def model_ready(self) -> None:
        """Called by the app once the engine is loaded."""
        self.set_status(self.app.model_line())
        self._update_count()
        if self.settings.run_at_start:
            self.settings.run_at_start = False
            self.action_generate()

    # --- prompt ----------------------------------------------------------------------------
    def current_spec(self) -> PromptSpec:
        return self.query_one(PromptPanel).spec(self._base_spec)

    def rendered(self) -> RenderedPrompt:
        return render(self.current_spec(), getattr(self.app, "chat_template", None))

    @on(PromptPanel.Changed)
    def _prompt_changed(self) -> None:
        self._schedule_count()

    @on(ExamplesPanel.Changed)
    def _examples_changed(self, event: ExamplesPanel.Changed) -> None:
        self._base_spec = self._base_spec.replace(examples=event.examples, example_format=event.example_format)
        self._schedule_count()

    @on(ExamplesPanel.EditRequested)
    def _edit_example(self, event: ExamplesPanel.EditRequested) -> None:
        panel = self.query_one(ExamplesPanel)

        def done(example) -> None:
            if example is not None:
                panel.put(event.index, example)
            panel.query_one("ListView").focus()

        self.app.push_screen(ExampleEditor(event.example, is_new=event.index is None), done)

    def _schedule_count(self, delay: float = 0.15) -> None:
        # Tokenizing on every keystroke is cheap, but rendering a template is not free: debounce.
        if self._count_timer is not None:
            self._count_timer.stop()
        self._count_timer = self.set_timer(delay, self._update_count)

    def _update_count(self) -> None:
        rendered = self.rendered()
        panel = self.query_one(PromptPanel)
        examples = self.query_one(ExamplesPanel)
        unused = " (unused in free-form)" if panel.mode == "freeform" else ""
        examples.border_title = examples.title() + unused
        engine = self.engine
        if engine is None:
            panel.show_count("tokens: model loading…")
            return
        n = len(engine.model.tokenize(rendered.text, add_special=rendered.add_special)) if rendered.text else 0
        warning = check_fits(n, engine.model.n_ctx, self.max_tokens)
        level = "" if warning is None else ("over" if n + 1 > engine.model.n_ctx else "warn")
        label = f"{rendered.template_label} · " if rendered.messages is not None else ""
        shown = warning if warning and level == "warn" else f"{n} / {engine.model.n_ctx} tokens"
        panel.show_count(label + shown, level)
        self._count_line = f"{n} / {engine.model.n_ctx} tokens"

    def action_show_rendered(self) -> None:
        self._update_count()
        self.app.push_screen(RenderedPromptScreen(self.rendered(), getattr(self, "_count_line", "")))

    def action_toggle_template(self) -> None:
        self.query_one(PromptPanel).toggle_template()

    def action_focus_pane(self, pane: str) -> None:
        if pane == "prompt":
            self.query_one(PromptPanel).focus_prompt()
        elif pane == "examples":
            self.query_one("#example-list").focus()
        elif pane == "sampler":
            self.query_one("#s-temperature").focus()
        else:
            self.query_one(CompletionView).focus()

    # --- sampler ---------------------------------------------------------------------------
    @on(SamplerPanel.Changed)
    def _sampler_changed(self, event: SamplerPanel.Changed) -> None:
        self.sampler, self.max_tokens, self.stop = event.params, event.max_tokens, event.stop
        self.query_one(DistributionView).set_params(event.params)

    # --- generation ------------------------------------------------------------------------
    def action_generate(self) -> None:
        if self._generating:
            self.notify("Already generating; escape cancels.", severity="warning")
            return
        if self.engine is None:
            self.settings.run_at_start = True  # start as soon as the model is there
            self.notify("The model is still loading; generation starts when it is ready.")
            return
        rendered = self.rendered()
        try:
            request = GenerationRequest(
                prompt=rendered.text, sampler=self.sampler, max_tokens=self.max_tokens, stop=self.stop,
                top_n=self.settings.top_n, add_special=rendered.add_special, messages=rendered.messages,
            ).validate()
            if not rendered.text:
                raise PlaygroundError("type a prompt first", title="Empty prompt")
        except PlaygroundError as exc:
            self.app.report(exc)
            return
        self.record = RunRecord()
        self.pump = EventPump()
        self._cancel = threading.Event()
        self._generating = True
        self.query_one(CompletionView).clear()
        self.query_one(TokenInspector).show(None)
        self.query_one(DistributionView).show(None)
        self.query_one(MetricsPanel).update(self.record)
        self.query_one(CompletionView).border_subtitle = "generating…  (esc cancels)"
        self._drain_timer.resume()
        self._generate(request)

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _generate(self, request: GenerationRequest) -> None:
        worker, pump, cancel = get_current_worker(), self.pump, self._cancel
        n = 0
        try:
            for event in self.engine.stream(request, cancel, dist_size=self.settings.dist_size):
                pump.put(event)
                n += isinstance(event, TokenEvent)
                if worker.is_cancelled:
                    cancel.set()
        except PlaygroundError as exc:
            pump.put(FailedEvent(exc.title, exc.message, n))
        except Exception as exc:  # noqa: BLE001 - shown to the user, partial output kept
            pump.put(FailedEvent("Unexpected error", f"{type(exc).__name__}: {exc}", n))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A worker that died outside the stream's own error handling still ends the run visibly.
        if event.worker.group == "generate" and event.state in (WorkerState.ERROR, WorkerState.SUCCESS):
            if event.state == WorkerState.ERROR:
                error = event.worker.error
                self.pump.put(FailedEvent("Unexpected error", f"{type(error).__name__}: {error}", len(self.record.tokens)))
            self._drain()

    def action_cancel(self) -> None:
        if self._generating:
            self._cancel.set()

    def _drain(self) -> None:
        events = self.pump.drain()
        if not events:
            return
        tokens: list[TokenEvent] = []
        for event in events:
            self.record.add(event)
            if isinstance(event, TokenEvent):
                tokens.append(event)
        completion = self.query_one(CompletionView)
        if tokens:
            completion.append_events(tokens)
            if completion.selected is None:
                self._inspect(len(self.record.tokens) - 1)
        self.query_one(MetricsPanel).update(self.record)
        if self.record.finished:
            self._finish()
        else:
            completion.border_subtitle = f"generating… {len(self.record.tokens)}/{self.max_tokens}  (esc cancels)"

    def _finish(self) -> None:
        self._generating = False
        self._drain_timer.pause()
        completion = self.query_one(CompletionView)
        record = self.record
        if record.done is not None:
            done = record.done
            if done.tail:
                completion.append_marker(done.tail)
            if done.finish_reason == "cancelled":
                completion.append_marker("[cancelled]")
            elif not record.tokens:
                completion.append_marker("[no output: the model ended the text at once]")
            reason = {"stop": "end of text", "length": "max tokens", "cancelled": "cancelled"}.get(done.finish_reason, done.finish_reason)
            if done.stop_string:
                reason = f"stop string {done.stop_string!r}"
            completion.border_subtitle = f"done · {reason} · {done.n_tokens} tokens · seed {done.seed}"
            self.query_one(SamplerPanel).show_seed_used(done.seed)
        elif record.failed is not None:
            failed = record.failed
            completion.append_marker(f"[interrupted: {failed.title}]")
            completion.border_subtitle = f"failed after {len(record.tokens)} tokens"
            self.app.report(PlaygroundError(failed.message, title=failed.title))
        if completion.selected is None and record.tokens:
            self._inspect(len(record.tokens) - 1)

    # --- selection -------------------------------------------------------------------------
    @on(CompletionView.Selected)
    def _selected(self, event: CompletionView.Selected) -> None:
        index = event.index if event.index is not None else len(self.record.tokens) - 1
        if 0 <= index < len(self.record.tokens):
            self._inspect(index)

    def _inspect(self, index: int) -> None:
        record = self.record
        token = record.tokens[index]
        history = record.history(index)
        self.query_one(TokenInspector).show(token, record.params, history, count=len(record.tokens))
        dist = self.query_one(DistributionView)
        if self.engine is not None:
            dist.token_text = self.engine.model.piece_text
        dist.show(token.dist, history, chosen=token.id, position=index)

    def on_unmount(self) -> None:
        self._cancel.set()  # the decode loop stops at the next token
