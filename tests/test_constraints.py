"""Structured output: JSON schema, GBNF grammar and choice list, locally with llama.cpp's grammar
sampler and remotely as each server's own field.

The numbers are checked against independent computations: the removed mass against a float64
softmax of the same logits (recomputed by replaying the tokens through the engine) over the
allowed set a separate llama.cpp grammar sampler reports; the unconstrained token against a plain
chain with the same seed, and against a run without the grammar.
"""

from __future__ import annotations

import ctypes
import json
import subprocess

import numpy as np
import pytest

import llama_cpp

from conftest import playground_cmd, subprocess_env
from fault_server import FaultServer
from playground import jsonlines
from playground.backends.endpoints import Endpoint
from playground.backends.llamacpp import LlamaCppBackend
from playground.backends.ollama import OllamaBackend
from playground.backends.openai_compat import OpenAIBackend
from playground.constraint import Constraint, check_output, choices_gbnf, gbnf_literal
from playground.engine.constraint import check_constraint, to_gbnf
from playground.engine.lanes import LaneRunner
from playground.engine.sampler_chain import TOKEN_DATA_DTYPE, SamplerChain
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"enum": ["positive", "negative", "neutral"]},
        "confident": {"type": "boolean"},
        "score": {"type": "integer"},
    },
    "required": ["sentiment", "confident", "score"],
    "additionalProperties": False,
}
PROMPT = "Review: I loved this film, the acting was superb.\nClassify it as JSON:"
CHOICES = ("positive", "negative", "neutral")


def text_of(events) -> str:
    done = events[-1]
    return "".join(e.text for e in events if isinstance(e, TokenEvent)) + (done.tail if isinstance(done, DoneEvent) else "")


# --- pure parts -------------------------------------------------------------------------------

def test_constraint_values_are_checked():
    with pytest.raises(InvalidParameterError, match="line 1 column 9"):
        Constraint.json_schema('{"type":')
    with pytest.raises(InvalidParameterError, match="must be an object"):
        Constraint.json_schema("[1, 2]")
    with pytest.raises(InvalidParameterError, match="empty"):
        Constraint.of_choices("a||b")
    with pytest.raises(InvalidParameterError, match="twice"):
        Constraint.of_choices("a|b|a")
    with pytest.raises(InvalidParameterError, match="empty"):
        Constraint.grammar("   ")
    c = Constraint.of_choices("x|y")
    assert Constraint.from_dict(c.to_dict()) == c
    with pytest.raises(InvalidParameterError):
        GenerationRequest("p", constraint=Constraint("choices", "a|a", ("a", "a"))).validate()


def test_check_output_states_valid_invalid_and_cut_off():
    c = Constraint.json_schema(json.dumps(SCHEMA))
    ok = check_output(c, '{"sentiment": "neutral", "confident": true, "score": 3}', "stop")
    assert ok.status == "valid" and ok.value["score"] == 3 and '\n  "score": 3' in ok.pretty
    bad = check_output(c, '{"sentiment": "meh", "confident": true, "score": 3}', "stop")
    assert bad.status == "invalid" and "$.sentiment" in bad.reason and bad.to_dict()["valid"] is False
    cut = check_output(c, '{"sentiment": "neu', "length")
    assert cut.status == "cut_off" and "max tokens" in cut.reason
    assert check_output(c, '{"sentiment": "neu', "stop").status == "invalid"
    # complete and conforming although the run hit max tokens right there: valid
    assert check_output(c, '{"sentiment": "neutral", "confident": false, "score": 0}', "length").status == "valid"
    extra = check_output(Constraint.json_schema('{"type": "string", "maxLength": 3}'), '"abcdef"', "stop")
    assert extra.status == "valid" and extra.unchecked == ("maxLength",)
    ch = Constraint.of_choices(CHOICES)
    assert check_output(ch, "neutral", "stop").status == "valid"
    assert check_output(ch, "neutr", "stop").status == "invalid"
    assert check_output(ch, "neutr", "cancelled").status == "cut_off"


# --- grammars through llama.cpp ---------------------------------------------------------------

