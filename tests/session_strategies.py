"""Hypothesis strategies for valid sessions (every value within what the schema allows)."""

from __future__ import annotations

from hypothesis import strategies as st

from playground.constraint import Constraint
from playground.events import Alternative
from playground.params import DEFAULT_SAMPLERS, LogitBias, SamplerParams
from playground.prompt_builder import Example, Turn
from playground.sessions.schema import (
    BackendSpec,
    DistHead,
    Lane,
    LaneError,
    LanePrompt,
    Metrics,
    PromptParts,
    Receipt,
    RequestSettings,
    Session,
    TokenRecord,
    Vote,
)

# Any code point, lone surrogates included: the writer must cope with them too.
text = st.text(st.characters(exclude_categories=()), max_size=12)
plain_text = st.text(max_size=12)
logprob = st.floats(-60.0, 0.0)
prob = st.floats(0.0, 1.0)
small_float = st.floats(0.0, 1e4)
env_name = st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True)
sha = st.text("0123456789abcdef", min_size=64, max_size=64)
token_id = st.integers(0, 200_000)


samplers = st.builds(
    SamplerParams,
    temperature=st.floats(0.0, 2.0),
    top_k=st.integers(0, 200),
    top_p=st.floats(0.01, 1.0),
    min_p=st.floats(0.0, 1.0),
    repeat_penalty=st.floats(0.1, 3.0),
    repeat_last_n=st.integers(-1, 512),
    seed=st.integers(-1, 2**32 - 1),
    greedy=st.booleans(),
    typical_p=st.floats(0.01, 1.0),
    top_n_sigma=st.floats(-1.0, 10.0),
    xtc_probability=st.floats(0.0, 1.0),
    dry_multiplier=st.floats(0.0, 5.0),
    dry_sequence_breakers=st.lists(text.filter(bool), max_size=3).map(tuple),
    presence_penalty=st.floats(-2.0, 2.0),
    mirostat=st.sampled_from([0, 1, 2]),
    logit_bias=st.lists(st.builds(LogitBias, bias=st.floats(-100.0, 100.0), token=token_id)
                        | st.builds(LogitBias, bias=st.floats(-100.0, 100.0), text=text.filter(bool)),
                        max_size=2).map(tuple),
    samplers=st.lists(st.sampled_from(DEFAULT_SAMPLERS), max_size=9).map(tuple),
)

constraints = (
    st.lists(plain_text.filter(bool), min_size=1, max_size=3, unique=True).map(Constraint.of_choices)
    | st.builds(Constraint, kind=st.just("grammar"), source=plain_text.filter(lambda t: t.strip() and "\x00" not in t))
    | st.just(Constraint("json_schema", '{"type": "object"}'))
)
turns = st.lists(st.builds(Turn, role=st.sampled_from(["user", "assistant"]), content=text), max_size=3).map(tuple)
prompt_parts = st.builds(PromptParts, mode=st.sampled_from(["freeform", "structured", "conversation"]), text=text,
                         instruction=text, context=text, input=text, system=text, turns=turns)
examples = st.lists(st.builds(Example, input=text, output=text, enabled=st.booleans()), max_size=3).map(tuple)

local_backends = st.builds(BackendSpec, kind=st.just("local"), model=plain_text,
                           model_path=st.none() | plain_text)
remote_backends = st.builds(
    BackendSpec,
    kind=st.sampled_from(["openai", "ollama"]),
    model=plain_text,
    model_path=st.none(),
    name=st.none() | plain_text,
    base_url=st.none() | st.just("http://127.0.0.1:8080/v1"),
    endpoint=st.none() | st.sampled_from(["completions", "chat"]),
    api_key_env=st.none() | env_name,
)

receipts = st.builds(
    Receipt,
    model_name=plain_text,
    model_size=st.none() | st.integers(0, 2**40),
    model_sha256=st.none() | sha,
    llama_cpp_python=st.none() | st.just("0.3.36"),
    n_ctx=st.none() | st.integers(1, 1 << 17),
    n_threads=st.none() | st.integers(1, 256),
    n_gpu_layers=st.none() | st.integers(0, 999),
    n_vocab=st.none() | st.integers(1, 300_000),
    seed=st.none() | st.integers(0, 2**32 - 1),
    prompt_text=text,
    prompt_tokens=st.lists(token_id, max_size=8).map(tuple),
)

