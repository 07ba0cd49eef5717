"""What a session file holds, as typed frozen dataclasses (schema version 2).

A session is one prompt (its parts or a conversation, few-shot examples, example format and template
mode) and N lanes: a ``generate`` run is one lane, a comparison or a self-consistency vote several. A
lane of ``compare --variants`` also keeps its own prompt setup and its variant's name. Each lane keeps
its backend (as data, never a key), its sampler settings, its request (limits, a forced prefix, a
constraint), a reproducibility receipt and the full token trace. Field order here is the order in the
file; fields equal to their default are omitted, except those marked ``FULL`` (sampler settings and
the prompt format: their code defaults may change, a recorded run must not). ``SPARSE`` fields are
omitted at their default even inside a FULL value: their default is an absence (no forced prefix, no
constraint), never a setting that could change.

Probabilities a backend did not give are ``None`` and absent from the file, never invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from playground.constraint import Constraint
from playground.events import Alternative
from playground.params import SamplerParams
from playground.prompt_builder import DEFAULT_EXAMPLE_FORMAT, Example, Turn

SCHEMA_VERSION = 2

#: field metadata: write every field of this value, even those equal to their default
FULL = {"full": True}
#: field metadata: omit this field at its default even inside a FULL value (its default is "none")
SPARSE = {"sparse": True}

BackendKind = Literal["local", "openai", "ollama", "llamacpp"]
FinishReason = Literal["stop", "length", "cancelled", "error"]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PromptParts:
    """The prompt as the user wrote it: free-form text, instruction / context / input, or a
    conversation (the fields of ``prompt_builder.PromptSpec``; examples and format are the session's)."""

    mode: Literal["freeform", "structured", "conversation"] = "freeform"
    text: str = ""
    """The free-form prompt (mode "freeform")."""
    instruction: str = ""
    context: str = ""
    input: str = ""
    system: str = ""
    """The system prompt (conversation and structured chat prompts); empty: the template's default."""
    turns: tuple[Turn, ...] = ()
    """The conversation's user / assistant turns, in order (mode "conversation")."""


@dataclass(frozen=True)
class LanePrompt:
    """A lane's own prompt setup, when it is not the session's (a ``compare --variants`` lane)."""

    prompt: PromptParts = field(default_factory=PromptParts)
    examples: tuple[Example, ...] = ()
    example_format: str = field(default=DEFAULT_EXAMPLE_FORMAT, metadata=FULL)
    template_mode: Literal["plain", "chat"] = field(default="plain", metadata=FULL)


@dataclass(frozen=True)
class BackendSpec:
    """Which backend ran a lane, as data. Holds at most the *name* of the API key's variable."""

    kind: BackendKind = "local"
    model: str = ""
    """Model file name (local) or the server's model name (remote)."""
    model_path: str | None = None
    """Local only: the GGUF path; None = the embedded SmolLM2 (found again on any machine)."""
    name: str | None = None
    """The endpoint's name in the config (``[backends.NAME]``), when it came from there."""
    base_url: str | None = None
    endpoint: str | None = None
    """Remote only: which API was used, e.g. "completions" or "chat"."""
    api_key_env: str | None = None
    """Name of the environment variable holding the key (never the key)."""


@dataclass(frozen=True)
class RequestSettings:
    """The rest of the request: limits, stop strings, alternatives per token."""

    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_n: int = 10
    add_special: bool = True
    """Whether the tokenizer added BOS (a chat-templated prompt already carries it)."""
    force_ids: tuple[int, ...] = field(default=(), metadata=SPARSE)
    """Token ids given before anything was sampled (``GenerationRequest.force_ids``: a branch, a
    completion prefix); the trace holds them first, marked ``forced``; ``max_tokens`` counts after them."""
    constraint: Constraint | None = field(default=None, metadata=SPARSE)
    """The shape the output had to take (JSON schema, GBNF grammar, choice list); None: free."""


@dataclass(frozen=True)
class Receipt:
    """Everything needed to run the lane again and know it is the same run."""

    model_name: str = ""
    model_size: int | None = None
    model_sha256: str | None = None
    llama_cpp_python: str | None = None
    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    n_vocab: int | None = None
    seed: int | None = None
    """The seed actually used (a random seed is resolved before the run)."""
    prompt_text: str = ""
    """The fully rendered prompt that was sent."""
    prompt_tokens: tuple[int, ...] = ()
    prefill_chunk: int | None = None
    """Prompt tokens per decode in the engine's canonical schedule (part of the result); None: a
    recording from before the schedule was recorded (the prompt went in one batch of 512-token ubatches)."""


@dataclass(frozen=True)
class DistHead:
    """The head of the raw distribution kept for the distribution view (ids, log-probs at T = 1)."""

    ids: tuple[int, ...]
    logprobs: tuple[float, ...]


@dataclass(frozen=True)
class TokenRecord:
    """One generated token as recorded; the file writes each on one line."""

    i: int
    id: int
    text: str
    logprob: float | None = None
    p_sampled: float | None = None
    top: tuple[Alternative, ...] = ()
    """Alternatives, written compactly as ``[id, text, logprob]``."""
    t: float = 0.0
    """Seconds since the lane started when the token was ready."""
    n_candidates: int | None = None
    entropy: float | None = None
    log_z: float | None = None
    """Log normaliser of the raw logits (raw logit = logprob + log_z), for penalty maths on replay."""
    dist: DistHead | None = None
    forced: bool = False
    """Given (a forced prefix), not sampled: ``p_sampled`` and ``n_candidates`` are None."""
    constraint_mass_removed: float | None = None
    """Under a constraint: the raw probability of the tokens the grammar forbade at this step."""
    unconstrained_id: int | None = None
    """Under a constraint: the token the same sampler and seed would have taken without it, where
    that differs from ``id``."""
    unconstrained_text: str | None = None
    bad_values: tuple[str, ...] = ()
    """Names of this token's values that were NaN, infinite or impossible when it was saved (a
    damaged model, a broken server): stored as null (or dropped, for ``top``/``dist``), the token kept."""


@dataclass(frozen=True)
class Metrics:
    """A lane's timing as the backend measured it."""

    n_tokens: int = 0
    ttft_s: float | None = None
    prompt_tok_s: float | None = None
    decode_tok_s: float | None = None
    prompt_tokens_evaluated: int = 0
    """Fewer than the prompt's tokens means a cached prefix was reused."""
    elapsed_s: float | None = None
    """Start to end of the lane, as the recorder saw it."""


@dataclass(frozen=True)
class LaneError:
    title: str
    message: str


@dataclass(frozen=True)
class Lane:
    """One stream: its backend, settings, receipt, trace and outcome."""

    label: str = ""
    variant: str = ""
    """The name of the ``compare --variants`` variant the lane ran ("" : not a variant)."""
    prompt: LanePrompt | None = None
    """The lane's own prompt setup (variants); None: the session's. The text sent is the receipt's."""
    backend: BackendSpec = field(default_factory=BackendSpec)
    sampler: SamplerParams = field(default_factory=SamplerParams, metadata=FULL)
    """As requested (seed -1 = random); the seed used is in the receipt."""
    request: RequestSettings = field(default_factory=RequestSettings, metadata=FULL)
    messages: tuple[tuple[str, str], ...] | None = None
    """(role, content) pairs when a chat endpoint was sent messages."""
    receipt: Receipt = field(default_factory=Receipt)
    started: str = ""
    """Wall-clock start, ISO 8601 UTC."""
    offset_s: float = 0.0
    """When this lane started after the session's first lane (replay honours it)."""
    tokens: tuple[TokenRecord, ...] = ()
    metrics: Metrics = field(default_factory=Metrics)
    finish_reason: FinishReason | None = None
    """None: the lane had not finished when it was saved."""
    stop_string: str | None = None
    tail: str = ""
    """Pending bytes at the end (an incomplete character, shown as U+FFFD)."""
    interrupted: bool = False
    """The stream broke off (error or cut connection); the tokens kept are those received."""
    error: LaneError | None = None

    @property
    def text(self) -> str:
        """The completion as shown: every token's text, then the tail."""
        return "".join(tok.text for tok in self.tokens) + self.tail


@dataclass(frozen=True)
class Vote:
    """A self-consistency vote over the lanes' answers."""

    extractor: str
    """How answers were extracted: "regex", "last_number" or "json_field"."""
    pattern: str | None = None
    answers: tuple[str | None, ...] = ()
    """One per lane, None where nothing could be extracted."""
    majority: str | None = None
    agreement: float | None = None


@dataclass(frozen=True)
class Session:
    """One prompt and the lanes run on it."""

    schema_version: int = field(default=SCHEMA_VERSION, metadata=FULL)
    created: str = ""
    """ISO 8601 UTC."""
    kind: str = "generate"
    """"generate", "compare" or "vote": how the lanes were produced (informational)."""
    title: str = ""
    prompt: PromptParts = field(default_factory=PromptParts)
    examples: tuple[Example, ...] = ()
    example_format: str = field(default=DEFAULT_EXAMPLE_FORMAT, metadata=FULL)
    template_mode: Literal["plain", "chat"] = field(default="plain", metadata=FULL)
    lanes: tuple[Lane, ...] = ()
    vote: Vote | None = None
    trimmed: tuple[str, ...] = ()
    """What the writer cut or dropped to keep the file within ``limits`` (one line each, with the
    path), so that a reader knows the run is not whole there."""
