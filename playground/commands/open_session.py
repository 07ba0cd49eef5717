"""``playground open FILE``: load a session and print its summary (the TUI will open it later)."""

from __future__ import annotations

import argparse
import json

from playground.sessions import codec
from playground.sessions.store import load
from playground.sessions.summary import session_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("open", help="open a saved session (prints a summary for now)")
    cmd.add_argument("file", help="a session file (.json)")
    cmd.add_argument("--json", action="store_true", help="print the session as current-version JSON")


def run(args: argparse.Namespace) -> int:
    loaded = load(args.file)
    if args.json:
        print(json.dumps(codec.encode(loaded.session), ensure_ascii=False))
    else:
        print(session_summary(loaded.session, source=str(loaded.path),
                              upgraded_from=loaded.file_version if loaded.upgraded else None))
    return 0
