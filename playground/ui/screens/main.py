"""The playground screen: prompt, examples and sampler on the left; completion and analysis right."""

from __future__ import annotations

import time

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual import events
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from playground.compare.branch_tree import BranchTree
from playground.compare.events import LaneEvent
from playground.compare.job import LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.errors import PlaygroundError
from playground.events import DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import PromptSpec, RenderedPrompt, check_fits, render
from playground.sessions.record import utc_now
from playground.ui.run_driver import RunDriver
from playground.ui.run_record import RunRecord
from playground.ui.screens.example_editor import ExampleEditor
from playground.ui.screens.main_branches import BRANCH_ACTIONS, BRANCH_BINDINGS, BranchActions
from playground.ui.screens.main_sessions import SessionActions
from playground.ui.screens.rendered_prompt import RenderedPromptScreen
from playground.ui.session_io import token_text_for
from playground.ui.settings import AppSettings
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.constraint_panel import ConstraintPanel
from playground.ui.widgets.structured_view import StructuredView
from playground.ui.widgets.distribution import DistributionView
from playground.ui.widgets.examples_panel import ExamplesPanel
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.metrics import MetricsPanel
from playground.ui.widgets.prompt_panel import PromptPanel
from playground.ui.widgets.sampler_panel import SamplerPanel
from playground.workspace import Workspace

LEGEND = "[$prob-high]p≥.5[/] [$prob-mid]≥.2[/] [$prob-low]≥.05[/] [$prob-very-low]<.05[/]"


