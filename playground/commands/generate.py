"""``playground generate``: one completion, streamed as text or as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Iterable

from playground import jsonlines
from playground.backends.endpoints import Endpoint, add_backend_options, endpoint_from_args, load_endpoints
from playground.cli_options import (
    add_chat_option,
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, StreamEvent, TokenEvent
from playground.params import GenerationRequest
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
    engine = engine_choice_from_args(args).load() if endpoint is None else None
    if args.chat:
        request = chat_request(request, engine)
    recording = RunRecording.from_args(args, request=request, endpoint=endpoint)
    cancel = threading.Event()
    if engine is None:
        # First ctrl+c ends the run cleanly and closes the connection (finish_reason "cancelled").
        previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
        try:
            status = asyncio.run(run_remote(endpoint, request, cancel, args.json, recording))
        finally:
            signal.signal(signal.SIGINT, previous)
        recording.finish()
        return status
    # First ctrl+c ends the run cleanly between two tokens (finish_reason "cancelled").
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        # dist_size=top_n costs nothing extra and records each token's normaliser for replay.
        status = write_events(recording.tap(engine.stream(request, cancel, dist_size=request.top_n)), args.json)
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    recording.finish()
    return status


async def run_remote(endpoint: Endpoint, request: GenerationRequest, cancel: threading.Event, as_json: bool,
                     recording: RunRecording | None = None) -> int:
    """The same output from a remote server; 1 if the stream failed."""
    from playground.backends.factory import remote_backend

    backend = remote_backend(endpoint)
    status = 0
    try:
        events = backend.stream(request, cancel)
        async for event in (recording.atap(events) if recording else events):
            write_event(event, as_json)
            status = 1 if isinstance(event, FailedEvent) else status
    finally:
        await backend.aclose()
    return status


def write_events(events: Iterable[StreamEvent], as_json: bool) -> int:
    """Print a stream as text or JSON lines; 1 if it failed (the reason goes to stderr)."""
    status = 0
    for event in events:
        write_event(event, as_json)
        status = 1 if isinstance(event, FailedEvent) else status
    return status


def write_event(event: StreamEvent, as_json: bool) -> None:
    out = sys.stdout
    if as_json:
        out.write(jsonlines.dumps(event) + "\n")
    elif isinstance(event, TokenEvent):
        out.write(event.text)
    elif isinstance(event, DoneEvent):
        out.write(event.tail + "\n")
    out.flush()
    if isinstance(event, FailedEvent):
        print(f"playground: {event.title}: {event.message} (after {event.n_tokens} tokens)", file=sys.stderr)
