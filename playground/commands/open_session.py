"""``playground open FILE``: the session in the TUI (prompt, examples, sliders, the recorded run).

``--summary`` (also the default when standard output is not a terminal) prints a summary instead,
and ``--json`` the session as current-version JSON, for scripts.
"""

from __future__ import annotations

import argparse
import sys

from playground.commands.output import Output
from playground.sessions import codec
from playground.sessions.store import load
from playground.sessions.summary import session_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    from playground.commands.tui import add_tui_options

    cmd = sub.add_parser("open", help="open a saved session in the TUI (or print a summary)")
    cmd.add_argument("file", help="a session file (.json)")
    cmd.add_argument("--summary", action="store_true",
                     help="print a summary instead of opening the TUI (the default when stdout is not a terminal)")
    cmd.add_argument("--json", action="store_true", help="print the session as current-version JSON")
    add_tui_options(cmd)


def run(args: argparse.Namespace) -> int:
    loaded = load(args.file)  # a bad file fails here, with one line, before any screen opens
    if args.json:
        Output().json(codec.encode(loaded.session))
    elif args.summary or not sys.stdout.isatty():
        Output().line(session_summary(loaded.session, source=str(loaded.path),
                              upgraded_from=loaded.file_version if loaded.upgraded else None))
    else:
        from playground.commands.tui import launch

        return launch(args, session=loaded)
    return 0
