"""Schema version 2: conversations, forced prefixes, constraints, the full sampler set and variant
lanes are saved, restored, replayed and re-run by ``replay --check``; version 1 files still open.

The runs are real ones on the embedded model; the v1 fixtures were written by the version-1 code
(``tests/data/session_v1.json``: ``playground generate --save`` with newer samplers on;
``session_v1_before_samplers.json``: an example from before the full sampler set, eight settings).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env
from playground.constraint import Constraint
from playground.errors import SessionFileError
from playground.events import TokenEvent
from playground.params import GenerationRequest, LogitBias, SamplerParams
from playground.prompt_builder import Example, PromptSpec, Turn
from playground.sessions.check import check_session, rerun_request
from playground.sessions.prompt import prompt_fields, prompt_spec
from playground.sessions.record import SessionRecorder
from playground.sessions.replay import lane_events
from playground.sessions.schema import SCHEMA_VERSION, Lane, Session
from playground.sessions.store import dumps, load, parse, save
from playground.sessions.upgrade import V1_SAMPLER_DEFAULTS, upgrade
from playground.ui.session_io import panes_of

DATA = Path(__file__).resolve().parent / "data"
PROMPT = "The capital of France is"


def reload(session: Session) -> Session:
    return parse(dumps(session).encode("utf-8")).session


def record(engine, request: GenerationRequest, **options) -> Session:
    rec = SessionRecorder(**options)
    rec.lane(0, request=request)
    for event in engine.stream(request, dist_size=request.top_n):
        rec.feed(event)
    return rec.session()


def with_request(session: Session, **changes) -> Session:
    lane = session.lanes[0]
    return dataclasses.replace(session, lanes=(dataclasses.replace(lane, request=dataclasses.replace(lane.request, **changes)),))


# --- version 1 files -------------------------------------------------------------------------
def test_v1_file_opens_upgraded_with_its_samplers_exact_and_reproduces():
    loaded = load(DATA / "session_v1.json")
    assert loaded.file_version == 1 and loaded.upgraded and SCHEMA_VERSION == 2
    sampler = loaded.session.lanes[0].sampler
    raw = json.loads((DATA / "session_v1.json").read_text())["lanes"][0]["sampler"]
    assert sampler.to_dict() == raw  # every recorded setting, exactly (nothing replaced by a default)
    assert sampler.typical_p == 0.95 and sampler.dry_multiplier == 0.8 and sampler.presence_penalty == 0.2
    assert sampler.logit_bias == (LogitBias(1.0, token=13),)
    assert sampler.samplers == ("penalties", "dry", "top_k", "typ_p", "top_p", "min_p", "temperature")
    assert rerun_request(loaded.session.lanes[0]).sampler == sampler.replace(seed=7)
    report = check_session(loaded.session)
    assert report.exit_code == 0, report
    again = parse(dumps(loaded.session).encode("utf-8"))
    assert again.file_version == SCHEMA_VERSION and again.session == loaded.session


def test_v1_file_from_before_the_sampler_set_gets_the_settings_it_ran_under():
    loaded = load(DATA / "session_v1_before_samplers.json")
    raw = json.loads((DATA / "session_v1_before_samplers.json").read_text())["lanes"][0]["sampler"]
    assert "typical_p" not in raw and loaded.upgraded
    sampler = loaded.session.lanes[0].sampler.to_dict()
    assert {k: sampler[k] for k in V1_SAMPLER_DEFAULTS} == V1_SAMPLER_DEFAULTS
    assert {k: sampler[k] for k in raw} == raw
    assert check_session(loaded.session).exit_code == 0


def test_upgrade_fills_only_what_a_v1_sampler_lacks():
    raw = {"schema_version": 1, "lanes": [{"sampler": {"temperature": 0.5, "typical_p": 0.9}}, {}]}
    current, version = upgrade(raw)
    assert version == 1 and current["schema_version"] == 2
    first, second = current["lanes"]
    assert first["sampler"]["temperature"] == 0.5 and first["sampler"]["typical_p"] == 0.9
    assert first["sampler"]["mirostat"] == 0 and second["sampler"]["samplers"] == V1_SAMPLER_DEFAULTS["samplers"]
    assert raw["lanes"][0]["sampler"] == {"temperature": 0.5, "typical_p": 0.9}  # the input is left alone
    with pytest.raises(Exception, match=r"lanes\[0\]\.sampler"):
        upgrade({"schema_version": 1, "lanes": [{"sampler": 3}]})


# --- prompts ---------------------------------------------------------------------------------
CONVERSATION = PromptSpec(
    mode="conversation",
    system="You answer in one word.",
    turns=(Turn("user", "Hi"), Turn("assistant", "Hello."), Turn("user", "Capital of France?")),
    examples=(Example("a", "b", enabled=False),),
    template="chat",
)


def test_conversation_comes_back_whole():
    session = reload(Session(**prompt_fields(CONVERSATION), lanes=(Lane(),)))
    assert prompt_spec(session) == CONVERSATION
    assert panes_of(session).spec == CONVERSATION
    data = json.loads(dumps(session))
    assert data["prompt"]["turns"][1] == {"role": "assistant", "content": "Hello."}


def test_structured_system_prompt_is_kept():
    spec = PromptSpec(instruction="Classify.", system="Be terse.", input="x")
    assert prompt_spec(reload(Session(**prompt_fields(spec)))) == spec


def test_a_bad_turn_in_a_file_names_its_path(tmp_path):
    data = json.loads(dumps(Session(**prompt_fields(CONVERSATION))))
    data["prompt"]["turns"][2]["role"] = "system"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SessionFileError, match=r"prompt\.turns\[2\]\.role"):
        load(path)


# --- samplers --------------------------------------------------------------------------------
def test_every_sampler_setting_round_trips():
    sampler = SamplerParams(
        temperature=0.7, top_k=12, top_p=0.9, min_p=0.02, repeat_penalty=1.1, repeat_last_n=32, seed=99, greedy=False,
        typical_p=0.8, top_n_sigma=1.5, xtc_probability=0.3, xtc_threshold=0.2, dry_multiplier=0.9, dry_base=2.0,
        dry_allowed_length=3, dry_penalty_last_n=-1, dry_sequence_breakers=("\n", "##"), presence_penalty=0.4,
        frequency_penalty=-0.3, mirostat=2, mirostat_eta=0.2, mirostat_tau=4.0, dynatemp_range=0.5,
        dynatemp_exponent=1.3, logit_bias=(LogitBias(-5.0, text=" Hello"), LogitBias(2.5, token=42)),
        samplers=("top_k", "temperature", "min_p"),
    ).validate()
    assert all(getattr(sampler, f.name) != f.default for f in dataclasses.fields(SamplerParams)
               if f.name != "greedy")  # the test sets every one
    back = reload(Session(lanes=(Lane(sampler=sampler),))).lanes[0].sampler
    assert back == sampler and back.to_dict() == sampler.to_dict()
    assert SamplerParams.from_dict(back.to_dict()) == sampler


# --- forced prefixes and constraints, on the real model ------------------------------------------
@pytest.fixture(scope="module")
def forced(engine) -> Session:
    request = GenerationRequest(PROMPT, SamplerParams(temperature=0.9, seed=11), max_tokens=6, top_n=5,
                                force_ids=tuple(engine.model.tokenize(" the city of", add_special=False)))
    return record(engine, request)


@pytest.fixture(scope="module")
def constrained(engine) -> Session:
    request = GenerationRequest(PROMPT, SamplerParams(temperature=0.0), max_tokens=8, top_n=5,
                                constraint=Constraint.of_choices((" Lyon", " Marseille")))
    return record(engine, request)


def test_forced_lane_keeps_its_prefix_and_flags(forced, tmp_path):
    loaded = load(save(forced, tmp_path / "forced.json")).session
    lane = loaded.lanes[0]
    n = len(lane.request.force_ids)
    assert n == 3 and [t.id for t in lane.tokens[:n]] == list(lane.request.force_ids)
    assert [t.forced for t in lane.tokens] == [True] * n + [False] * (len(lane.tokens) - n)
    assert all(t.p_sampled is None for t in lane.tokens[:n]) and all(t.p_sampled is not None for t in lane.tokens[n:])
    replayed = [e for _, e in lane_events(lane) if isinstance(e, TokenEvent)]
    assert [e.forced for e in replayed] == [t.forced for t in lane.tokens]
    assert loaded == forced


def test_forced_lane_reproduces_and_the_check_uses_the_prefix(forced):
    assert check_session(forced).exit_code == 0
    free = check_session(with_request(forced, force_ids=()))  # the same lane re-run without its prefix
    assert free.exit_code == 1 and free.lanes[0].divergence.index == 0
    assert free.lanes[0].divergence.recorded.forced and not free.lanes[0].divergence.rerun.forced


def test_a_forced_flag_edited_away_is_a_divergence(forced):
    lane = forced.lanes[0]
    tokens = (dataclasses.replace(lane.tokens[0], forced=False),) + lane.tokens[1:]
    report = check_session(dataclasses.replace(forced, lanes=(dataclasses.replace(lane, tokens=tokens),)))
    assert report.exit_code == 1 and report.lanes[0].divergence.index == 0


def test_interrupted_forced_lane_is_rerun_as_far_as_it_went(forced):
    lane = forced.lanes[0]
    cut = dataclasses.replace(lane, tokens=lane.tokens[:4], finish_reason="cancelled")
    assert rerun_request(cut).max_tokens == 1  # counted after the three forced tokens
    assert check_session(dataclasses.replace(forced, lanes=(cut,))).exit_code == 0


def test_constrained_lane_keeps_its_constraint_and_token_fields(constrained, tmp_path):
    lane = load(save(constrained, tmp_path / "choice.json")).session.lanes[0]
    assert lane.request.constraint == Constraint.of_choices((" Lyon", " Marseille"))
    assert lane.text in (" Lyon", " Marseille")
    first = lane.tokens[0]
    assert first.constraint_mass_removed is not None and 0.0 < first.constraint_mass_removed <= 1.0
    assert first.unconstrained_id is not None and first.unconstrained_text == " Paris"  # greedy, free: Paris
    event = next(e for _, e in lane_events(lane) if isinstance(e, TokenEvent))
    assert (event.constraint_mass_removed, event.unconstrained_id, event.unconstrained_text) == (
        first.constraint_mass_removed, first.unconstrained_id, first.unconstrained_text)


def test_constrained_lane_reproduces_and_the_check_uses_the_constraint(constrained):
    assert check_session(constrained).exit_code == 0
    free = check_session(with_request(constrained, constraint=None))
    assert free.exit_code == 1 and free.lanes[0].divergence.rerun.text == " Paris"


def test_unused_features_are_not_written(constrained):
    plain = with_request(constrained, constraint=None)
    data = json.loads(dumps(plain))
    request = data["lanes"][0]["request"]
    assert set(request) == {"max_tokens", "stop", "top_n", "add_special"}
    assert "forced" not in dumps(plain)
    assert "constraint" in json.loads(dumps(constrained))["lanes"][0]["request"]


@pytest.mark.parametrize("edit, where", [
    (lambda lane: lane["request"].update(constraint={"kind": "json_schema", "source": "[1"}), r"request\.constraint"),
    (lambda lane: lane["request"].update(constraint={"kind": "choices", "source": "a|a", "choices": ["a", "a"]}),
     r"request\.constraint: the choice 'a' is given twice"),
    (lambda lane: lane["request"].update(constraint={"kind": "regex", "source": "a"}), r"request\.constraint\.kind"),
    (lambda lane: lane["request"].update(force_ids=[3, -2]), r"request\.force_ids"),
    (lambda lane: lane["tokens"][0].update(constraint_mass_removed=1.5), r"tokens\[0\]\.constraint_mass_removed"),
    (lambda lane: lane["tokens"][0].update(unconstrained_id=-7), r"tokens\[0\]\.unconstrained_id"),
    (lambda lane: lane["tokens"][0].update(forced="yes"), r"tokens\[0\]\.forced"),
])
def test_hand_edits_of_the_new_fields_are_refused_with_their_path(constrained, tmp_path, edit, where):
    data = json.loads(dumps(constrained))
    edit(data["lanes"][0])
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SessionFileError, match=r"lanes\[0\]\." + where):
        load(path)


# --- variants ------------------------------------------------------------------------------
VARIANTS = """
[[variant]]
name = "structured"
instruction = "Name the capital of France."
input = "Answer:"

