"""``playground`` with no command (or ``--prompt TEXT [--run]``): the interactive TUI.

``playground open FILE`` and ``playground replay FILE`` start it too, through ``launch``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from playground.backends.endpoints import add_backend_options, endpoint_from_args, load_endpoints
from playground.cli_options import (
    OneLineErrorParser,
    add_model_options,
    add_sampler_options,
    config_of,
    engine_choice_from_args,
    request_from_args,
)
from playground.config import Config, load_config
from playground.errors import InvalidParameterError, PlaygroundError
from playground.model_file import check_gguf
from playground.prompt_builder import PromptSpec


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="playground", description="Open the playground TUI.")
    parser.add_argument("--prompt", metavar="TEXT", help="open with this free-form prompt")
    parser.add_argument("--run", action="store_true", help="start generating at once (with --prompt)")
    template = parser.add_mutually_exclusive_group()
    template.add_argument("--chat", action="store_true", default=None,
                          help="render the prompt with the model's chat template (the default: instruct models expect it)")
    template.add_argument("--plain", action="store_true", default=None, help="plain completion: the prompt is used verbatim")
    add_tui_options(parser)
    add_sampler_options(parser)
    return parser


def add_tui_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """Options of the app itself: theme, local model (``model=False``: all but ``-m``), remote backend."""
    parser.add_argument("--theme", metavar="NAME", help="theme name (built-in, user theme, or a Textual theme)")
    add_model_options(parser, path=model)
    add_backend_options(parser)


def settings_from_args(args: argparse.Namespace, config: Config, errors: list[PlaygroundError], *,
                       session: Any = None, replay_speed: float | None = None):
    """Config defaults overridden by the command line -> AppSettings (imported lazily: no Textual).

    ``session`` (a ``sessions.store.Loaded``) is shown at start, or replayed at ``replay_speed``;
    options a command does not have count as not given.
    """
    from playground.ui.settings import AppSettings

    opt = lambda name: getattr(args, name, None)  # noqa: E731
    endpoint = None
    if hasattr(args, "backend"):
        endpoint = endpoint_from_args(args, load_endpoints() if opt("backend") else None)
    if endpoint is not None and opt("model"):
        raise InvalidParameterError("give -m (a local model) or a remote backend, not both")
    if opt("model"):  # a wrong path is a typo: say so on the command line, not inside the app
        check_gguf(Path(opt("model")).expanduser())
    args.config = config
    choice = engine_choice_from_args(args)
    choice = dataclasses.replace(choice, model_path=opt("model") or session_model(session) or config.model.path)
    gen = config.generation
    request = request_from_args(args, "-")
    prompt = PromptSpec()
    if opt("prompt") is not None:
        prompt = PromptSpec(mode="freeform", text=args.prompt)
    # Chat template by default: the embedded model is an instruct model and answers plain text badly.
    if not opt("plain"):
        prompt = prompt.replace(template="chat")
    return AppSettings(
        config=config,
        engine_choice=choice,
        sampler=request.sampler,
        max_tokens=request.max_tokens,
        top_n=request.top_n,
        dist_size=gen.dist_size,
        stop=request.stop,
        prompt=prompt,
        run_at_start=bool(opt("run") and opt("prompt")),
        theme=opt("theme") or config.theme,
        startup_errors=list(errors),
        endpoint=endpoint,
        session=session,
        replay_speed=replay_speed,
    )


def session_model(loaded: Any) -> str | None:
    """The local model file a session's first lane ran on, when it is on this machine."""
    lanes = loaded.session.lanes if loaded is not None else ()
    path = lanes[0].backend.model_path if lanes and lanes[0].backend.kind == "local" else None
    return path if path and Path(path).expanduser().is_file() else None


def launch(args: argparse.Namespace, *, session: Any = None, replay_speed: float | None = None) -> int:
    """Build the settings from the config ``cli.main`` loaded and ``args``, run the app; returns the
    exit status."""
    config = config_of(args)
    errors = list(getattr(args, "config_errors", None) or ())
    settings = settings_from_args(args, config, list(errors), session=session, replay_speed=replay_speed)
    from playground.ui.app import make_app

    result = make_app(settings).run()
    return result if isinstance(result, int) else 0


def main(argv: list[str], config: Config | None = None, errors: list[PlaygroundError] | None = None) -> int:
    """Parse options and run the app on the config ``cli.main`` read (read here when not given)."""
    args = build_parser().parse_args(argv)
    if config is None:
        config, errors = load_config()
    args.config, args.config_errors = config, list(errors or ())
    return launch(args)
