"""Conversation prompts through the model's template equal llama.cpp's and llama-cpp-python's own
renderings of the same messages, with and without a system prompt."""

from __future__ import annotations

import ctypes

import llama_cpp
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from playground.errors import InvalidParameterError
from playground.prompt_builder import (
    PromptSpec, Turn, append_reply, chat_template_of, parse_turns, render, template_default_system,
)

TURNS = (Turn("user", "Hi, who are you?"), Turn("assistant", "A small model."), Turn("user", "Name a colour."))


def llama_cpp_apply(engine, messages) -> str:
    """llama.cpp's own ``llama_chat_apply_template`` with the model's GGUF template."""
    arr = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, (role, content) in enumerate(messages):
        r, c = role.encode(), content.encode()
        keep += [r, c]
        arr[i].role, arr[i].content = r, c
    tmpl = llama_cpp.llama_model_chat_template(engine.model.model, None)
    buf = ctypes.create_string_buffer(65536)
    n = llama_cpp.llama_chat_apply_template(tmpl, arr, len(messages), True, buf, len(buf))
    assert 0 < n < len(buf)
    return buf.raw[:n].decode()


def jinja_reference(engine, messages) -> str:
    """llama-cpp-python's own rendering of the GGUF template (an independent jinja2 setup)."""
    t = chat_template_of(engine)
    fmt = Jinja2ChatFormatter(t.source, eos_token=t.eos_token, bos_token=t.bos_token)
    return fmt(messages=[{"role": r, "content": c} for r, c in messages]).prompt


def test_conversation_with_a_system_prompt_equals_llama_cpp(engine):
    spec = PromptSpec(mode="conversation", system="You are a pirate.", turns=TURNS, template="chat")
    shown = render(spec, chat_template_of(engine))
    messages = [("system", "You are a pirate.")] + [(t.role, t.content) for t in TURNS]
    assert shown.template_label == "model chat template"
    assert shown.text == llama_cpp_apply(engine, messages) == jinja_reference(engine, messages)


def test_empty_system_prompt_falls_back_to_the_templates_default(engine):
    template = chat_template_of(engine)
    spec = PromptSpec(mode="conversation", system="  ", turns=TURNS, template="chat")
    shown = render(spec, template)
    messages = [(t.role, t.content) for t in TURNS]
    assert shown.messages == tuple(messages)  # no system turn is sent
    assert shown.text == jinja_reference(engine, messages)
    default = template_default_system(template)
    # the default is what the template writes by itself; llama.cpp's built-in ChatML has none
    assert default and default in shown.text and default not in llama_cpp_apply(engine, messages)
    with_default = render(spec.replace(system=default), template).text
    assert with_default == shown.text == llama_cpp_apply(engine, [("system", default)] + messages)


def test_examples_stay_available_and_replies_append(engine):
    from playground.prompt_builder import Example

    spec = PromptSpec(mode="conversation", turns=TURNS[:1], examples=(Example("2+2?", "4"), Example("off", "x", False)),
                      template="chat")
    shown = render(spec, chat_template_of(engine))
    assert [m for m in shown.messages] == [("user", "2+2?"), ("assistant", "4"), ("user", "Hi, who are you?")]
    grown = append_reply(spec, "A small model.")
    assert grown.turns[-1] == Turn("assistant", "A small model.")
    plain = render(grown.replace(template="plain")).text
    assert plain.endswith("Assistant: A small model.\n\nAssistant:") and "Input: 2+2?\nOutput: 4" in plain
    with pytest.raises(InvalidParameterError):
        append_reply(PromptSpec(), "x")


@pytest.mark.parametrize("raw", [{"role": "user"}, [{"role": "system", "content": "x"}], [{"role": "user", "content": 3}]])
def test_bad_turns_are_refused(raw):
    with pytest.raises(InvalidParameterError):
        parse_turns(raw)
