"""A session's prompt fields <-> ``prompt_builder.PromptSpec`` (what the prompt panes hold).

The session holds one prompt setup; a lane of ``compare --variants`` may hold its own
(``Lane.prompt``), which ``prompt_spec(session, lane)`` gives instead.
"""

from __future__ import annotations

from typing import Any

from playground.prompt_builder import PromptSpec
from playground.sessions.schema import LanePrompt, PromptParts, Session


def _spec(p: PromptParts, examples: Any, example_format: str, template: Any) -> PromptSpec:
    return PromptSpec(
        mode=p.mode,
        instruction=p.instruction,
        context=p.context,
        input=p.input,
        text=p.text,
        system=p.system,
        turns=p.turns,
        examples=examples,
        example_format=example_format,
        template=template,
    )


def prompt_spec(session: Session, lane_index: int | None = None) -> PromptSpec:
    """The panes' content saved in ``session`` (render it with ``prompt_builder.render``); with
    ``lane_index``, that lane's own prompt setup when it has one (a variant), else the session's."""
    if lane_index is not None and 0 <= lane_index < len(session.lanes):
        own = session.lanes[lane_index].prompt
        if own is not None:
            return _spec(own.prompt, own.examples, own.example_format, own.template_mode)
    return _spec(session.prompt, session.examples, session.example_format, session.template_mode)


def prompt_parts(spec: PromptSpec) -> PromptParts:
    """The prompt's parts as stored (examples, format and template are stored beside them)."""
    return PromptParts(mode=spec.mode, text=spec.text, instruction=spec.instruction, context=spec.context,
                       input=spec.input, system=spec.system, turns=tuple(spec.turns))


def prompt_fields(spec: PromptSpec) -> dict[str, Any]:
    """Keyword arguments for ``Session`` / ``SessionRecorder`` from the panes' content."""
    return {
        "prompt": prompt_parts(spec),
        "examples": tuple(spec.examples),
        "example_format": spec.example_format,
        "template_mode": spec.template,
    }


def lane_prompt(spec: PromptSpec) -> LanePrompt:
    """A lane's own prompt setup (``SessionRecorder.lane(prompt=...)``), from a variant's spec."""
    return LanePrompt(**prompt_fields(spec))
