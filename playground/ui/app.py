"""The Textual app: wiring, bindings, themes, model loading and error reporting. No flows here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from rich.markup import escape
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from playground.backends.base import Capabilities
from playground.backends.local import LocalBackend
from playground.compare.job import EnginePool
from playground.compare.mixed import model_key
from playground.config import Config
from playground.errors import PlaygroundError
from playground.locations import data_dir
from playground.prompt_builder import ChatTemplate, chat_template_of
from playground.sessions.record import backend_from_endpoint
from playground.sessions.schema import BackendSpec
from playground.themes import APP_VARIABLES
from playground.ui.input_order import InputOrder, is_input
from playground.ui.screens.main import MainScreen
from playground.ui.settings import AppSettings
from playground.ui.theming import install_themes
from playground.ui.ui_state import load_state, save_state
from playground.workspace import Workspace


QUIT_CONFIRM_S = 4.0
"""How long a first ctrl+q over unsaved edits waits for the second."""
START_FALLBACK_S = 0.25
"""Seconds after mount at which the backend starts even if the first refresh has not come."""


def screenshot_dir() -> Path:
    """Where "Save screenshot" writes: the Downloads folder if there is one, else the data folder."""
    downloads = Path("~/Downloads").expanduser()
    return downloads if downloads.is_dir() else data_dir() / "screenshots"


def as_load_error(exc: BaseException, title: str) -> PlaygroundError:
    """``exc`` as a PlaygroundError to report: a core error as it is, anything else named by its type."""
    if isinstance(exc, PlaygroundError):
        return exc
    return PlaygroundError(f"{type(exc).__name__}: {exc}", title=title)


class PlaygroundApp(App[int]):
    """A prompt playground: completion with probabilities, live sampler reshaping."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "playground"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-medium"), (150, "-wide")]
    """Width classes set on every screen (app.tcss and the compare screen lay out by them)."""
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    BINDINGS = [
        Binding("ctrl+q", "quit_checked", "Quit", priority=True, id="quit"),
        Binding("f1", "toggle_help", "Keys", id="help"),
        Binding("ctrl+l", "compare", "Compare", priority=True, id="compare"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | quit | ctrl+q | Quit (asks for a second ctrl+q when the prompt has edits never run or saved). |
    | help | f1 | Show (or hide) the keys of the focused pane. |
    | compare | ctrl+l | Switch between the main screen and the compare screen. |

    The main screen's bindings (generate, cancel, ...) are listed in ``MainScreen``; every id can
    be remapped in the ``[keymap]`` table of the config file.
    """

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self.settings = settings
        self.engine = settings.engine
        self.chat_template: ChatTemplate | None = None
        self._owns_engine = settings.engine is None
        self.remote = None
        """The remote Backend when ``settings.endpoint`` is set (then no local model is loaded)."""
        self.compare_engine = None
        """The compare screen's engine (several sequences); loaded by that screen, or given by a test."""
        self.owns_compare_engine = False
        self._backend_started = False
        self._quit_asked = -QUIT_CONFIRM_S
        self._input_order = InputOrder(self)
        self.load_error: PlaygroundError | None = None
        """Why the model (or the remote backend) is not there, once loading has failed."""
        self.workspace = Workspace(spec=settings.prompt, sampler=settings.sampler, max_tokens=settings.max_tokens,
                                   stop=settings.stop, top_n=settings.top_n)
        """What the user works on (prompt, examples, sampler, limits, lanes), shared by the screens."""
        self._pool: EnginePool | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes know nothing of probability colours: give them ours.
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        wanted = self.settings.theme
        remembered = load_state().get("theme")
        if remembered and wanted == Config().theme:  # neither --theme nor the config chose one
            wanted = remembered
        theme, errors = install_themes(self, wanted)
        self.theme = theme
        self._remembered_theme = remembered or theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self.settings.config.keymap:
            self.set_keymap(self.settings.config.keymap)
        self.push_screen(MainScreen(self.settings))
        for error in [*self.settings.startup_errors, *errors]:
            self.report(error)
        # After the first paint (importing llama_cpp holds the GIL long enough to delay it), but
        # never only then: on a busy CPU that refresh callback was seen never to run, leaving the app
        # on "loading model…" for good. The timer starts the load regardless; whichever comes first wins.
        self.call_after_refresh(self._start_backend)
        self.set_timer(START_FALLBACK_S, self._start_backend)

    def _start_backend(self) -> None:
        """Connect the remote backend, load the model, or adopt the given engine (once)."""
        if self._backend_started:
            return
        self._backend_started = True
        if self.settings.endpoint is not None:
            self._remote_ready()
        elif self.engine is None:
            # jinja2 here, before the loader thread imports llama_cpp (which imports it too): two
            # threads importing it at once were seen to fail ("partially initialized module").
            try:
                import jinja2.sandbox  # noqa: F401
            except ImportError:
                pass  # optional: prompt_builder says so when a chat template needs it
            self._load_engine()
        else:
            self._engine_ready(self.engine)

    async def on_event(self, event: events.Event) -> None:
        # Keys and pastes one at a time, in order (see input_order): fast input stays in its field.
        if not is_input(event) or not self.screen_stack:
            await super().on_event(event)
            return
        if self._input_order.hold(event):
            return
        target = self.focused or (self.screen if self.screen_stack else None)
        try:
            await super().on_event(event)
        finally:
            self._input_order.dispatched(target)

    def _remember_theme(self, theme) -> None:
        """A theme picked in the palette is the next start's theme too."""
        if theme.name == self._remembered_theme:
            return
        self._remembered_theme = theme.name
        try:
            save_state({"theme": theme.name})
        except OSError as exc:
            self.report(PlaygroundError(f"the theme choice was not remembered: {exc}", title="Theme"), "warning")

    # --- errors: the one place a PlaygroundError becomes a notification ----------------------
    def report(self, error: PlaygroundError, severity: SeverityLevel = "error") -> None:
        """Show a core error to the user (``severity`` "warning" for what did not stop the work)."""
        self.notify(error.message, title=error.title, severity=severity, timeout=10)

    # --- remote backend --------------------------------------------------------------------
    def _remote_ready(self) -> None:
        from playground.backends.factory import remote_backend

        try:
            self.remote = remote_backend(self.settings.endpoint)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it must be seen, not swallowed
            self._engine_failed(as_load_error(exc, "Backend not available"))
            return
        screen = self._main_screen()
        if screen is not None:
            screen.model_ready()

    @property
    def capabilities(self) -> Capabilities:
        """What the current backend gives (the local engine gives everything)."""
        return self.remote.capabilities if self.remote is not None else Capabilities()

    @property
    def backend_ready(self) -> bool:
        return self.remote is not None or self.engine is not None

    def backend_spec(self) -> BackendSpec | None:
        """A remote run's backend as session data (keyless); None for the local engine."""
        endpoint = self.settings.endpoint
        return backend_from_endpoint(endpoint) if endpoint is not None else None

    def run_pool(self) -> EnginePool:
        """The main screen's models for its run jobs: the app's engine (not the pool's to close)."""
        if self._pool is None:
            self._pool = EnginePool(self.settings.engine_choice)
        if self.engine is not None:
            have = self._pool.loaded().get(model_key(str(self.engine.model.file.path), ""))
            if have is None or have.engine is not self.engine:
                self._pool.adopt(LocalBackend(self.engine, owns_engine=False))
        return self._pool

    async def on_unmount(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self.remote is not None:
            await self.remote.aclose()
        if self.owns_compare_engine and self.compare_engine is not None:
            self.compare_engine.close()

    # --- compare screen --------------------------------------------------------------------
    def compare_screen(self):
        """The one compare screen (installed, so its lanes survive going back and forth)."""
        from playground.ui.screens.compare import CompareScreen

        if not self.is_screen_installed("compare"):
            self.install_screen(CompareScreen(self.settings), "compare")
        return self.get_screen("compare")

    def action_compare(self) -> None:
        """ctrl+l: to the compare screen, or back to the main screen."""
        if self.screen is self.compare_screen():
            self.pop_screen()
        elif isinstance(self.screen, MainScreen):
            self.push_screen("compare")

    async def show_compare(self, session, path: Path, speed: float | None = None) -> None:
        """Show a multi-lane session (``open``, ``replay``, ctrl+o) on the compare screen."""
        screen = self.compare_screen()
        if self.screen is not screen:
            await self.push_screen("compare", wait_for_dismiss=False)
        await screen.show_session(session, path, speed)

    async def show_records_side_by_side(self, records: list, title: str) -> None:
        """Runs of this session (e.g. two branches) as lanes on the compare screen."""
        from playground.ui.session_io import branches_session

        session = branches_session(self.workspace.spec, records, title)
        await self.show_compare(session, Path(title))

    # --- model -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load_engine(self) -> None:
        try:
            engine = self.settings.engine_choice.load()
        except Exception as exc:  # noqa: BLE001 - any failure must reach the screen, not a dead worker
            self.call_from_thread(self._engine_failed, as_load_error(exc, "Model not loaded"))
            return
        self.call_from_thread(self._engine_ready, engine)

    def _engine_ready(self, engine) -> None:
        self.engine = engine
        try:
            self.chat_template = chat_template_of(engine)
        except Exception as exc:  # noqa: BLE001 - plain completion still works without a template
            self.report(as_load_error(exc, "Chat template"), "warning")
        screen = self._main_screen()
        if screen is not None and screen.is_mounted:  # else its on_mount sees the engine
            screen.model_ready()

    def _engine_failed(self, error: PlaygroundError) -> None:
        self.load_error = error
        self.report(error)
        screen = self._main_screen()
        if screen is not None and screen.is_mounted:
            screen.load_failed(error)

    def _main_screen(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    # --- keys ------------------------------------------------------------------------------
    def action_toggle_help(self) -> None:
        """F1: the keys panel, or away with it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_quit_checked(self) -> None:
        """ctrl+q: quit, but not at once over prompt edits that were never run or saved."""
        screen = self._main_screen()
        now = time.monotonic()
        if screen is not None and screen.unsaved_edits() and now - self._quit_asked > QUIT_CONFIRM_S:
            self._quit_asked = now
            self.notify("The prompt has edits that were never run or saved. ctrl+q again quits; ctrl+s saves.",
                        title="Quit?", severity="warning", timeout=QUIT_CONFIRM_S)
            return
        self.exit()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save a screenshot; where the Downloads folder is missing, into the data folder instead."""
        if path is None:
            path = str(screenshot_dir())
        try:
            Path(path).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.report(PlaygroundError(f"cannot create {path}: {exc.strerror or exc}", title="Screenshot"))
            return None
        return super().deliver_screenshot(filename, path, time_format)

    @on(events.DeliveryFailed)
    def _screenshot_failed(self, event: events.DeliveryFailed) -> None:
        # Textual says only "Failed to save screenshot"; say why.
        if event.name == "screenshot":
            error = event.exception
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            self.report(PlaygroundError(f"the screenshot was not saved: {reason}", title="Screenshot"))

    def model_line(self, state: str = "ready") -> str:
        """One line naming the loaded model (or the remote endpoint), for the status bar."""
        endpoint = self.settings.endpoint
        if endpoint is not None:
            state = state if self.remote is not None else "not available"
            return f"[b]{escape(endpoint.model)}[/b] · {endpoint.kind} {endpoint.mode} at {escape(endpoint.label)} · {state}"
        if self.engine is None:
            return "no model"
        model = self.engine.model
        where = "GPU" if model.n_gpu_layers else "CPU"
        threads = f"{model.n_threads} thread" + ("s" if model.n_threads != 1 else "")
        if self.settings.freeze_timings:  # snapshots: nothing that depends on the machine
            return f"[b]{model.file.name}[/b] · ctx {model.n_ctx} · {state}"
        return f"[b]{model.file.name}[/b] · ctx {model.n_ctx} · {where} · {threads} · {state}"

    # --- command palette -------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield SystemCommand("Generate", "Generate a completion (ctrl+g)", screen.action_generate)
            yield SystemCommand("Cancel generation", "Stop the running generation (escape)", screen.action_cancel)
            yield SystemCommand("Show rendered prompt", "The exact prompt text and its token count (ctrl+r)",
                                screen.action_show_rendered)
            yield SystemCommand("Toggle chat template", "Plain completion or the model's chat template (ctrl+t)",
                                screen.action_toggle_template)
            yield SystemCommand("Save session", "Prompt, settings and the last run to a file (ctrl+s)",
                                screen.action_save_session)
            yield SystemCommand("Open session", "A saved session or a run from the history (ctrl+o)",
                                screen.action_open_session)
            yield SystemCommand("Compare", "Lanes side by side and self-consistency votes (ctrl+l)",
                                self.action_compare)
        elif type(screen).__name__ == "CompareScreen":
            yield SystemCommand("Run all lanes", "Run every lane on the main screen's prompt (ctrl+g)",
                                screen.action_run_all)
            yield SystemCommand("Add lane", "A copy of the selected lane (a)", screen.action_add_lane)
            yield SystemCommand("Remove lane", "Remove the selected lane (d)", screen.action_remove_lane)
            yield SystemCommand("Edit lane", "The selected lane's sampler settings (e)", screen.action_edit_lane)
            yield SystemCommand("Self-consistency vote", "N samples and a vote over their answers (v)",
                                screen.action_vote)
            yield SystemCommand("Back to main screen", "ctrl+l", self.action_compare)


def make_app(settings: AppSettings | None = None) -> PlaygroundApp:
    """The one factory used by the CLI, the tests and the benchmark."""
    return PlaygroundApp(settings or AppSettings())
