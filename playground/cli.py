"""The ``playground`` command line: the TUI by default, and headless sub-commands.

Each sub-command lives in ``playground/commands/NAME.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; register it in ``COMMANDS``. Imports are lazy so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from playground.errors import PlaygroundError

#: sub-command name -> module under playground.commands
COMMANDS: dict[str, str] = {
    "generate": "generate",
    "bench": "bench",
    "compare": "compare",
    "open": "open_session",
    "sessions": "sessions",
    "replay": "replay",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad options give one clear line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


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
        if args is None:
            return module.main(argv[1:])
        return module.run(args)
    except PlaygroundError as exc:
        print(f"playground: {exc.title}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
