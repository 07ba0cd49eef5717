"""Turn what the prompt panes hold into the exact text the model sees (pure, no model needed).

A prompt is *structured* (instruction, context, few-shot examples, input), *free-form* (one text
used verbatim) or a *conversation* (a system prompt and user / assistant turns; an empty system
prompt leaves the template's default in place). Few-shot examples are rendered in every mode but
free-form. It is rendered either as a plain completion prompt or through the
model's chat template (the GGUF ``tokenizer.chat_template``, rendered with jinja2 when it is
installed). Without a usable template we fall back to ChatML and say so in ``template_label``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from playground.errors import InvalidParameterError
from playground.params import GenerationRequest

Mode = Literal["structured", "freeform", "conversation"]
Role = Literal["user", "assistant"]
TemplateMode = Literal["plain", "chat"]

DEFAULT_EXAMPLE_FORMAT = "Input: {input}\nOutput: {output}"
CHATML_LABEL = "ChatML fallback"

_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Example:
    """One few-shot example: an input and the output the model should imitate."""

    input: str
    output: str
    enabled: bool = True


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation."""

    role: Role
    content: str


def parse_turns(raw: object) -> tuple[Turn, ...]:
    """Turns from a list of ``{role, content}`` objects (a chat file, a variant's ``turns``).

    Raises:
        InvalidParameterError: not a list of such objects, or a role other than user / assistant
            (the system prompt is given on its own).
    """
    if not isinstance(raw, list):
        raise InvalidParameterError("a conversation is a list of {role, content} objects")
    turns = []
    for i, item in enumerate(raw):
        if not (isinstance(item, dict) and set(item) == {"role", "content"} and isinstance(item["content"], str)):
            raise InvalidParameterError(f"turn {i} must be {{role, content}} with a string content")
        if item["role"] not in ("user", "assistant"):
            raise InvalidParameterError(f"turn {i}: role must be \"user\" or \"assistant\" (got {item['role']!r}); "
                                        "give the system prompt on its own")
        turns.append(Turn(item["role"], item["content"]))
    return tuple(turns)


@dataclass(frozen=True)
class PromptSpec:
    """Everything the prompt and examples panes hold."""

    mode: Mode = "structured"
    """"structured" (instruction/context/examples/input), "freeform" (``text`` verbatim) or
    "conversation" (``system`` and ``turns``)."""
    instruction: str = ""
    """What to do; the system message in chat mode."""
    context: str = ""
    """Background the model may use; follows the instruction."""
    input: str = ""
    """The query the completion answers."""
    text: str = ""
    """The whole prompt in free-form mode."""
    system: str = ""
    """The system prompt; empty: the template's default (if it has one). In structured mode it
    comes before the instruction and context in the system turn."""
    turns: tuple[Turn, ...] = ()
    """The conversation so far (conversation mode); a reply is appended with ``append_reply``."""
    examples: tuple[Example, ...] = ()
    """Few-shot examples, in order; disabled ones are kept but not rendered."""
    example_format: str = DEFAULT_EXAMPLE_FORMAT
    """How an example (and the final input) is laid out in plain mode: ``{input}``, ``{output}``."""
    template: TemplateMode = "plain"
    """"plain" completion, or "chat" through the model's chat template."""

    def replace(self, **changes: Any) -> "PromptSpec":
        return dataclasses.replace(self, **changes)

    @property
    def shots(self) -> int:
        """How many examples are enabled (0 = zero-shot)."""
        return sum(1 for e in self.examples if e.enabled)