def grammar_allows(model, gbnf: str, prefix_ids: list[int]) -> np.ndarray:
    """The ids a fresh llama.cpp grammar sampler allows after ``prefix_ids`` (independent of the
    engine's constrained sampler: built here from the C API)."""
    smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, gbnf.encode(), b"root")
    assert smpl
    try:
        for t in prefix_ids:
            llama_cpp.llama_sampler_accept(smpl, t)
        cand = np.zeros(model.n_vocab, dtype=TOKEN_DATA_DTYPE)
        cand["id"] = np.arange(model.n_vocab)
        arr = llama_cpp.llama_token_data_array(data=cand.ctypes.data_as(llama_cpp.llama_token_data_p),
                                               size=model.n_vocab, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
        return cand["id"][np.isfinite(cand["logit"])]
    finally:
        llama_cpp.llama_sampler_free(smpl)


def test_choice_literals_are_escaped_so_llama_cpp_accepts_exactly_them(engine):
    model = engine.model
    tricky = ('say "hi"', "back\\slash", "two\nlines", "tab\there", "café ☕")
    gbnf = choices_gbnf(tricky)
    assert gbnf_literal('a"b\\') == '"a\\"b\\\\"'
    for choice in tricky:
        ids = model.tokenize(choice, add_special=False, parse_special=False)
        for k in range(len(ids)):  # every token of the choice is allowed where it comes
            assert ids[k] in grammar_allows(model, gbnf, ids[:k])
        after = grammar_allows(model, gbnf, ids)
        assert after.size and all(model.is_eog(int(t)) for t in after)  # complete: only the end remains
    wrong = model.tokenize("say hi", add_special=False, parse_special=False)
    allowed_first = grammar_allows(model, gbnf, [])
    assert wrong[0] not in allowed_first or wrong[1] not in grammar_allows(model, gbnf, wrong[:1])


@pytest.mark.parametrize("grammar, message", [
    ('root ::= "a" | foo', "line 1: the rule 'foo' is used but never defined"),
    ('root ::= "a" "b" |\nfoo ::= "x" bar', "line 2 column 5: expecting newline or end"),
    ('root ::= "ok"\nx ::= (', "line 2 column 8: expecting ')'"),
    ('start ::= "a"', "no 'root' rule"),
    ('root ::= root "a" | "b"', "left-recursive"),
])
def test_a_bad_grammar_is_one_clear_error(engine, grammar, message, capfd):
    with pytest.raises(InvalidParameterError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        check_constraint(engine.model, Constraint.grammar(grammar))
    assert err.value.title == "Constraint"
    assert "error parsing grammar" not in capfd.readouterr().err  # llama.cpp's stderr print was captured


def test_a_bad_schema_is_one_clear_error(engine):
    with pytest.raises(InvalidParameterError, match="Unsupported ref"):
        to_gbnf(Constraint.json_schema('{"type": "object", "properties": {"a": {"$ref": "http://x/y"}}}'))
    with pytest.raises(InvalidParameterError, match="converter"):
        to_gbnf(Constraint.json_schema('{"type": 5}'))
    # the engine refuses before its first event
    stream = engine.stream(GenerationRequest("x", constraint=Constraint.grammar('root ::= "a" | foo')))
    with pytest.raises(InvalidParameterError):
        next(stream)


# --- sampling ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lanes_engine():
    eng = EngineChoice(n_ctx=4096, n_threads=1).load(n_seq_max=26)
    yield eng
    eng.close()


def run_seeds(engine, constraint: Constraint, seeds: range, max_tokens: int, prompt: str = PROMPT):
    """{seed: events} for one request per seed at temperature 1.0, batched as compare lanes."""
    runner = LaneRunner(engine)
    out: dict[int, list] = {}
    try:
        seeds = list(seeds)
        for start in range(0, len(seeds), runner.max_lanes):
            batch = seeds[start:start + runner.max_lanes]
            requests = [GenerationRequest(prompt, SamplerParams(temperature=1.0, seed=s), max_tokens=max_tokens,
                                          top_n=0, constraint=constraint) for s in batch]
            events: dict[int, list] = {s: [] for s in batch}
            for item in runner.stream(requests, with_entropy=False):
                if hasattr(item, "lane"):
                    events[batch[item.lane]].append(item.event)
            out.update(events)
    finally:
        runner.close()
    return out


def test_100_seeds_at_temperature_1_give_valid_json_or_are_marked_cut_off(lanes_engine):
    c = Constraint.json_schema(json.dumps(SCHEMA))
    results = run_seeds(lanes_engine, c, range(100), max_tokens=48)
    statuses = {}
    for seed, events in results.items():
        done = events[-1]
        assert isinstance(done, DoneEvent), (seed, done)
        check = check_output(c, text_of(events), done.finish_reason)
        statuses[seed] = check.status
        if check.status != "valid":
            assert check.status == "cut_off" and done.finish_reason == "length", (seed, text_of(events), check)
        else:  # parsed and validated independently of the project's validator, too
            value = json.loads(text_of(events))
            assert set(value) == {"sentiment", "confident", "score"} and value["sentiment"] in CHOICES
            assert isinstance(value["confident"], bool) and isinstance(value["score"], int)
        assert all(e.constraint_mass_removed is not None for e in events if isinstance(e, TokenEvent))
    assert sum(s == "valid" for s in statuses.values()) >= 50, statuses  # the test can see outputs, not only cut-offs


def test_choices_always_yield_one_of_them(lanes_engine):
    c = Constraint.of_choices(CHOICES)
    results = run_seeds(lanes_engine, c, range(100), max_tokens=16, prompt="The sentiment of 'awful, boring' is")
    seen = set()
    for seed, events in results.items():
        assert isinstance(events[-1], DoneEvent) and events[-1].finish_reason == "stop", (seed, events[-1])
        assert text_of(events) in CHOICES, (seed, text_of(events))
        seen.add(text_of(events))
    assert len(seen) >= 2  # at T = 1 more than one choice comes up: the draw is real


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_mass_removed_and_unconstrained_token_match_independent_computations(engine, seed):
    model = engine.model
    params = SamplerParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
    c = Constraint.json_schema(json.dumps(SCHEMA))
    request = GenerationRequest(PROMPT, params, max_tokens=40, top_n=0, constraint=c)
    events = list(engine.stream(request))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert tokens and isinstance(events[-1], DoneEvent)
    gbnf = to_gbnf(c)

    # replay: the same prompt, then the same tokens decoded one by one, as the run decoded them
    prompt_ids = list(events[0].prompt_tokens)
    engine.evaluate_prompt(prompt_ids)
    logits = engine.prompt_logits.copy()
    plain = SamplerChain(params, model.n_vocab, seed)  # a chain with the seed and no grammar
    differs = 0
    try:
        for k, event in enumerate(tokens):
            raw = logits.astype(np.float64)
            p = np.exp(raw - raw.max())
            p /= p.sum()
            allowed = grammar_allows(model, gbnf, [t.id for t in tokens[:k]])
            forbidden = np.ones(model.n_vocab, dtype=bool)
            forbidden[allowed] = False
            assert event.constraint_mass_removed == pytest.approx(float(p[forbidden].sum()), abs=1e-6)
            assert event.id in allowed
            # p_sampled: the draw's distribution is the softmax over the allowed set (no truncation here)
            assert event.p_sampled == pytest.approx(float(p[event.id] / p[allowed].sum()), rel=1e-4, abs=1e-7)
            free = plain.sample(logits).id
            assert (event.unconstrained_id if event.unconstrained_id is not None else event.id) == free
            if event.unconstrained_id is not None:
                differs += 1
                assert event.unconstrained_text == model.piece_text(free)
            engine.decode_one(event.id)
            logits = engine.logits_view().copy()
    finally:
        plain.close()
    assert differs > 0  # the grammar did change something the model wanted

    # a run without the grammar takes the same tokens up to the first difference, then the reported one
    free_events = [e for e in engine.stream(GenerationRequest(PROMPT, params, max_tokens=40, top_n=0))
                   if isinstance(e, TokenEvent)]
    k = next(i for i, e in enumerate(tokens) if e.unconstrained_id is not None)
    assert [e.id for e in free_events[:k]] == [e.id for e in tokens[:k]]
    assert free_events[k].id == tokens[k].unconstrained_id


def test_no_constraint_no_new_fields(engine):
    events = list(engine.stream(GenerationRequest("Hello", SamplerParams(seed=1), max_tokens=3, top_n=0)))
    token = next(e for e in events if isinstance(e, TokenEvent))
    assert token.constraint_mass_removed is None and token.unconstrained_id is None
    assert "constraint_mass_removed" not in jsonlines.event_to_dict(token)
    assert "constraint" not in events[0].params


def test_a_forced_token_the_grammar_forbids_fails_the_run(engine):
    bad = engine.model.tokenize("hello", add_special=False, parse_special=False)
    request = GenerationRequest(PROMPT, SamplerParams(seed=1), max_tokens=5, constraint=Constraint.of_choices(CHOICES),
                                force_ids=tuple(bad))
    events = list(engine.stream(request))
    assert isinstance(events[-1], FailedEvent) and "not allowed by the constraint" in events[-1].message


# --- the command line ---------------------------------------------------------------------------

def cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*playground_cmd(), "generate", *args], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(tmp_path))


