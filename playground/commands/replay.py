"""``playground replay FILE``: the recorded streams at their recorded timing, or ``--check`` them.

Without ``--check``/``--json``/``--print`` the replay streams into the TUI (the completion,
inspector and distribution view work on the replayed tokens); ``--print`` (also the default when
standard output is not a terminal) writes the text instead.

Exit status with ``--check``: 0 every lane identical, 1 some lane diverges, 2 it cannot run (a
different model file, a remote lane, a bad file).
"""

from __future__ import annotations

import argparse
import sys

from playground import jsonlines
from playground.commands.output import Output
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, TokenEvent
from playground.sessions.check import check_session
from playground.sessions.replay import replay, skipped_note
from playground.sessions.schema import Session
from playground.sessions.store import load
from playground.sessions.summary import lane_check_line, report_summary
from playground.terminal_text import inert_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("replay", help="replay a session's streams, or --check that they reproduce")
    cmd.add_argument("file", help="a session file (.json)")
    cmd.add_argument("--speed", type=float, default=1.0, metavar="X", help="4 = four times faster, 0 = instant (default 1)")
    cmd.add_argument("--check", action="store_true",
                     help="re-run every lane with its recorded settings and seed on the recorded model and compare; "
                          "exit 0 identical, 1 diverges, 2 cannot run")
    cmd.add_argument("--json", action="store_true", help="JSON lines (replay) or one JSON report (--check)")
    cmd.add_argument("--print", action="store_true", dest="print_text",
                     help="print the text instead of opening the TUI (the default when stdout is not a terminal)")
    cmd.add_argument("-m", "--model", metavar="PATH", default=None,
                     help="with --check: the model file to use (its sha256 must match the recorded one); "
                          "in the TUI: the model to load for new runs")
    from playground.commands.tui import add_tui_options

    add_tui_options(cmd, model=False)


def run(args: argparse.Namespace) -> int:
    loaded = load(args.file)
    session = loaded.session
    if args.check:
        return _check(session, args)
    if not (args.json or args.print_text or not sys.stdout.isatty()):
        from playground.commands.tui import launch

        if not args.speed >= 0:  # a bad speed fails on the command line, not inside the app
            raise InvalidParameterError("replay speed must be 0 (instant) or positive")
        return launch(args, session=loaded, replay_speed=args.speed)
    return _replay(session, args.speed, args.json)


def _check(session: Session, args: argparse.Namespace) -> int:
    on_lane = None if args.json else (lambda result: Output().line(lane_check_line(result)))
    report = check_session(session, model_override=args.model, on_lane=on_lane)
    if args.json:
        Output().json(report.to_dict())
    else:
        Output().line(report_summary(report).splitlines()[-1])
    return report.exit_code


def _replay(session: Session, speed: float, as_json: bool) -> int:
    out = Output()
    single = len(session.lanes) == 1
    for item in replay(session, speed):
        event = item.event
        if item.skipped_s > 0:  # a recorded pause longer than replay waits: say so, on stderr
            print(skipped_note(item), file=sys.stderr, flush=True)
        if as_json:
            out.raw(jsonlines.dumps(event, lane=None if single else item.lane) + "\n")
        elif single and isinstance(event, TokenEvent):
            out.text(event.text)
        elif isinstance(event, (DoneEvent, FailedEvent)):
            # Several lanes cannot share one text stream: each is printed whole when it ends.
            lane = session.lanes[item.lane]
            if not single:
                out.text(f"--- lane {item.lane}{' ' + lane.label if lane.label else ''} ---\n{lane.text}\n")
            else:
                out.text(lane.tail + "\n")
            if isinstance(event, FailedEvent):
                out.text(f"[interrupted: {inert_line(event.title)}: {inert_line(event.message)}]\n")
        if out.closed:
            break  # the reader went away: nothing is lost, a replay records nothing
    return out.status or 0
