"""A session's prompt fields <-> ``prompt_builder.PromptSpec`` (what the prompt panes hold)."""

from __future__ import annotations

from typing import Any

from playground.prompt_builder import PromptSpec
from playground.sessions.schema import PromptParts, Session


def prompt_spec(session: Session) -> PromptSpec:
    """The panes' content saved in ``session`` (render it with ``prompt_builder.render``)."""
    p = session.prompt
    return PromptSpec(
        mode=p.mode,
        instruction=p.instruction,
        context=p.context,
        input=p.input,
        text=p.text,
        examples=session.examples,
        example_format=session.example_format,
        template=session.template_mode,
    )


def prompt_fields(spec: PromptSpec) -> dict[str, Any]:
    """Keyword arguments for ``Session`` / ``SessionRecorder`` from the panes' content."""
    return {
        "prompt": PromptParts(mode=spec.mode, text=spec.text, instruction=spec.instruction,
                              context=spec.context, input=spec.input),
        "examples": tuple(spec.examples),
        "example_format": spec.example_format,
        "template_mode": spec.template,
    }