def test_cli_choices_json_ends_with_a_structured_line(tmp_path):
    out = cli(tmp_path, "The sentiment of 'great' is", "--choices", "positive|negative|neutral", "--temp", "1", "-s", "4", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    text = "".join(o["text"] for o in lines if o["event"] == "token")
    assert lines[-2]["event"] == "done" and lines[-1] == {"event": "structured", "kind": "choices", "status": "valid",
                                                          "valid": True, "value": text}
    assert text in CHOICES and all("constraint_mass_removed" in o for o in lines if o["event"] == "token")


@pytest.mark.parametrize("args, message", [
    (["--grammar", 'root ::= "a" | foo'], "the rule 'foo' is used but never defined"),
    (["--json-schema", '{"type":'], "line 1 column 9"),
    (["--json-schema", "missing.json"], "no such file"),
    (["--grammar-file", "latin1.gbnf"], "not valid UTF-8"),
    (["--choices", "a|a"], "twice"),
    (["--choices", "a|b", "--grammar", 'root ::= "a"'], "not allowed with argument"),
])
def test_cli_bad_constraints_are_one_stderr_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "latin1.gbnf").write_bytes('root ::= "caf\xe9"'.encode("latin-1"))
    out = subprocess.run([*playground_cmd(), "generate", "Hi", "--json", *args], capture_output=True, text=True,
                         timeout=120, env=subprocess_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr


def test_cli_cut_off_output_is_marked(tmp_path):
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}))
    out = cli(tmp_path, "A person as JSON:", "--json-schema", str(schema), "-n", "3", "-s", "1", "--json")
    last = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 0 and last["status"] == "cut_off" and "max tokens" in last["reason"]


