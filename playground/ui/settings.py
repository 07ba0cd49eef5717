"""Everything the app starts from, gathered by the CLI (or a test) and handed to ``make_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.config import Config
from playground.engine_options import EngineChoice
from playground.errors import PlaygroundError
from playground.params import SamplerParams
from playground.prompt_builder import PromptSpec


@dataclass
class AppSettings:
    """Start-up settings of the TUI (no Textual here: the CLI builds it before importing the UI)."""

    config: Config = field(default_factory=Config)
    """The config file's settings (already merged into the fields below)."""
    engine_choice: EngineChoice = field(default_factory=EngineChoice)
    """Which model to load, and how."""
    sampler: SamplerParams = field(default_factory=SamplerParams)
    """Initial slider values."""
    max_tokens: int = 256
    """Initial max new tokens."""
    top_n: int = 10
    """Alternatives kept per token."""
    dist_size: int = 512
    """Head of the raw distribution kept per token (the live distribution view reshapes it)."""
    stop: tuple[str, ...] = ()
    """Stop strings."""
    prompt: PromptSpec = field(default_factory=PromptSpec)
    """Initial prompt."""
    run_at_start: bool = False
    """Start generating as soon as the model is loaded (``--run``)."""
    theme: str = "playground-dark"
    """Theme name."""
    freeze_timings: bool = False
    """Show wall-clock figures as "—" (snapshot tests)."""
    engine: Any = None
    """An already loaded Engine to use instead of loading ``engine_choice`` (tests, benchmarks)."""
    startup_errors: list[PlaygroundError] = field(default_factory=list)
    """Problems found before the app started (config, themes), reported once it has."""
    endpoint: Any = None
    """A remote ``backends.endpoints.Endpoint`` to generate with instead of the local model."""
    session: Any = None
    """A ``sessions.store.Loaded`` session to show at start (``playground open/replay FILE``)."""
    replay_speed: float | None = None
    """Stream ``session``'s recorded tokens at this speed (0 = at once); None shows it whole."""
    keep_history: bool = True
    """Keep every finished run in ``history_dir`` (``sessions.history``)."""

    @property
    def history_dir(self) -> Path:
        """Where finished runs are kept, and where ctrl+s and ctrl+o start (config ``history_dir``)."""
        return Path(self.config.history_dir).expanduser()