class MainScreen(SessionActions, BranchActions, Screen):
    """One prompt, one completion, everything about it."""

    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", priority=True, id="generate"),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+s", "save_session", "Save", priority=True, id="save_session"),
        Binding("ctrl+o", "open_session", "Open", priority=True, id="open_session"),
        # off the footer (room for 80 columns); in F1's panel and the palette
        Binding("ctrl+r", "show_rendered", "Rendered prompt", show=False, id="show_rendered"),
        Binding("ctrl+t", "toggle_template", "Chat/plain", show=False, id="toggle_template"),
        Binding("ctrl+y", "reply_to_turn", "Reply → turn", show=False, id="reply_to_turn"),
        Binding("f2", "focus_pane('prompt')", "Prompt", show=False, id="focus_prompt"),
        Binding("f3", "focus_pane('examples')", "Examples", show=False, id="focus_examples"),
        Binding("f4", "focus_pane('sampler')", "Sampler", show=False, id="focus_sampler"),
        Binding("f5", "focus_pane('completion')", "Completion", show=False, id="focus_completion"),
        Binding("f6", "switch_column", "Panes", id="switch_column"),
        *BRANCH_BINDINGS,  # while the completion has the focus (main_branches.py lists them)
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | generate | ctrl+g | Generate a completion. |
    | cancel | escape | Stop the running generation or replay (the partial output is kept). |
    | save_session | ctrl+s | Save prompt, examples, sampler and the last run to a session file. |
    | open_session | ctrl+o | Open a session file or a run from the history. |
    | show_rendered | ctrl+r | Show the exact rendered prompt and its token count. |
    | toggle_template | ctrl+t | Switch between plain completion and the chat template. |
    | reply_to_turn | ctrl+y | Append the shown reply to the conversation as an assistant turn (continue the chat). |
    | focus_* | f2..f5 | Focus the prompt, examples, sampler or completion pane. |
    | switch_column | f6 | Narrow terminals: switch between the editing panes and the output panes. |
    """

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self.settings = settings
        self.record = RunRecord()
        self._base_spec = settings.prompt
        self._status = ""
        self._note = ""
        self.driver = RunDriver(self._on_items, id="main-run")
        self.run_tree: BranchTree[RunRecord] = BranchTree()
        """The shown run and every branch made from it (``main_branches.py``)."""
        """Runs the current generation or replay (``ui/run_driver.py``)."""
        self.clean_spec: PromptSpec = settings.prompt
        """The prompt as last run, saved or opened (ctrl+q asks before dropping edits beyond it)."""

    # --- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        s = self.settings
        yield Static("", id="status")
        yield Static("", id="pane-tabs")
        with Horizontal(id="main"):
            with VerticalScroll(id="left"):  # scrolls on short terminals; focus scrolls into view
                yield PromptPanel(s.prompt, id="prompt")
                yield ExamplesPanel(s.prompt.examples, s.prompt.example_format, id="examples")
                yield SamplerPanel(s.sampler, s.max_tokens, stop=s.stop, max_tokens_limit=s.engine_choice.n_ctx,
                                   id="sampler")
                yield ConstraintPanel(check=self._check_constraint, id="constraint")
            with Vertical(id="right"):
                yield CompletionView("Type a prompt on the left, then press ctrl+g to generate.", id="completion")
                yield StructuredView(id="structured")
                with Horizontal(id="analysis"):
                    yield TokenInspector(id="inspector")
                    yield DistributionView(s.sampler, id="distribution")
                yield MetricsPanel(freeze_timings=s.freeze_timings, id="metrics")
        yield Footer()
        yield self.driver

    # --- the workspace (shared with the compare screen) -------------------------------------
    @property
    def workspace(self) -> Workspace:
        return self.app.workspace

    @property
    def sampler(self) -> SamplerParams:
        return self.workspace.sampler

    @sampler.setter
    def sampler(self, value: SamplerParams) -> None:
        self.workspace.sampler = value

    @property
    def max_tokens(self) -> int:
        return self.workspace.max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        self.workspace.max_tokens = value

    @property
    def stop(self) -> tuple[str, ...]:
        return self.workspace.stop

    @stop.setter
    def stop(self, value: tuple[str, ...]) -> None:
        self.workspace.stop = value

    @property
    def running(self) -> bool:
        """A generation or replay is going on."""
        return self.driver.running

    def sync_workspace(self) -> PromptSpec:
        """Put the panes' prompt into the workspace (the compare screen runs it); return it."""
        spec = self.current_spec()
        self.workspace.spec = spec
        return spec

    def on_screen_suspend(self) -> None:
        self.sync_workspace()

    def on_mount(self) -> None:
        self.query_one("#prompt").border_title = "Prompt"
        self.query_one("#sampler").border_title = "Sampler"
        completion = self.query_one(CompletionView)
        completion.border_title = "Completion  " + LEGEND
        self.query_one("#inspector").border_title = "Token"
        self.query_one("#distribution").border_title = "Next-token distribution · raw vs. current sliders"
        self.query_one("#metrics").border_title = "Metrics"
        self._show_tabs()
        self.clean_spec = self.sync_workspace()
        self._count_timer = None
        # The model may be loaded (or have failed) before this screen mounted: never cover that up.
        if self.app.backend_ready:
            self.call_later(self.model_ready)
        elif self.app.load_error is not None:
            self.load_failed(self.app.load_error)
        else:
            self.set_status("connecting…" if self.settings.endpoint is not None else "loading model…")
        self.query_one(PromptPanel).focus_prompt()
        if self.settings.freeze_timings:  # snapshots: a blinking cursor is a timing too
            for field in self.query("TextArea, Input"):
                field.cursor_blink = False
        loaded = self.settings.session
        if loaded is not None:
            self.call_after_refresh(self.show_session, loaded.session, loaded.path, self.settings.replay_speed)

    def set_status(self, text: str) -> None:
        """The status line: the model (or endpoint), then what is shown (``set_note``)."""
        self._status = text
        note = f" · [i]{escape(self._note)}[/i]" if self._note else ""
        self.query_one("#status", Static).update(text + note)

    def set_note(self, text: str) -> None:
        """What the completion shows when it is not a run made here, e.g. "session FILE"."""
        self._note = text
        self.set_status(self._status)

    # --- model -----------------------------------------------------------------------------
    @property
    def engine(self):
        return getattr(self.app, "engine", None)

    def model_ready(self) -> None:
        """Called by the app once the engine is loaded (or the remote backend is set up)."""
        self.set_status(self.app.model_line())
        self._update_count()
        self.query_one(SamplerPanel).mark_unsent(self.app.capabilities.sampler_params)
        if self.settings.run_at_start:
            self.settings.run_at_start = False
            self.action_generate()

    def load_failed(self, error: PlaygroundError) -> None:
        """Called by the app when the model (or the remote backend) could not be set up."""
        self.set_status(f"no model: {escape(error.message)}")
        self._update_count()

    # --- prompt ----------------------------------------------------------------------------
    def unsaved_edits(self) -> bool:
        """Whether the prompt differs from the one last run, saved or opened."""
        return self.current_spec() != self.clean_spec

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
        if self.settings.endpoint is not None:
            self._count_line = "tokens: not available from this backend"
            chat = self.settings.endpoint.mode == "chat"
            panel.show_count(("chat messages · " if chat else "") + self._count_line)
            return
        if engine is None:
            panel.show_count("tokens: no model" if self.app.load_error else "tokens: model loading…")
            return
        n = len(engine.model.tokenize(rendered.text, add_special=rendered.add_special)) if rendered.text else 0
        warning = check_fits(n, engine.model.n_ctx, self.max_tokens)
        level = "" if warning is None else ("over" if n + 1 > engine.model.n_ctx else "warn")
        # The numbers first: in a narrow pane the label is what gets cut, never "/ 4096".
        label = f" · {rendered.template_label}" if rendered.messages is not None else ""
        count = f"{n} / {engine.model.n_ctx} tokens"
        shown = f"{count} · {warning}" if warning and level == "warn" else count
        panel.show_count(shown + label, level)
        self._count_line = f"{n} / {engine.model.n_ctx} tokens"

    def action_show_rendered(self) -> None:
        self._update_count()
        self.app.push_screen(RenderedPromptScreen(self.rendered(), getattr(self, "_count_line", "")))

    def _check_constraint(self, constraint) -> None:
        """A schema or grammar compiled by the local model's llama.cpp (errors with line and column)."""
        if self.engine is not None and self.settings.endpoint is None:
            from playground.engine.constraint import check_constraint  # llama_cpp: not at start-up

            check_constraint(self.engine.model, constraint)

    def action_reply_to_turn(self) -> None:
        if self.running or not self.query_one(PromptPanel).append_reply(self.record.text):
            self.notify("No finished reply to append yet.", severity="warning")

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

    # --- narrow terminals: one column at a time --------------------------------------------
    @property
    def narrow(self) -> bool:
        return self.has_class("-narrow")

    def show_column(self, output: bool) -> None:
        """Narrow terminals: show the output panes (True) or the editing panes (False)."""
        if self.has_class("-show-output") != output:
            self.set_class(output, "-show-output")
            self._show_tabs()

    def _show_tabs(self) -> None:
        output = self.has_class("-show-output")
        edit_tab = "[reverse] Prompt · examples · sampler [/]" if not output else " Prompt · examples · sampler "
        out_tab = "[reverse] Completion · token · distribution [/]" if output else " Completion · token · distribution "
        self.query_one("#pane-tabs", Static).update(f"{edit_tab}│{out_tab}  [dim]F6 switches[/dim]")

    def action_switch_column(self) -> None:
        output = not self.has_class("-show-output")
        self.show_column(output)
        if output:
            self.query_one(CompletionView).focus()
        else:
            self.query_one(PromptPanel).focus_prompt()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "switch_column":
            return self.narrow  # shown in the footer only where it does something
        if action in BRANCH_ACTIONS:
            return self.branch_keys_active()
        return True

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_bindings()  # the footer's F6 follows the width

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # A pane of the hidden column got the focus (F2-F5, the palette): show its column.
        right = self.query_one("#right")
        self.show_column(right in event.widget.ancestors_with_self)

    # --- sampler ---------------------------------------------------------------------------
    @on(SamplerPanel.Changed)
    def _sampler_changed(self, event: SamplerPanel.Changed) -> None:
        self.sampler, self.max_tokens, self.stop = event.params, event.max_tokens, event.stops
        self.query_one(DistributionView).set_params(event.params)

    # --- generation ------------------------------------------------------------------------
    def action_generate(self) -> None:
        if self.running:
            self.notify("Already generating; escape cancels.", severity="warning")
            return
        if not self.app.backend_ready and self.app.load_error is not None:
            self.app.report(self.app.load_error)
            return
        if not self.app.backend_ready:
            self.settings.run_at_start = True  # start as soon as the model is there
            self.notify("The model is still loading; generation starts when it is ready.")
            return
        spec = self.sync_workspace()
        try:
            self.workspace.constraint = self.query_one(ConstraintPanel).current()  # a bad text: reported, kept
            request = self.workspace.request(self.app.chat_template)
        except PlaygroundError as exc:
            self.app.report(exc)
            return
        self.set_note("")
        if self.narrow and not self.has_class("-show-output"):  # the run is on the other column: go there
            self.show_column(output=True)
            self.query_one(CompletionView).focus()
        self.clean_spec = spec
        record = RunRecord(source="live", request=request, spec=spec,
                           backend=self.app.backend_spec(), started_utc=utc_now(), t_start=time.monotonic())
        self.run_tree.reset(record)
        self.run_request(request, record)

    def run_request(self, request: GenerationRequest, record: RunRecord) -> None:
        """Run ``request`` (one lane of the one run pipeline) into ``record``, shown as it streams."""
        self.begin_run(record)
        # Until the first token the model reads the prompt (long prompts take a while): say so.
        self.query_one(CompletionView).border_subtitle = "evaluating prompt…  (esc cancels)"
        self.set_status(self.app.model_line("evaluating prompt…"))
        # One lane of the one run pipeline: local or remote is the target's business, not ours.
        endpoint = self.settings.endpoint
        job = RunJob([LanePlan(request, LaneTarget(endpoint))], self.app.run_pool(), dist_size=self.settings.dist_size)
        self.driver.start_job(job, kind="generate")

    def begin_run(self, record: RunRecord) -> None:
        """Clear the completion and analysis panes for ``record``; the caller starts the driver."""
        if not any(b.payload is record for b in self.run_tree.branches):
            self.run_tree.reset(record)  # an opened session, a replay: a tree of its own
        self.record = record
        self.query_one(CompletionView).clear()
        self.query_one(TokenInspector).show(None)
        self.query_one(DistributionView).show(None)
        self.query_one(MetricsPanel).update(self.record)
        self.query_one(StructuredView).show(None)
        replaying = record.source == "replay"
        self.query_one(CompletionView).border_subtitle = "replaying…  (esc stops)" if replaying else ""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group in ("session-io", "history") and event.state == WorkerState.ERROR:  # never lost silently
            error = worker.error
            title = "Session file" if worker.group == "session-io" else "History"
            self.app.report(PlaygroundError(f"{type(error).__name__}: {error}", title=title))

    @on(RunDriver.Finished, "#main-run")
    def _run_finished(self, event: RunDriver.Finished) -> None:
        if event.driver.running:
            return  # a newer run started before this message arrived
        if event.error is not None and not self.record.finished:
            # The producer died outside the stream's own error handling: end the run visibly.
            error = event.error
            self._on_items([FailedEvent("Unexpected error", f"{type(error).__name__}: {error}", len(self.record.tokens))])
        elif not self.record.finished and event.stopped:
            self._stopped()

    def action_cancel(self) -> None:
        self.driver.cancel()

    def _on_items(self, items: list) -> None:
        """One frame of the run's items (stream events, or a job's ``LaneEvent``s)."""
        tokens: list[TokenEvent] = []
        for item in items:
            event = item.event if isinstance(item, LaneEvent) else item
            if not isinstance(event, (StartEvent, TokenEvent, DoneEvent, FailedEvent)):
                continue  # a job's batch figures: the metrics come from the events themselves
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
        elif self.record.source == "replay":
            total = len(self.record.lane.tokens)
            completion.border_subtitle = f"replaying… {len(self.record.tokens)}/{total}  (esc stops)"
        elif self.record.tokens:
            completion.border_subtitle = f"generating… {len(self.record.tokens)}/{self.max_tokens}  (esc cancels)"
            if tokens and len(self.record.tokens) == len(tokens):  # the first tokens of this run
                self.set_status(self.app.model_line("generating…"))

    def show_record(self, record: RunRecord) -> None:
        """Show a run that already ended (a branch moved to), as its own run showed it."""
        self.begin_run(record)
        self.query_one(CompletionView).append_events(record.tokens)
        self.query_one(MetricsPanel).update(record)
        undone = self.run_tree.shown is not None and self.run_tree.shown.payload is record and self.run_tree.shown.label == "undo"
        self._finish(keep=False, end_marker="[undone: n steps on from here]" if undone else None)

    def _finish(self, keep: bool = True, end_marker: str | None = None) -> None:
        if self.app.backend_ready:
            self.set_status(self.app.model_line())
        completion = self.query_one(CompletionView)
        record = self.record
        prefix = {"replay": "replay · ", "session": "session · "}.get(record.source, "")
        lane = record.lane
        if record.done is not None:
            done = record.done
            unsaved_end = lane is not None and lane.finish_reason is None
            if done.tail:
                completion.append_marker(done.tail)
            if end_marker is not None:
                completion.append_marker(end_marker)
            elif unsaved_end:
                completion.append_marker("[unfinished when saved]")
            elif done.finish_reason == "cancelled":
                completion.append_marker("[cancelled]")
            elif not record.tokens:
                completion.append_marker("[no output: the model ended the text at once]")
            reason = {"stop": "end of text", "length": "max tokens", "cancelled": "cancelled"}.get(done.finish_reason, done.finish_reason)
            if done.stop_string:
                reason = f"stop string {done.stop_string!r}"
            if unsaved_end:
                reason = "unfinished when saved"
            seed = f" · seed {done.seed}" if done.seed is not None else ""
            completion.border_subtitle = f"{prefix}done · {reason} · {done.n_tokens} tokens{seed}"
            self.query_one(SamplerPanel).show_seed_used(done.seed)
        elif record.failed is not None:
            failed = record.failed
            completion.append_marker(f"[interrupted: {failed.title}]")
            completion.border_subtitle = f"{prefix}failed after {len(record.tokens)} tokens (interrupted)"
            if record.source == "live":
                self.app.report(PlaygroundError(failed.message, title=failed.title))
            else:  # a recorded failure is part of the recording, not an error now
                self.set_note(f"{self._note} · the recorded run was interrupted: {failed.message}")
        else:
            completion.border_subtitle = f"{prefix}no run recorded"
        if completion.selected is None and record.tokens:
            self._inspect(len(record.tokens) - 1)
        end = record.done or record.failed
        constraint = record.request.constraint if record.request is not None else None
        if end is not None:
            self.query_one(StructuredView).show_run(
                constraint, record.text, record.done.finish_reason if record.done else "error",
                record.done.stop_string if record.done else None)
        if len(self.run_tree) > 1:
            completion.mark_branch_points(self.run_tree.branch_points())
            completion.border_subtitle = f"{completion.border_subtitle} · {self.branch_line()}"
        if keep:
            self.keep_in_history()

    def _stopped(self) -> None:
        """A replay (or a run whose worker was cancelled) ended before its last event."""
        if self.app.backend_ready:
            self.set_status(self.app.model_line())
        completion = self.query_one(CompletionView)
        completion.append_marker("[replay stopped]" if self.record.source == "replay" else "[stopped]")
        total = f" of {len(self.record.lane.tokens)}" if self.record.lane is not None else ""
        completion.border_subtitle = f"stopped after {len(self.record.tokens)}{total} tokens"
        if completion.selected is None and self.record.tokens:
            self._inspect(len(self.record.tokens) - 1)

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
        capabilities = self.app.capabilities if record.source == "live" else None
        self.query_one(TokenInspector).show(token, record.params, history, count=len(record.tokens),
                                            capabilities=capabilities)
        dist = self.query_one(DistributionView)
        dist.token_text = token_text_for(record, self.engine)
        dist.show(token.dist, history, chosen=token.id, position=index)