@dataclass(frozen=True)
class ChatTemplate:
    """The model's chat template and the special-token texts it may refer to."""

    source: str | None
    bos_token: str = ""
    eos_token: str = ""


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt as sent, plus how it was produced."""

    text: str
    messages: tuple[tuple[str, str], ...] | None = None
    """(role, content) pairs in chat mode; None for a plain prompt."""
    template_label: str = "plain completion"
    """Which template rendered it, e.g. "model chat template" or "ChatML fallback (...)"."""
    add_special: bool = True
    """Whether the tokenizer should add BOS (False when the template already wrote it)."""
    notes: tuple[str, ...] = field(default=())
    """Warnings worth showing (template failed, format lacks a placeholder, ...)."""


def shots_label(n: int) -> str:
    """zero-shot / one-shot / N-shot."""
    return {0: "zero-shot", 1: "one-shot"}.get(n, f"{n}-shot")


def format_example(fmt: str, example_input: str, example_output: str) -> str:
    """Fill ``{input}`` and ``{output}``; other braces are left alone (no str.format surprises)."""
    return fmt.replace("{input}", example_input).replace("{output}", example_output)


def query_block(fmt: str, text: str) -> str:
    """The format up to ``{output}`` with the input filled, trailing spaces trimmed.

    The trim matters: tokenizers attach a leading space to the next word, so a prompt ending in
    "Output: " makes the model's first token unnatural.
    """
    head = fmt.split("{output}", 1)[0]
    return head.replace("{input}", text).rstrip(" \t")


def append_reply(spec: PromptSpec, reply: str) -> PromptSpec:
    """``spec`` with the model's reply as the next assistant turn (a conversation goes on)."""
    if spec.mode != "conversation":
        raise InvalidParameterError("only a conversation takes the reply as a turn")
    return spec.replace(turns=spec.turns + (Turn("assistant", reply),))


def system_text(spec: PromptSpec) -> str:
    """The system turn's text: the system prompt, then (structured) instruction and context."""
    parts = [spec.system.strip()]
    if spec.mode == "structured":
        parts += [spec.instruction.strip(), spec.context.strip()]
    return "\n\n".join(part for part in parts if part)


def build_messages(spec: PromptSpec) -> list[tuple[str, str]]:
    """The chat turns for ``spec``: system (omitted when empty: the template's default applies),
    example turns, then the user input or the conversation's turns."""
    if spec.mode == "freeform":
        return [("user", spec.text)]
    messages: list[tuple[str, str]] = []
    system = system_text(spec)
    if system:
        messages.append(("system", system))
    for example in spec.examples:
        if example.enabled:
            messages.append(("user", example.input))
            messages.append(("assistant", example.output))
    if spec.mode == "conversation":
        messages += [(turn.role, turn.content) for turn in spec.turns]
    else:
        messages.append(("user", spec.input))
    return messages


def render_plain(spec: PromptSpec) -> str:
    """The plain completion prompt: blocks separated by blank lines, the query last."""
    if spec.mode == "freeform":
        return spec.text
    if spec.mode == "conversation":
        # No template: a transcript with role names, ending where the assistant speaks next.
        blocks = [f"System: {spec.system.strip()}" if spec.system.strip() else ""]
        blocks += [format_example(spec.example_format, e.input, e.output) for e in spec.examples if e.enabled]
        blocks += [f"{turn.role.capitalize()}: {turn.content}" for turn in spec.turns]
        return "\n\n".join(b for b in blocks + ["Assistant:"] if b)
    blocks = [spec.system.strip(), spec.instruction.strip(), spec.context.strip()]
    blocks += [
        format_example(spec.example_format, e.input, e.output) for e in spec.examples if e.enabled
    ]
    if spec.input or spec.shots:
        blocks.append(query_block(spec.example_format, spec.input))
    return "\n\n".join(b for b in blocks if b)


def render_chat(messages: Sequence[tuple[str, str]], template: ChatTemplate) -> tuple[str, str, list[str]]:
    """Render chat turns; returns (text, label, notes). Falls back to ChatML, labelled."""
    notes: list[str] = []
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # jinja2 is optional: say so rather than guess the model's format
        return _chatml(messages), f"{CHATML_LABEL} (jinja2 is not installed)", notes
    if not template.source:
        return _chatml(messages), f"{CHATML_LABEL} (the model has no chat template)", notes

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        text = env.from_string(template.source).render(
            messages=[{"role": r, "content": c} for r, c in messages],
            add_generation_prompt=True,
            bos_token=template.bos_token,
            eos_token=template.eos_token,
        )
    except Exception as exc:  # noqa: BLE001 - any template error means: fall back, visibly
        notes.append(f"the model's chat template failed ({exc}); used ChatML instead")
        return _chatml(messages), f"{CHATML_LABEL} (template error)", notes
    return text, "model chat template", notes


