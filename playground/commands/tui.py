"""``playground`` with no command (or ``--prompt TEXT [--run]``): the interactive TUI."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from playground.cli_options import add_model_options, add_sampler_options, sampler_from_args
from playground.config import Config, load_config
from playground.engine_options import EngineChoice
from playground.errors import PlaygroundError
from playground.model_file import check_gguf
from playground.params import GenerationRequest
from playground.prompt_builder import PromptSpec


def build_parser() -> argparse.ArgumentParser:
    from playground.cli import OneLineErrorParser

    parser = OneLineErrorParser(prog="playground", description="Open the playground TUI.")
    parser.add_argument("--prompt", metavar="TEXT", help="open with this free-form prompt")
    parser.add_argument("--run", action="store_true", help="start generating at once (with --prompt)")
    parser.add_argument("--chat", action="store_true", default=None, help="render the prompt with the model's chat template")
    parser.add_argument("--theme", metavar="NAME", help="theme name (built-in, user theme, or a Textual theme)")
    add_model_options(parser)
    add_sampler_options(parser)
    return parser


def ui_threads() -> int:
    """CPU threads for the model under the TUI: all cores but one.

    The UI thread needs a core of its own; llama.cpp's worker threads spin at their barriers and
    slow down badly (several times over) when they compete with it for every core.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def settings_from_args(args: argparse.Namespace, config: Config, errors: list[PlaygroundError]):
    """Config defaults overridden by the command line -> AppSettings (imported lazily: no Textual)."""
    from playground.ui.settings import AppSettings

    m = config.model
    if args.model:  # a wrong path is a typo: say so on the command line, not inside the app
        check_gguf(Path(args.model).expanduser())
    choice = EngineChoice(
        model_path=args.model or m.path,
        n_ctx=args.ctx_size or m.ctx_size,
        n_gpu_layers=args.n_gpu_layers if args.n_gpu_layers is not None else m.gpu_layers,
        n_threads=args.threads or m.threads or ui_threads(),
    ).validate()
    gen = config.generation
    request = GenerationRequest(
        prompt="-",
        sampler=sampler_from_args(args, config.sampler),
        max_tokens=args.max_tokens if args.max_tokens is not None else gen.max_tokens,
        stop=tuple(args.stop or ()),
        top_n=args.top_n if args.top_n is not None else gen.top_n,
    ).validate()
    prompt = PromptSpec()
    if args.prompt is not None:
        prompt = PromptSpec(mode="freeform", text=args.prompt)
    if args.chat:
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
        run_at_start=bool(args.run and args.prompt),
        theme=args.theme or config.theme,
        startup_errors=list(errors),
    )


def main(argv: list[str]) -> int:
    """Parse options, read the config, run the app; returns the exit status."""
    args = build_parser().parse_args(argv)
    config, errors = load_config()
    settings = settings_from_args(args, config, list(errors))
    from playground.ui.app import make_app

    result = make_app(settings).run()
    return result if isinstance(result, int) else 0
