"""The compare screen: 2-6 lanes of the main screen's prompt side by side, or N self-consistency samples.

A run is one ``compare.job.RunJob`` (the pipeline every command uses) run by the screen's
``RunDriver``: lanes on one local model decode together (the prompt once, one batched decode per
step), lanes with ``model=PATH`` or ``backend=NAME`` run on that model or endpoint, and the driver
hands the screen each frame's events. The lanes and the prompt are the app's ``Workspace``; the
lanes use their own engine (loaded once with room for ``MAX_SAMPLES`` + 1 sequences) so the main
screen's engine, its KV cache and its prefix reuse are never touched; other local models are
loaded once by the screen's ``EnginePool`` (in the run's worker) and kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Literal

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from playground.backends.base import Capabilities
from playground.backends.local import LocalBackend
from playground.compare.events import BatchDone, Divergence, LaneEvent, Vote
from playground.compare.job import EnginePool, LanePlan, RunJob, lane_targets
from playground.compare.mixed import LaneTarget
from playground.compare.lane_spec import LaneSpec, format_lane_spec
from playground.compare.lessons import confidence_gaps, gap_line, strongest_gap
from playground.compare.run import MAX_SAMPLES, sample_requests
from playground.engine.lanes import seq_max_for
from playground.errors import PlaygroundError
from playground.params import GenerationRequest, SamplerParams
from playground.ui.run_driver import RunDriver
from playground.ui.run_record import RunRecord
from playground.ui.screens.compare_forms import LaneEditScreen, VoteSetup, VoteSetupScreen
from playground.ui.screens.compare_save import CompareSaving, compare_recorder
from playground.ui.screens.compare_sessions import CompareSessions
from playground.ui.settings import AppSettings
from playground.ui.widgets.completion import CompletionView
from playground.ui.widgets.inspector import TokenInspector
from playground.ui.widgets.lane import LanePane
from playground.ui.widgets.lane_vote import VotePanel
from playground.workspace import Workspace

MIN_LANES, MAX_LANES = 2, 6
VOTE_DIST = 64
"""Raw-distribution head kept per token of a self-consistency sample (32 lanes x 512 would be heavy)."""

Mode = Literal["lanes", "vote"]
Where = tuple[str | None, str | None]
"""Where a lane runs: (backend name, model path); (None, None): the compare engine."""


def where_label(where: Where) -> str:
    """The lane header's note on where it runs ("" on the compare engine)."""
    backend, model = where
    return f"backend {backend}" if backend else f"model {model}" if model else ""


