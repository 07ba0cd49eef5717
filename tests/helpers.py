"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

from playground.events import DoneEvent, FailedEvent, StartEvent, TokenEvent


def collect(events):
    """Split a stream into (start, tokens, end)."""
    start = None
    tokens: list[TokenEvent] = []
    end = None
    for event in events:
        if isinstance(event, StartEvent):
            start = event
        elif isinstance(event, TokenEvent):
            tokens.append(event)
        elif isinstance(event, (DoneEvent, FailedEvent)):
            end = event
    return start, tokens, end


CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