# --- remote servers -----------------------------------------------------------------------------

def endpoint(srv: FaultServer, kind: str, mode: str = "completions") -> Endpoint:
    return Endpoint("box", kind, srv.url + ("/v1" if kind == "openai" else ""), "m", mode=mode, read_timeout=2)


async def bodies(kind: str, mode: str, constraint: Constraint):
    """The JSON bodies a backend sends for a constrained request (the server answers 400)."""
    backend_class = {"openai": OpenAIBackend, "llamacpp": LlamaCppBackend, "ollama": OllamaBackend}[kind]
    with FaultServer() as srv:
        for path in ("/v1/chat/completions", "/v1/completions", "/completion", "/api/generate", "/api/chat"):
            srv.route(path, lambda call: call.json(400, {"error": "test"}))
        backend = backend_class(endpoint(srv, kind, mode))
        try:
            request = GenerationRequest("p", SamplerParams(seed=1), max_tokens=4, top_n=0, constraint=constraint)
            events = [e async for e in backend.stream(request)]
        finally:
            await backend.aclose()
        return [r.body for r in srv.requests], events


async def test_remote_bodies_carry_the_constraint():
    schema_c = Constraint.json_schema(json.dumps(SCHEMA))
    sent, events = await bodies("openai", "chat", schema_c)
    assert sent[0]["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    assert isinstance(events[0], StartEvent) and events[0].params["constraint"]["kind"] == "json_schema"
    sent, _ = await bodies("ollama", "completions", schema_c)
    assert sent[0]["format"] == SCHEMA
    sent, _ = await bodies("llamacpp", "completions", schema_c)
    assert sent[0]["json_schema"] == SCHEMA
    sent, _ = await bodies("llamacpp", "completions", Constraint.of_choices(CHOICES))
    assert sent[0]["grammar"] == choices_gbnf(CHOICES)
    sent, _ = await bodies("llamacpp", "completions", Constraint.grammar('root ::= "yes" | "no"'))
    assert all(body["grammar"] == 'root ::= "yes" | "no"' for body in sent)


@pytest.mark.parametrize("kind, mode, constraint", [
    ("openai", "completions", Constraint.json_schema('{"type": "string"}')),
    ("openai", "chat", Constraint.grammar('root ::= "a"')),
    ("openai", "chat", Constraint.of_choices(CHOICES)),
    ("ollama", "chat", Constraint.grammar('root ::= "a"')),
])
async def test_a_backend_that_cannot_constrain_refuses_before_any_request(kind, mode, constraint):
    backend_class = {"openai": OpenAIBackend, "ollama": OllamaBackend}[kind]
    with FaultServer() as srv:
        backend = backend_class(endpoint(srv, kind, mode))
        assert constraint.kind not in backend.capabilities.constraints
        try:
            with pytest.raises(InvalidParameterError, match="cannot constrain"):
                [e async for e in backend.stream(GenerationRequest("p", constraint=constraint))]
        finally:
            await backend.aclose()
        assert srv.requests == []