class CompareScreen(CompareSaving, CompareSessions, Screen):
    """Lanes side by side, the inspector for the focused lane's selected token, and the vote panel."""

    BINDINGS = [
        Binding("ctrl+g", "run_all", "Run all", priority=True, id="compare_run"),
        Binding("escape", "cancel_or_back", "Cancel/back", id="compare_cancel"),
        Binding("a", "add_lane", "Add lane", id="compare_add"),
        Binding("d", "remove_lane", "Remove lane", id="compare_remove"),
        Binding("e,enter", "edit_lane", "Edit lane", id="compare_edit"),
        Binding("v", "vote", "Self-consistency", id="compare_vote"),
        Binding("ctrl+s", "save_session", "Save", priority=True, id="compare_save"),
        Binding("ctrl+l", "app.compare", "Main screen", id="compare_back"),
        Binding("l", "lanes_mode", "Lanes", id="compare_lanes"),
        Binding("[", "select_lane(-1)", "Prev lane", show=False, id="compare_prev"),
        Binding("]", "select_lane(1)", "Next lane", show=False, id="compare_next"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | compare_run | ctrl+g | Run all lanes (or the N samples) on the main screen's prompt. |
    | compare_cancel | escape | Stop the run (or replay); when idle, back to the main screen. |
    | compare_add / compare_remove | a / d | Add a lane (the selected one with the next seed) / remove the selected lane. |
    | compare_edit | e, enter | Edit the selected lane's sampler settings. |
    | compare_vote | v | Self-consistency: N samples of the selected lane's settings and a vote. |
    | compare_lanes | l | Back to the lanes view. |
    | compare_save | ctrl+s | Save the last run (all lanes, or the samples and the vote), or an opened session. |
    | compare_prev / compare_next | [ / ] | Select the previous / next lane (tab also moves). |

    ctrl+l (the app's) switches between this screen and the main screen.
    """

    DEFAULT_CSS = """
    CompareScreen #compare-status { dock: top; height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    CompareScreen #lanes { height: 1fr; }
    CompareScreen #compare-bottom { height: 16; }
    CompareScreen.-vote #compare-bottom { height: 26; }
    CompareScreen #compare-inspector, CompareScreen #vote, CompareScreen #compare-summary {
        border: round $foreground 30%; border-title-color: $text-muted; background: $surface; }
    CompareScreen #compare-inspector { width: 1fr; max-width: 64; }
    CompareScreen #vote, CompareScreen #compare-summary { width: 1fr; }
    CompareScreen #compare-summary { padding: 0 1; height: 1fr; }
    /* short terminals: the lanes keep most of the rows; the inspector shrinks to its top lines */
    CompareScreen.-short #compare-bottom { height: 9; }
    CompareScreen.-short.-vote #compare-bottom { height: 11; }
    CompareScreen.-short VotePanel > #vote-histogram { max-height: 4; }
    CompareScreen.-short LanePane > .lane--head { max-height: 2; }
    """

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self.settings = settings
        self.pool = EnginePool(settings.engine_choice)
        """The compare engine and other local models named by lanes (loaded once, in the run worker)."""
        self.driver = RunDriver(self._on_items, id="compare-run")
        self.mode: Mode = "lanes"
        self.records: list[RunRecord] = []
        self.selected = 0
        """The selected lane (lanes mode) or sample (vote mode)."""
        self.batch: BatchDone | None = None
        self.divergences: dict[int, Divergence] = {}
        self.vote: Vote | None = None
        self.vote_setup: VoteSetup | None = None
        self.vote_params = self.lanes[-1].sampler
        """The samples' settings: the lane selected when the vote was set up."""
        self._lanes_view: tuple[list[RunRecord], dict[int, Divergence], BatchDone | None] = ([], {}, None)
        """The lanes' last run (records, divergences, batch), kept while a vote is shown."""
        self._run_when_ready = False
        self.ready = asyncio.Event()
        """Set once the first panes are mounted (a session shown at start waits for it)."""

    # --- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status")
        yield Horizontal(id="lanes")
        with Horizontal(id="compare-bottom"):
            yield TokenInspector(id="compare-inspector")
            yield VotePanel(id="vote")
            yield Static("", id="compare-summary")
        yield Footer()
        yield self.driver

    # --- the workspace's lanes -------------------------------------------------------------
    @property
    def workspace(self) -> Workspace:
        return self.app.workspace

    @property
    def lanes(self) -> list[LaneSpec]:
        """The lanes (each a sampler and where it runs), kept in the app's workspace."""
        return self.workspace.lanes

    @lanes.setter
    def lanes(self, value: list[LaneSpec]) -> None:
        self.workspace.lanes = list(value)

    @property
    def lane_params(self) -> list[SamplerParams]:
        return [lane.sampler for lane in self.lanes]

    @property
    def running(self) -> bool:
        """A run or replay is going on."""
        return self.driver.running

    async def on_mount(self) -> None:
        self.query_one("#compare-inspector").border_title = "Token · selected lane"
        self.query_one("#vote").border_title = "Self-consistency vote"
        self.query_one("#compare-summary").border_title = "Run"
        await self.rebuild()
        self.set_status()
        self.ready.set()
        if self.engine is None:
            self._load_engine()

    async def rebuild(self) -> None:
        """One pane per lane (lanes mode) or one pane for the selected sample (vote mode)."""
        container = self.query_one("#lanes", Horizontal)
        await container.remove_children()
        if self.mode == "lanes":
            panes = [LanePane(k, p, freeze_timings=self.settings.freeze_timings) for k, p in enumerate(self.lane_params)]
            for k, pane in enumerate(panes):
                pane.where = where_label(self.where(k))
                if k < len(self.records):
                    pane.record = self.records[k]
        else:
            record = self.records[self.selected] if self.records else RunRecord()
            pane = LanePane(self.selected, record.params or self.vote_params, kind="sample",
                            freeze_timings=self.settings.freeze_timings)
            pane.record = record
            panes = [pane]
        await container.mount_all(panes)
        for pane in panes:
            self._refill(pane)
        self.set_class(self.mode == "vote", "-vote")
        self.query_one("#vote").display = self.mode == "vote"
        self.query_one("#compare-summary").display = self.mode == "lanes"
        self.selected = min(self.selected, (len(self.lane_params) if self.mode == "lanes" else len(self.records) or 1) - 1)
        self._highlight()
        self._keep_focus()

    def _keep_focus(self) -> None:
        """Focus the selected pane when the focused widget went with the old panes.

        Without a focused widget the footer empties and the screen's keys (escape, F1, ctrl+p)
        stop until something is clicked.
        """
        focused = self.focused
        if focused is not None and focused.is_attached and focused.display:
            return
        panes = self.panes()
        if panes:
            pane = self.pane_of(self.selected) if self.mode == "lanes" else panes[0]
            (pane or panes[0]).completion.focus()

    def _refill(self, pane: LanePane) -> None:
        """Show what ``pane``'s record holds so far (after a rebuild or a sample switch)."""
        record = pane.record
        pane.completion.clear()
        if record.tokens:
            pane.completion.append_events(record.tokens)
        if self.mode == "lanes" and pane.index in self.divergences:
            pane.set_divergence(self.divergences[pane.index])
        self._mark_reference()
        pane.refresh_head()
        pane.refresh_metrics()

    def panes(self) -> list[LanePane]:
        return list(self.query(LanePane))

    def pane_of(self, lane: int) -> LanePane | None:
        return next((p for p in self.panes() if p.index == lane), None)

    def set_status(self, text: str = "") -> None:
        engine = self.engine
        if engine is None:
            model = "loading the compare engine…"
        else:
            model = f"[b]{escape(engine.model.file.name)}[/b] · ctx {engine.model.n_ctx} shared by all lanes"
        n = len(self.lane_params) if self.mode == "lanes" else len(self.records)
        noun = ("lane" if self.mode == "lanes" else "sample") + ("" if n == 1 else "s")
        what = f"{n} {noun}" if self.mode == "lanes" else f"self-consistency, {n} {noun}"
        extra = f" · {text}" if text else ""
        self.query_one("#compare-status", Static).update(f"Compare · {what} · {model}{extra}")

    # --- engine ----------------------------------------------------------------------------
    @property
    def engine(self):
        return getattr(self.app, "compare_engine", None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-load")
    def _load_engine(self) -> None:
        try:
            engine = self.settings.engine_choice.load(n_seq_max=seq_max_for(MAX_SAMPLES))
        except PlaygroundError as exc:
            self.app.call_from_thread(self.app.report, exc)
            return
        self.app.call_from_thread(self._engine_ready, engine)

    def _engine_ready(self, engine) -> None:
        self.app.compare_engine = engine
        self.app.owns_compare_engine = True
        self.set_status()
        if self._run_when_ready:
            self._run_when_ready = False
            self.action_run_all()

    def _pool(self) -> EnginePool:
        """The screen's pool, holding the compare engine (the app's to close) as its default."""
        engine = self.engine
        have = self.pool.loaded().get(self.pool.key(LaneTarget())) if self.pool._default else None
        if have is None or have.engine is not engine:
            self.pool.adopt(LocalBackend(engine, owns_engine=False))
        return self.pool

    # --- lanes -----------------------------------------------------------------------------
    def where(self, k: int) -> Where:
        lane = self.lanes[k] if k < len(self.lanes) else None
        return (lane.backend, lane.model) if lane is not None else (None, None)

    async def action_add_lane(self) -> None:
        if self._busy() or self.mode != "lanes":
            return
        if len(self.lanes) >= MAX_LANES:
            self.notify(f"At most {MAX_LANES} lanes.", severity="warning")
            return
        selected = self.lanes[self.selected]
        base = selected.sampler
        if base.is_greedy:  # a second greedy lane would only repeat it: a sampled lane instead
            new = SamplerParams(seed=len(self.lanes))
        else:  # a copy that samples differently
            new = base.replace(seed=base.seed + 1 if base.seed >= 0 else base.seed)
        self.lanes.append(dataclasses.replace(selected, sampler=new))
        self.records = []  # the lanes no longer match the last run
        self.divergences = {}
        self.selected = len(self.lanes) - 1
        await self.rebuild()
        self.set_status()

    async def action_remove_lane(self) -> None:
        if self._busy() or self.mode != "lanes":
            return
        if len(self.lanes) <= MIN_LANES:
            self.notify(f"At least {MIN_LANES} lanes.", severity="warning")
            return
        k = self.selected
        del self.lanes[k]
        if k < len(self.records):
            del self.records[k]
        self.divergences = {}
        self.selected = max(0, min(k, len(self.lanes) - 1))
        await self.rebuild()
        self.set_status()

    def action_edit_lane(self) -> None:
        if self._busy() or self.mode != "lanes":
            return
        k = self.selected

        def done(lane: LaneSpec | None) -> None:
            if lane is not None:
                self.lanes[k] = lane
                pane = self.pane_of(k)
                if pane is not None:
                    pane.set_params(lane.sampler, where_label(self.where(k)))

        self.app.push_screen(LaneEditScreen(f"lane {k + 1}", self.lanes[k].sampler, *self.where(k)), done)

    def action_select_lane(self, delta: int) -> None:
        panes = self.panes()
        if self.mode == "lanes" and panes:
            self.selected = (self.selected + delta) % len(panes)
            panes[self.selected].completion.focus()
            self._highlight()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        pane = next((a for a in event.widget.ancestors if isinstance(a, LanePane)), None)
        if pane is not None and self.mode == "lanes" and pane.index != self.selected:
            self.selected = pane.index
            self._highlight()

    def _highlight(self) -> None:
        for pane in self.panes():
            pane.select(self.mode == "vote" or pane.index == self.selected)
        self._inspect_selected()

    async def action_lanes_mode(self) -> None:
        if self._busy() or self.mode == "lanes":
            return
        self.mode, self.selected, self.vote = "lanes", 0, None
        self.records, self.divergences, self.batch = self._lanes_view  # the lanes' last run, as it was
        await self.rebuild()
        self.query_one("#compare-summary", Static).update(self.summary_text())
        self.set_status()

    def _busy(self) -> bool:
        if self.running:
            self.notify("A run is going on; escape stops it first.", severity="warning")
        return self.running

    # --- runs ------------------------------------------------------------------------------
    def _requests(self) -> list[GenerationRequest] | None:
        """The workspace's prompt and limits (as the main screen sends them), one request per lane or
        sample; None (reported) for an empty prompt or a bad setting."""
        try:
            if self.mode == "vote" and self.vote_setup is not None:
                base = self.workspace.request(self.app.chat_template, self.vote_params,
                                              empty_hint="type a prompt on the main screen first (ctrl+l)")
                return sample_requests(base, self.vote_setup.n)
            return self.workspace.lane_requests(self.app.chat_template)
        except PlaygroundError as exc:
            self.app.report(exc)
            return None

    async def action_run_all(self) -> None:
        if self._busy():
            return
        if self.engine is None:
            self._run_when_ready = True
            self.notify("The compare engine is loading; the run starts when it is ready.")
            return
        if self.mode != "vote" or self.vote_setup is None:
            self.mode = "lanes"
        requests = self._requests()
        if requests is None:
            return
        try:
            targets = lane_targets(self.lanes) if self.mode == "lanes" else [LaneTarget()] * len(requests)
        except PlaygroundError as exc:
            self.app.report(exc)
            return
        await self.start(requests, [RunRecord(source="live", request=r) for r in requests], targets)

    async def start(self, requests: list[GenerationRequest], records: list[RunRecord],
                    targets: list[LaneTarget]) -> None:
        self.records = records
        self.divergences, self.vote, self.batch = {}, None, None
        self.selected = 0 if self.mode == "vote" else min(self.selected, len(records) - 1)
        await self.rebuild()
        if self.mode == "vote":
            self.query_one(VotePanel).start(len(requests), self.vote_setup.extractor_name)
        extractor = self.vote_setup.extractor if self.mode == "vote" else None
        dist = min(self.settings.dist_size, VOTE_DIST) if self.mode == "vote" else self.settings.dist_size
        from playground.sessions.record import backend_from_endpoint

        backends = [backend_from_endpoint(t.endpoint) if t.endpoint is not None else None for t in targets]
        self.recorder = compare_recorder(self.workspace.spec, requests, dist,
                                         self.vote_setup if self.mode == "vote" else None,
                                         backends if any(b is not None for b in backends) else None)
        job = RunJob([LanePlan(r, t) for r, t in zip(requests, targets)], self._pool(), dist_size=dist,
                     diverge=extractor is None, extractor=extractor)
        self.set_status("running… (esc cancels)")
        # The recorder is fed in the worker thread, as `compare --save` records.
        self.driver.start_job(job, kind="compare", tap=self.recorder.feed_compare)

    def action_cancel_or_back(self) -> None:
        if self.running:
            self.driver.cancel()
        else:
            self.app.action_compare()

    @on(RunDriver.Finished, "#compare-run")
    def _run_finished(self, event: RunDriver.Finished) -> None:
        if event.driver.running:
            return  # a newer run started before this message arrived
        if event.error is not None:
            error = event.error
            message = error.message if isinstance(error, PlaygroundError) else f"{type(error).__name__}: {error}"
            self.app.report(PlaygroundError(message, title=getattr(error, "title", "Compare")))
        if event.kind == "session":
            return  # shown whole: show_session finished it already
        if event.kind == "replay" and self.records:
            self.finish_session(self.records[0].session, stopped=event.stopped)
        else:
            self.finish(stopped=event.stopped)
            self.keep_in_history()

    # --- events ----------------------------------------------------------------------------
    def _on_items(self, items: list) -> None:
        """One frame of the run's items: lane events, divergences, the vote, batch figures."""
        by_lane: dict[int, list] = {}
        for item in items:
            match item:
                case LaneEvent():
                    by_lane.setdefault(item.lane, []).append(item.event)
                case Divergence():
                    self.divergences[item.lane] = item
                case Vote():
                    self.vote = item
                case BatchDone():
                    self.batch = item
        for lane, lane_events in by_lane.items():
            pane = self.pane_of(lane)
            if pane is not None and pane.record is self.records[lane]:
                pane.feed(lane_events)
            else:
                for e in lane_events:
                    self.records[lane].add(e)
        for pane in self.panes():
            pane.refresh_metrics()
        if self.mode == "vote" and self.vote is None:
            done = sum(r.finished for r in self.records)
            self.set_status(f"{done}/{len(self.records)} samples done… (esc cancels)")
        self._inspect_selected(follow=True)

    def finish(self, stopped: bool = False) -> None:
        """The worker ended: show divergences, the vote and the batch figures."""
        for pane in self.panes():
            if self.mode == "lanes" and pane.index in self.divergences:
                pane.set_divergence(self.divergences[pane.index])
            pane.refresh_head()
            pane.refresh_metrics()
        self._mark_reference()
        if self.mode == "vote" and self.vote is not None:
            self.query_one(VotePanel).show_vote(self.vote, [r.text for r in self.records])
        self.query_one("#compare-summary", Static).update(self.summary_text())
        self.set_status("stopped" if stopped else "done")

    def _mark_reference(self) -> None:
        """Lane 1 carries the earliest divergence of any lane (where the lanes first part)."""
        ref = self.pane_of(0)
        if ref is None or self.mode != "lanes" or not self.divergences:
            return
        found = [d for d in self.divergences.values() if d.index is not None]
        if not found:
            ref.mark_first(None, "[$success]all lanes identical[/]")
            return
        first = min(found, key=lambda d: (d.index, d.lane))
        ref.mark_first(first.index, f"[$warning]first divergence at #{first.index}[/] (lane {first.lane + 1})")

    def summary_text(self) -> str:
        b = self.batch
        if b is None:
            return "[dim]ctrl+g runs all lanes together (prompt decoded once)[/dim]"
        rate = "—" if self.settings.freeze_timings or b.decode_tok_s is None else f"{b.decode_tok_s:.1f}"
        wall = "—" if self.settings.freeze_timings else f"{b.wall_s:.2f} s"
        text = (f"{b.n_lanes} lanes · prompt {b.prompt_tokens} tokens ({b.prompt_tokens_evaluated} evaluated, once)\n"
                f"{b.n_tokens} tokens in {b.n_steps} batched steps\naggregate decode {rate} tok/s · wall {wall}")
        return text + "".join(f"\n{escape(line)}" for line in self.lessons())

    def lessons(self) -> list[str]:
        """Per lane after the first: the shared token whose confidence differs most from lane 1's."""
        if self.mode != "lanes" or len(self.records) < 2:
            return []
        ref = self.records[0]
        out = []
        for k, record in enumerate(self.records[1:], start=1):
            div = self.divergences.get(k)
            gap = strongest_gap(confidence_gaps(record.tokens, ref.tokens, by_text=div is not None and div.by == "text"))
            if gap is not None:
                out.append(f"lane {k + 1} vs 1: {gap_line(gap)}")
        return out

    # --- selection and inspector -----------------------------------------------------------
    @on(CompletionView.Selected)
    def _token_selected(self, event: CompletionView.Selected) -> None:
        self._inspect_selected()

    def _inspect_selected(self, follow: bool = False) -> None:
        pane = self.pane_of(self.selected) if self.mode == "lanes" else next(iter(self.panes()), None)
        inspector = self.query_one(TokenInspector)
        if pane is not None:
            what = "sample" if self.mode == "vote" else "lane"
            inspector.border_title = f"Token · {what} {pane.index + 1}"
        if pane is None or not pane.record.tokens:
            if not follow:
                inspector.show(None)
            return
        record = pane.record
        index = pane.completion.selected
        index = len(record.tokens) - 1 if index is None or index >= len(record.tokens) else index
        live = record.source == "live"
        inspector.show(record.tokens[index], record.params, record.history(index), count=len(record.tokens),
                       capabilities=Capabilities() if live else None)

    @on(OptionList.OptionHighlighted, "#samples")
    async def _sample_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        k = event.option_index
        if self.mode != "vote" or not 0 <= k < len(self.records) or k == self.selected:
            return
        self.selected = k
        pane = next(iter(self.panes()), None)
        if pane is not None:
            pane.index = k
            pane.record = self.records[k]
            pane.set_params(self.records[k].params or self.vote_params)
            self._refill(pane)
            self._inspect_selected()

    # --- self-consistency ------------------------------------------------------------------
    def action_vote(self) -> None:
        if self._busy():
            return
        setup = self.vote_setup
        params = self.lane_params[self.selected] if self.mode == "lanes" else self.vote_params
        what = f"lane {self.selected + 1}" if self.mode == "lanes" else "the same"
        screen = VoteSetupScreen(f"{format_lane_spec(params)} ({what} settings)", *(
            (setup.n, setup.kind, setup.pattern or "") if setup else ()))

        async def done(result: VoteSetup | None) -> None:
            if result is not None:
                self.vote_setup, self.vote_params = result, params
                if self.mode == "lanes":  # the lanes and their last run come back with `l`
                    self._lanes_view = (self.records, self.divergences, self.batch)
                self.mode = "vote"
                await self.action_run_all()

        self.app.push_screen(screen, done)

    def on_unmount(self) -> None:
        if not self.running:  # a running worker may still use them; then the process end frees them
            self.pool.close()
