"""``playground generate``: one completion, streamed as text or as JSON lines."""

from __future__ import annotations

import argparse
import json
import signal
from dataclasses import replace
from pathlib import Path
from collections.abc import Iterable, Iterator
from dataclasses import replace

from playground import jsonlines
from playground.commands.output import Output, error_line
from playground.backends.endpoints import add_backend_options, endpoint_from_args, load_endpoints
from playground.cli_options import (
    add_constraint_options,
    add_chat_option,
    add_model_options,
    add_sampler_options,
    engine_choice_from_args,
    read_prompt,
    request_from_args,
)
from playground.compare.events import LaneEvent
from playground.constraint import Constraint, check_output
from playground.compare.job import EnginePool, LanePlan, RunJob
from playground.compare.mixed import LaneTarget
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, StreamEvent, TokenEvent
from playground.prompt_builder import PromptSpec, Turn, chat_request, chat_template_of, parse_turns, render
from playground.sessions.cli_recording import RunRecording, add_session_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="stream one completion (text, or JSON lines with --json)")
    gen.add_argument("prompt", nargs="?", help="the prompt; standard input when absent or '-'")
    add_model_options(gen)
    add_backend_options(gen)
    add_sampler_options(gen)
    add_chat_option(gen)
    add_constraint_options(gen)
    gen.add_argument("--system", metavar="TEXT", help="a system prompt: the prompt becomes a chat (implies --chat)")
    gen.add_argument("--chat-file", metavar="FILE.json", help="a conversation, a list of {role, content} (user / assistant); "
                     "the prompt, if given, is the next user turn (implies --chat)")
    gen.add_argument("--json", action="store_true", help="one JSON object per line: start, token..., done")
    force = gen.add_mutually_exclusive_group()
    force.add_argument("--force-prefix", metavar="TEXT", default=None,
                       help="continue from this completion prefix (local model): its tokens come first, marked "
                       '"forced" in --json, then the generated ones. TEXT is tokenized alone, without special '
                       "tokens: at the seam with the prompt it may split otherwise than the model would have "
                       "(give --force-prefix-ids for exact tokens)")
    force.add_argument("--force-prefix-ids", metavar="ID,ID,...", default=None, type=parse_ids,
                       help="the same with token ids (e.g. the ids of a --json run's tokens, to branch from one)")
    add_session_options(gen)


def run(args: argparse.Namespace) -> int:
    endpoint = endpoint_from_args(args, load_endpoints() if args.backend else None)
    if endpoint is not None and args.model:
        raise InvalidParameterError("give -m (a local model) or a remote backend, not both")
    conversation = _conversation(args)
    prompt = "" if conversation is not None and args.prompt is None else read_prompt(args.prompt)
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
        if conversation is not None:
            if prompt:
                conversation = conversation.replace(turns=conversation.turns + (Turn("user", prompt),))
            template = None if endpoint else chat_template_of(job.local_backend().engine)
            shown = render(conversation, template)
            request = replace(request, prompt=shown.text, add_special=shown.add_special, messages=shown.messages)
            job.with_requests([request])
        elif args.chat:
            request = chat_request(request, None if endpoint else job.local_backend().engine)
            job.with_requests([request])
        forced = forced_ids(args, endpoint, job)
        if forced:
            request = replace(request, force_ids=forced)
            job.with_requests([request])
        recording = RunRecording.from_args(args, request=request, endpoint=endpoint, prompt=conversation)
        events = job.stream()
        try:
            status = write_events(recording.tap(lane_events(events)), args.json, out, constraint=request.constraint)
        finally:
            events.close()  # before the engine is freed: its generator still holds the context
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
    recording.finish()
    return out.status or status


def parse_ids(text: str) -> tuple[int, ...]:
    """``ID,ID,...`` as token ids (argparse reports a bad one as a usage error)."""
    try:
        ids = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of token ids: {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"give one or more non-negative token ids: {text!r}")
    return ids


def forced_ids(args: argparse.Namespace, endpoint: object, job: RunJob) -> tuple[int, ...]:
    """The forced prefix's ids from ``--force-prefix-ids`` or ``--force-prefix`` (after ``prepare``).

    The text is tokenized on its own, as ``eval`` tokenizes an expected answer: without BOS and
    with special-token text kept as text (``parse_special=False``). The model might have split
    the prompt's end and the text's start differently had it generated them (a space carried by
    the next token, a merge across the seam); ``--force-prefix-ids`` is exact.
    """
    if args.force_prefix is None and args.force_prefix_ids is None:
        return ()
    if endpoint is not None:
        raise InvalidParameterError("--force-prefix needs the local model: a remote server cannot be teacher-forced")
    if args.force_prefix_ids is not None:
        return args.force_prefix_ids
    ids = job.local_backend().engine.model.tokenize(args.force_prefix, add_special=False, parse_special=False)
    if not ids:
        raise InvalidParameterError("--force-prefix is empty: nothing to continue from")
    return tuple(ids)


def _conversation(args: argparse.Namespace) -> PromptSpec | None:
    """The chat that --system / --chat-file describe (None: neither given)."""
    if args.system is None and args.chat_file is None:
        return None
    turns: tuple[Turn, ...] = ()
    if args.chat_file is not None:
        try:
            raw = json.loads(Path(args.chat_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidParameterError(f"{args.chat_file}: cannot read it ({exc})") from None
        try:
            turns = parse_turns(raw)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{args.chat_file}: {exc.message}") from None
    return PromptSpec(mode="conversation", system=args.system or "", turns=turns, template="chat")


def lane_events(items: Iterable[object]) -> Iterator[StreamEvent]:
    """The stream events of a one-lane job (its items are ``LaneEvent``s)."""
    for item in items:
        if isinstance(item, LaneEvent):
            yield item.event


def write_events(events: Iterable[StreamEvent], as_json: bool, out: Output | None = None,
                 constraint: Constraint | None = None) -> int:
    """Print a stream as text or JSON lines; 1 if it failed (the reason goes to stderr).

    Under a ``constraint`` the finished output is checked (``constraint.check_output``): with
    ``--json`` a last line ``{"event": "structured", "status": ..., "valid": ..., "reason": ...,
    "value": ...}``; as text, a line on stderr when it is not valid.
    """
    out = out or Output()
    status = 0
    text: list[str] = []
    for event in events:
        write_event(event, as_json, out)
        status = 1 if isinstance(event, FailedEvent) else status
        if constraint is None:
            continue
        if isinstance(event, TokenEvent):
            text.append(event.text)
        elif isinstance(event, (DoneEvent, FailedEvent)):
            done = isinstance(event, DoneEvent)
            check = check_output(constraint, "".join(text) + (event.tail if done else ""),
                                 event.finish_reason if done else "error", event.stop_string if done else None)
            if as_json:
                out.raw(jsonlines.dumps_obj({"event": "structured", "kind": constraint.kind, **check.to_dict()}) + "\n")
            elif check.status != "valid":
                error_line(f"structured output {check.status.replace('_', ' ')}: {check.reason}")
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
