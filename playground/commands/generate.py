"""``playground generate``: one completion, streamed as text or as JSON lines."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from playground import jsonlines
from playground.cli_options import (
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.events import DoneEvent, FailedEvent, TokenEvent


def add_parser(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="stream one completion (text, or JSON lines with --json)")
    gen.add_argument("prompt", nargs="?", help="the prompt; standard input when absent or '-'")
    add_model_options(gen)
    add_sampler_options(gen)
    gen.add_argument("--json", action="store_true", help="one JSON object per line: start, token..., done")


def run(args: argparse.Namespace) -> int:
    prompt = read_prompt(args.prompt)
    request = request_from_args(args, prompt)
    engine = engine_choice_from_args(args).load()
    cancel = threading.Event()
    # First ctrl+c ends the run cleanly between two tokens (finish_reason "cancelled").
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    out = sys.stdout
    status = 0
    try:
        for event in engine.stream(request, cancel):
            if args.json:
                out.write(jsonlines.dumps(event) + "\n")
            elif isinstance(event, TokenEvent):
                out.write(event.text)
            elif isinstance(event, DoneEvent):
                out.write(event.tail + "\n")
            out.flush()
            if isinstance(event, FailedEvent):
                print(f"playground: {event.title}: {event.message} (after {event.n_tokens} tokens)", file=sys.stderr)
                status = 1
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    return status
