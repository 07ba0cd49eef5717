"""The ``playground`` command line: the TUI by default, and headless sub-commands.

Each sub-command lives in ``playground/commands/NAME.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; register it in ``COMMANDS``. Imports are lazy so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from playground.cli_options import OneLineErrorParser
from playground.commands.output import EXIT_PIPE_CLOSED, discard, error_line
from playground.config import load_config
from playground.errors import PlaygroundError

#: sub-command name -> module under playground.commands
COMMANDS: dict[str, str] = {
    "generate": "generate",
    "bench": "bench",
    "compare": "compare",
    "open": "open_session",
    "sessions": "sessions",
    "replay": "replay",
    "eval": "evaluate",
    "tree": "tree",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="playground",
        description="A terminal prompt playground for language models. Without a command, opens the TUI "
        "(see 'playground --prompt TEXT --run', and 'playground tui --help' for its options).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    for name, module in COMMANDS.items():
        if only is None or only == name:
            importlib.import_module(f"playground.commands.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A lone surrogate (an undecodable argument, a server's broken text) prints as U+FFFD
        # instead of raising UnicodeEncodeError in the middle of a run.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    if argv and argv[0] in COMMANDS:
        name = argv[0]
    elif argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    else:
        name = "tui"
        argv = ["tui", *(argv[1:] if argv and argv[0] == "tui" else argv)]
    module = importlib.import_module(f"playground.commands.{COMMANDS.get(name, name)}")
    args = build_parser(only=name if name in COMMANDS else None).parse_args(argv) if name in COMMANDS else None
    try:
        # The one settings object: the config file read once, carried to the command on ``args``.
        config, config_errors = load_config()
        if args is None:
            return module.main(argv[1:], config, config_errors)
        for error in config_errors:  # headless: say so and go on with the defaults for that value
            error_line(f"{error.title}: {error.message} (using the default)")
        args.config, args.config_errors = config, config_errors
        return module.run(args)
    except PlaygroundError as exc:
        error_line(f"{exc.title}: {exc.message}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        discard(sys.stdout)
        return EXIT_PIPE_CLOSED  # the reader went away before the run (e.g. while loading)
    except Exception as exc:  # noqa: BLE001
        # A bug or an input we did not foresee: one line, not a traceback (PLAYGROUND_DEBUG=1 shows it).
        if os.environ.get("PLAYGROUND_DEBUG"):
            raise
        error_line(f"internal error: {type(exc).__name__}: {exc} (set PLAYGROUND_DEBUG=1 for the traceback)")
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
