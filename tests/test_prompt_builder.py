"""Prompt rendering: structured/free-form, few-shot, plain/chat, and token counts with the real tokenizer."""

from __future__ import annotations

import builtins

import pytest

from playground.errors import InvalidParameterError
from playground.prompt_builder import (
    CHATML_LABEL,
    ChatTemplate,
    Example,
    PromptSpec,
    build_messages,
    check_fits,
    count_tokens,
    format_example,
    query_block,
    render,
    shots_label,
    validate_format,
)

CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def spec(**kw) -> PromptSpec:
    base = dict(instruction="Translate to French.", input="cheese",
                examples=(Example("dog", "chien"), Example("cat", "chat", enabled=False), Example("bread", "pain")))
    return PromptSpec(**{**base, **kw})


def test_plain_structured_layout_blocks_in_order():
    text = render(spec(context="Be brief.")).text
    assert text == (
        "Translate to French.\n\nBe brief.\n\n"
        "Input: dog\nOutput: chien\n\nInput: bread\nOutput: pain\n\n"
        "Input: cheese\nOutput:"
    )


def test_disabled_examples_are_left_out_and_counted():
    s = spec()
    assert s.shots == 2
    assert "cat" not in render(s).text
    assert [shots_label(n) for n in (0, 1, 2, 7)] == ["zero-shot", "one-shot", "2-shot", "7-shot"]


def test_query_ends_without_trailing_space():
    # a trailing space would make the model's first token an unnatural space-less word
    assert query_block("Q: {input}\nA: {output}", "x") == "Q: x\nA:"
    assert render(spec(example_format="Q: {input} => {output}", examples=())).text.endswith("Q: cheese =>")


def test_custom_format_and_literal_braces_survive():
    fmt = "<in>{input}</in> {json} <out>{output}</out>"
    assert format_example(fmt, "a", "b") == "<in>a</in> {json} <out>b</out>"
    assert render(spec(example_format=fmt)).text.splitlines()[-1] == "<in>cheese</in> {json} <out>"


def test_missing_output_placeholder_is_noted():
    assert render(spec(example_format="{input}")).notes
    with pytest.raises(InvalidParameterError):
        validate_format("Output: {output}")


def test_freeform_is_verbatim():
    text = "  Once upon a time\n"
    assert render(PromptSpec(mode="freeform", text=text, examples=(Example("a", "b"),))).text == text


def test_zero_shot_without_input_is_just_instruction():
    assert render(PromptSpec(instruction="Write a haiku.")).text == "Write a haiku."


def test_chat_messages_system_examples_user():
    messages = build_messages(spec(context="ctx"))
    assert messages == [
        ("system", "Translate to French.\n\nctx"),
        ("user", "dog"), ("assistant", "chien"),
        ("user", "bread"), ("assistant", "pain"),
        ("user", "cheese"),
    ]


def test_chat_renders_given_template_with_jinja():
    rendered = render(spec(template="chat"), ChatTemplate(CHATML_JINJA))
    assert rendered.template_label == "model chat template"
    assert rendered.text.startswith("<|im_start|>system\nTranslate to French.<|im_end|>\n")
    assert rendered.text.endswith("<|im_start|>user\ncheese<|im_end|>\n<|im_start|>assistant\n")
    assert rendered.messages is not None and rendered.messages[-1] == ("user", "cheese")


def test_bos_in_template_disables_tokenizer_bos():
    template = ChatTemplate("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", bos_token="<s>")
    rendered = render(spec(template="chat"), template)
    assert rendered.text.startswith("<s>") and rendered.add_special is False
    assert render(spec(template="chat"), ChatTemplate(CHATML_JINJA, bos_token="<s>")).add_special is True


def test_no_template_falls_back_to_chatml_labelled():
    rendered = render(spec(template="chat"), ChatTemplate(None))
    assert rendered.template_label.startswith(CHATML_LABEL)
    assert rendered.text == render(spec(template="chat"), ChatTemplate(CHATML_JINJA)).text


def test_broken_template_falls_back_with_a_note():
    rendered = render(spec(template="chat"), ChatTemplate("{% for m in messages %}{{ raise_exception('nope') }}{% endfor %}"))
    assert rendered.template_label.startswith(CHATML_LABEL) and "nope" in rendered.notes[0]


def test_without_jinja_the_fallback_says_so(monkeypatch):
    real_import = builtins.__import__

    def no_jinja(name, *args, **kwargs):
        if name.startswith("jinja2"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jinja)
    rendered = render(spec(template="chat"), ChatTemplate(CHATML_JINJA))
    assert "jinja2" in rendered.template_label and rendered.template_label.startswith(CHATML_LABEL)


def test_check_fits():
    assert check_fits(10, 100, 50) is None
    assert "only 40" in check_fits(60, 100, 50)
    assert "does not fit" in check_fits(100, 100, 1)


def test_model_template_and_token_count(engine):
    """The GGUF's own template renders; the count is the real tokenizer's."""
    model = engine.model
    source = model.chat_template()
    assert source, "the embedded SmolLM2 ships a chat template"
    rendered = render(spec(template="chat"), ChatTemplate(source))
    assert rendered.template_label == "model chat template"
    assert "<|im_start|>user\ncheese<|im_end|>" in rendered.text  # SmolLM2's template is ChatML
    assert rendered.text.endswith("<|im_start|>assistant\n")
    n = count_tokens(rendered, lambda text, special: model.tokenize(text, add_special=special))
    assert n == len(model.tokenize(rendered.text, add_special=rendered.add_special)) > 10
    # special tokens are parsed as one token each, not spelled out
    im_start = model.tokenize("<|im_start|>", add_special=False)
    assert len(im_start) == 1
    assert model.tokenize(rendered.text, add_special=False).count(im_start[0]) == rendered.text.count("<|im_start|>")
