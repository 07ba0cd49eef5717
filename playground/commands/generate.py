"""``playground generate``: one completion, streamed as text or as JSON lines."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterable, Iterator

from playground import jsonlines
from playground.commands.output import Output, error_line
from playground.backends.endpoints import add_backend_options, endpoint_from_args, load_endpoints
from playground.cli_options import (
    add_chat_option,
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.compare.events import LaneEvent
from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, StreamEvent, TokenEvent
from playground.prompt_builder import chat_request
from playground.sessions.cli_recording import RunRecording, add_session_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="stream one completion (text, or JSON lines with --json)")
    gen.add_argument("prompt", nargs="?", help="the prompt; standard input when absent or '-'")
    add_model_options(gen)
    add_backend_options(gen)
    add_sampler_options(gen)
    add_chat_option(gen)
    gen.add_argument("--json", action="store_true", help="one JSON object per line: start, token..., done")
    add_session_options(gen)


def run(args: argparse.Namespace) -> int:
    endpoint = endpoint_from_args(args, load_endpoints() if args.backend else None)
    if endpoint is not None and args.model:
        raise InvalidParameterError("give -m (a local model) or a remote backend, not both")
    prompt = read_prompt(args.prompt)
    request = request_from_args(args, prompt)
    pool = EnginePool(engine_choice_from_args(args))
    # dist_size=top_n costs nothing extra and records each token's normaliser for replay.
    job = RunJob([LanePlan(request, LaneTarget(endpoint))], pool, dist_size=request.top_n)
    out = Output(on_close=job.cancel)
    # First ctrl+c ends the run cleanly (between two tokens locally; remote: the connection is
    # closed), with finish_reason "cancelled"; so does a reader that closes the pipe.
    previous = signal.signal(signal.SIGINT, lambda *_: job.cancel())
    try:
        job.prepare()
        if args.chat:
            request = chat_request(request, None if endpoint else job.local_backend().engine)
            job.with_requests([request])
        recording = RunRecording.from_args(args, request=request, endpoint=endpoint)
        events = job.stream()
        try:
            status = write_events(recording.tap(lane_events(events)), args.json, out)
        finally:
            events.close()  # before the engine is freed: its generator still holds the context
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
    recording.finish()
    return out.status or status


def lane_events(items: Iterable[object]) -> Iterator[StreamEvent]:
    """The stream events of a one-lane job (its items are ``LaneEvent``s)."""
    for item in items:
        if isinstance(item, LaneEvent):
            yield item.event


def write_events(events: Iterable[StreamEvent], as_json: bool, out: Output | None = None) -> int:
    """Print a stream as text or JSON lines; 1 if it failed (the reason goes to stderr)."""
    out = out or Output()
    status = 0
    for event in events:
        write_event(event, as_json, out)
        status = 1 if isinstance(event, FailedEvent) else status
    return status


def write_event(event: StreamEvent, as_json: bool, out: Output) -> None:
    """One event: a JSON line, or the token's text made inert for the terminal."""
    if as_json:
        out.raw(jsonlines.dumps(event) + "\n")
    elif isinstance(event, TokenEvent):
        out.text(event.text)
    elif isinstance(event, DoneEvent):
        out.text(event.tail + "\n")
    if isinstance(event, FailedEvent):
        error_line(f"{event.title}: {event.message} (after {event.n_tokens} tokens)")