[[variant]]
name = "chat"
system = "Be brief."
turns = [{ role = "user", content = "What is the capital of France?" }]
temp = 0.7
seed = 5
"""


def test_compare_variants_session_keeps_each_lanes_prompt_and_reproduces(tmp_path):
    (tmp_path / "v.toml").write_text(VARIANTS)
    target = tmp_path / "variants.json"
    run = subprocess.run(playground_cmd() + ["compare", "--variants", str(tmp_path / "v.toml"), "-n", "6", "-t", "1",
                                             "-c", "1024", "--no-history", "--save", str(target)],
                         capture_output=True, text=True, timeout=180, env=subprocess_env(tmp_path))
    assert run.returncode == 0, run.stderr
    session = load(target).session
    assert [lane.variant for lane in session.lanes] == ["structured", "chat"]
    first, second = (prompt_spec(session, k) for k in range(2))
    assert (first.mode, first.instruction, first.input) == ("structured", "Name the capital of France.", "Answer:")
    assert (second.mode, second.system, second.turns) == (
        "conversation", "Be brief.", (Turn("user", "What is the capital of France?"),))
    assert panes_of(session, 1).spec == second and panes_of(session, 0).spec == first == prompt_spec(session)
    assert "Name the capital" in session.lanes[0].receipt.prompt_text
    assert "Be brief." in session.lanes[1].receipt.prompt_text  # each lane was sent its own prompt
    assert session.lanes[1].sampler.temperature == 0.7 and session.lanes[1].receipt.seed == 5
    check = subprocess.run(playground_cmd() + ["replay", "--check", "--json", str(target)],
                           capture_output=True, text=True, timeout=180, env=subprocess_env(tmp_path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert [lane["status"] for lane in json.loads(check.stdout)["lanes"]] == ["identical", "identical"]