alternatives = st.builds(Alternative, id=token_id, text=text, logprob=logprob)


@st.composite
def token_lists(draw: st.DrawFn) -> tuple[TokenRecord, ...]:
    times = sorted(draw(st.lists(small_float, max_size=6)))
    out = []
    for i, t in enumerate(times):
        ids = draw(st.lists(token_id, max_size=4))
        dist = draw(st.none() | st.just(DistHead(tuple(ids), tuple(draw(logprob) for _ in ids))))
        out.append(TokenRecord(
            i=i,
            id=draw(token_id),
            text=draw(text),
            logprob=draw(st.none() | logprob),
            p_sampled=draw(st.none() | prob),
            top=tuple(draw(st.lists(alternatives, max_size=3))),
            t=t,
            n_candidates=draw(st.none() | st.integers(1, 200_000)),
            entropy=draw(st.none() | small_float),
            log_z=draw(st.none() | st.floats(-1e3, 1e3)),
            dist=dist,
            forced=draw(st.booleans()),
            constraint_mass_removed=draw(st.none() | prob),
            unconstrained_id=draw(st.none() | token_id),
            unconstrained_text=draw(st.none() | text),
            bad_values=tuple(draw(st.lists(st.sampled_from(["logprob", "p_sampled", "top", "t", "entropy"]),
                                           max_size=2, unique=True))),
        ))
    return tuple(out)


lanes = st.builds(
    Lane,
    label=plain_text,
    variant=plain_text,
    prompt=st.none() | st.builds(LanePrompt, prompt=prompt_parts, examples=examples, example_format=text,
                                 template_mode=st.sampled_from(["plain", "chat"])),
    backend=local_backends | remote_backends,
    sampler=samplers,
    request=st.builds(RequestSettings, max_tokens=st.integers(1, 4096),
                      stop=st.lists(text.filter(bool), max_size=2).map(tuple),
                      top_n=st.integers(0, 100), add_special=st.booleans(),
                      force_ids=st.lists(token_id, max_size=3).map(tuple), constraint=st.none() | constraints),
    messages=st.none() | st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), text), max_size=3).map(tuple),
    receipt=receipts,
    started=st.just("2025-01-01T00:00:00Z") | st.just(""),
    offset_s=small_float,
    tokens=token_lists(),
    metrics=st.builds(Metrics, n_tokens=st.integers(0, 5000), ttft_s=st.none() | small_float,
                      prompt_tok_s=st.none() | small_float, decode_tok_s=st.none() | small_float,
                      prompt_tokens_evaluated=st.integers(0, 5000), elapsed_s=st.none() | small_float),
    finish_reason=st.none() | st.sampled_from(["stop", "length", "cancelled", "error"]),
    stop_string=st.none() | text,
    tail=text,
    interrupted=st.booleans(),
    error=st.none() | st.builds(LaneError, title=text, message=text),
)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    lane_list = tuple(draw(st.lists(lanes, max_size=3)))
    vote = draw(st.none() | st.builds(
        Vote,
        extractor=st.sampled_from(["regex", "last_number", "json_field"]),
        pattern=st.none() | plain_text,
        answers=st.just(tuple(draw(st.none() | plain_text) for _ in lane_list)),
        majority=st.none() | plain_text,
        agreement=st.none() | prob,
    ))
    return Session(
        created=draw(st.just("2025-01-01T00:00:00Z") | st.just("")),
        kind=draw(st.sampled_from(["generate", "compare", "vote"])),
        title=draw(text),
        prompt=draw(prompt_parts),
        examples=draw(examples),
        example_format=draw(text),
        template_mode=draw(st.sampled_from(["plain", "chat"])),
        lanes=lane_list,
        vote=vote,
        trimmed=tuple(draw(st.lists(text, max_size=2))),
    )
