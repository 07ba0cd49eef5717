"""The Textual app: wiring, bindings, themes, model loading and error reporting. No flows here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.markup import escape
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from playground.backends.base import Capabilities
from playground.errors import PlaygroundError
from playground.prompt_builder import ChatTemplate, chat_template_of
from playground.sessions.record import backend_from_endpoint
from playground.sessions.schema import BackendSpec
from playground.themes import APP_VARIABLES
from playground.ui.screens.main import MainScreen
from playground.ui.settings import AppSettings
from playground.ui.theming import install_themes


class PlaygroundApp(App[int]):
    """A prompt playground: completion with probabilities, live sampler reshaping."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "playground"

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("f1", "show_help_panel", "Keys", id="help"),
        Binding("ctrl+l", "compare", "Compare", priority=True, show=False, id="compare"),
    ]
    """
    | Id | Key(s) | Description |
    | :- | :- | :- |
    | quit | ctrl+q | Quit. |
    | help | f1 | Show the keys of the focused pane. |
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

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes know nothing of probability colours: give them ours.
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        theme, errors = install_themes(self, self.settings.theme)
        self.theme = theme
        if self.settings.config.keymap:
            self.set_keymap(self.settings.config.keymap)
        self.push_screen(MainScreen(self.settings))
        for error in [*self.settings.startup_errors, *errors]:
            self.report(error)
        if self.settings.endpoint is not None:
            self.call_after_refresh(self._remote_ready)
        elif self.engine is None:
            # after the first paint: importing llama_cpp holds the GIL long enough to delay it
            self.call_after_refresh(self._load_engine)
        else:
            self.call_after_refresh(self._engine_ready, self.engine)

    # --- errors: the one place a PlaygroundError becomes a notification ----------------------
    def report(self, error: PlaygroundError, severity: SeverityLevel = "error") -> None:
        """Show a core error to the user (``severity`` "warning" for what did not stop the work)."""
        self.notify(error.message, title=error.title, severity=severity, timeout=10)

    # --- remote backend --------------------------------------------------------------------
    def _remote_ready(self) -> None:
        from playground.backends.factory import remote_backend

        try:
            self.remote = remote_backend(self.settings.endpoint)
        except PlaygroundError as exc:
            self._engine_failed(exc)
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

    async def on_unmount(self) -> None:
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

    # --- model -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load_engine(self) -> None:
        try:
            engine = self.settings.engine_choice.load()
        except PlaygroundError as exc:
            self.call_from_thread(self._engine_failed, exc)
            return
        self.call_from_thread(self._engine_ready, engine)

    def _engine_ready(self, engine) -> None:
        self.engine = engine
        self.chat_template = chat_template_of(engine)
        screen = self._main_screen()
        if screen is not None:
            screen.model_ready()

    def _engine_failed(self, error: PlaygroundError) -> None:
        self.report(error)
        screen = self._main_screen()
        if screen is not None:
            screen.set_status(f"no model: {error.message}")

    def _main_screen(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    def model_line(self) -> str:
        """One line naming the loaded model (or the remote endpoint), for the status bar."""
        endpoint = self.settings.endpoint
        if endpoint is not None:
            state = "ready" if self.remote is not None else "not available"
            return f"[b]{escape(endpoint.model)}[/b] · {endpoint.kind} {endpoint.mode} at {escape(endpoint.label)} · {state}"
        if self.engine is None:
            return "no model"
        model = self.engine.model
        where = "GPU" if model.n_gpu_layers else "CPU"
        threads = f"{model.n_threads} thread" + ("s" if model.n_threads != 1 else "")
        if self.settings.freeze_timings:  # snapshots: nothing that depends on the machine
            return f"[b]{model.file.name}[/b] · ctx {model.n_ctx} · ready"
        return f"[b]{model.file.name}[/b] · ctx {model.n_ctx} · {where} · {threads} · ready"

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
