"""Structured output on remote servers: what each wire protocol can constrain, and how it is sent.

- OpenAI-compatible chat (``/chat/completions``): ``response_format`` of type ``json_schema``
  (``strict``: the server must enforce the schema, or refuse it). Grammars and choice lists have
  no OpenAI field; the legacy ``/completions`` endpoint has no structured output at all.
- llama.cpp's server (``/completion``): ``json_schema`` (the server converts it, as the local
  engine does) and ``grammar`` (GBNF); a choice list is sent as its grammar.
- Ollama (``/api/generate``, ``/api/chat``): ``format`` with the schema; no grammar.

A constraint a protocol cannot carry is refused before any request (``InvalidParameterError``),
never dropped: a run that was asked to be constrained is never silently run unconstrained.
"""

from __future__ import annotations

from typing import Any

from playground.constraint import KINDS, Constraint, bad_constraint, choices_gbnf

#: Constraint kinds each (kind, chat) can carry.
_SUPPORTED: dict[tuple[str, bool], frozenset[str]] = {
    ("openai", True): frozenset({"json_schema"}),
    ("openai", False): frozenset(),
    ("llamacpp", False): frozenset(KINDS),
    ("llamacpp", True): frozenset(KINDS),
    ("ollama", False): frozenset({"json_schema"}),
    ("ollama", True): frozenset({"json_schema"}),
}

_HINT = {
    ("openai", False): "the OpenAI completions endpoint has no structured output; use mode \"chat\" (a JSON schema) "
                       "or kind \"llamacpp\" (any constraint)",
    ("openai", True): "OpenAI chat takes only a JSON schema (response_format); use kind \"llamacpp\" for a grammar or "
                      "choice list, or the local model",
    ("ollama", False): "Ollama takes only a JSON schema (format); use kind \"llamacpp\" or the local model",
    ("ollama", True): "Ollama takes only a JSON schema (format); use kind \"llamacpp\" or the local model",
}


def supported(kind: str, chat: bool) -> frozenset[str]:
    """The constraint kinds a server of ``kind`` takes (``chat``: the chat endpoint)."""
    return _SUPPORTED.get((kind, chat), frozenset())


def constraint_fields(kind: str, chat: bool, constraint: Constraint | None) -> dict[str, Any]:
    """The body fields that carry ``constraint`` to a server of ``kind``; {} without one.

    Raises:
        InvalidParameterError: the protocol cannot carry this kind of constraint.
    """
    if constraint is None:
        return {}
    if constraint.kind not in supported(kind, chat):
        hint = _HINT.get((kind, chat), "")
        raise bad_constraint(f"this backend ({kind}{', chat' if chat else ''}) cannot constrain the output to a "
                             f"{constraint.label}{': ' + hint if hint else ''}")
    if kind == "openai":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "output", "schema": constraint.schema(), "strict": True}}}
    if kind == "ollama":
        return {"format": constraint.schema()}
    if constraint.kind == "json_schema":
        return {"json_schema": constraint.schema()}
    if constraint.kind == "choices":
        return {"grammar": choices_gbnf(constraint.choices)}
    return {"grammar": constraint.source}