def _chatml(messages: Sequence[tuple[str, str]]) -> str:
    out = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
    return "".join(out) + "<|im_start|>assistant\n"


def render(spec: PromptSpec, template: ChatTemplate | None = None) -> RenderedPrompt:
    """Render ``spec`` for a model whose chat template is ``template`` (only used in chat mode)."""
    notes: list[str] = []
    if spec.mode == "structured" and spec.shots and "{output}" not in spec.example_format:
        notes.append("the example format has no {output} placeholder")
    if spec.template == "plain":
        return RenderedPrompt(render_plain(spec), notes=tuple(notes))
    messages = build_messages(spec)
    text, label, more = render_chat(messages, template or ChatTemplate(None))
    bos = (template.bos_token if template else "") or ""
    return RenderedPrompt(
        text,
        messages=tuple(messages),
        template_label=label,
        add_special=not (bos and text.startswith(bos)),
        notes=tuple(notes + more),
    )


def template_default_system(template: ChatTemplate) -> str | None:
    """The system prompt ``template`` writes when the messages carry none (what an empty system
    prompt means, to show it as such); None when it writes none or cannot be rendered."""
    user, system = "\x00user\x00", "\x00system\x00"
    bare, label, _ = render_chat([("user", user)], template)
    with_system, label2, _ = render_chat([("system", system), ("user", user)], template)
    if label != "model chat template" or label2 != label or user not in bare or system not in with_system:
        return None
    head, _, rest = with_system.partition(system)
    between = rest.split(user, 1)[0]
    before = bare.split(user, 1)[0]
    if len(before) > len(head) + len(between) and before.startswith(head) and before.endswith(between):
        return before[len(head):len(before) - len(between)]
    return None


def count_tokens(rendered: RenderedPrompt, tokenize: Callable[[str, bool], list[int]]) -> int:
    """Token count of the rendered prompt with the model's tokenizer ``tokenize(text, add_special)``."""
    return len(tokenize(rendered.text, rendered.add_special))


def check_fits(n_tokens: int, n_ctx: int, max_new: int) -> str | None:
    """A warning when the prompt plus the new tokens would overflow the context, else None."""
    if n_tokens + 1 > n_ctx:
        return f"the prompt ({n_tokens} tokens) does not fit the context ({n_ctx})"
    if n_tokens + max_new > n_ctx:
        return f"only {n_ctx - n_tokens} of {max_new} new tokens fit the context"
    return None


def validate_format(fmt: str) -> str:
    """Raise InvalidParameterError unless the format names ``{input}``; return it."""
    if "{input}" not in fmt:
        raise InvalidParameterError("the example format must contain {input}")
    return fmt


def chat_template_of(engine: Any) -> ChatTemplate:
    """The loaded model's chat template and the BOS/EOS texts it may use, from the GGUF metadata."""
    model = engine.model

    def token_text(key: str) -> str:
        value = model.meta(key)
        return model.piece_text(int(value)) if value and value.lstrip("-").isdigit() and int(value) >= 0 else ""

    return ChatTemplate(model.chat_template(), token_text("tokenizer.ggml.bos_token_id"),
                        token_text("tokenizer.ggml.eos_token_id"))


def chat_request(request: GenerationRequest, engine: Any | None) -> GenerationRequest:
    """``request`` as one user turn: rendered with the model's template for a local engine, and
    carried as messages for chat endpoints of remote servers."""
    messages = (("user", request.prompt),)
    if engine is None:
        return dataclasses.replace(request, messages=messages)
    rendered = render(PromptSpec(mode="freeform", text=request.prompt, template="chat"), chat_template_of(engine))
    return dataclasses.replace(request, prompt=rendered.text, add_special=rendered.add_special, messages=messages)
