"""``playground sessions``: the run history, newest first."""

from __future__ import annotations

import argparse

from playground.cli_options import config_of
from playground.commands.output import Output
from playground.sessions.history import history_dir, list_history


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("sessions", help="list the history of runs (every finished run is kept)")
    cmd.add_argument("-n", "--limit", type=int, default=20, metavar="N", help="show the newest N (default 20; 0 = all)")
    cmd.add_argument("--dir", default=None, metavar="DIR",
                     help="history directory (default: the config's history_dir, else the data directory's sessions/)")
    cmd.add_argument("--json", action="store_true", help="one JSON object per session")


def run(args: argparse.Namespace) -> int:
    out = Output()
    folder = history_dir(args.dir or config_of(args).history_dir)
    entries = list_history(folder, args.limit or None)
    if args.json:
        for e in entries:
            s = e.session
            out.json({
                "path": str(e.path),
                "created": s.created if s else None,
                "kind": s.kind if s else None,
                "lanes": len(s.lanes) if s else None,
                "tokens": sum(len(lane.tokens) for lane in s.lanes) if s else None,
                "model": s.lanes[0].receipt.model_name if s and s.lanes else None,
                "prompt": e.preview,
                "error": e.error,
            })
        return 0
    if not entries:
        out.line(f"no sessions in {folder}")
        return 0
    for e in entries:
        s = e.session
        if s is None:
            out.line(f"{e.path.name}  (cannot load: {e.error})")
            continue
        tokens = sum(len(lane.tokens) for lane in s.lanes)
        out.line(f"{s.created or '?':20}  {s.kind:8}  {len(s.lanes)} lane(s)  {tokens:5} tok  {e.preview}")
        out.line(f"    {e.path}")
    return 0
