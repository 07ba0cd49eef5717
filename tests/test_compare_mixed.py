"""Lanes on other backends and models: one local lane next to a REAL llama_cpp.server lane, and a
lane on a second local model file, merged into one stream with divergence compared by text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import playground_cmd, subprocess_env
from playground.backends.endpoints import Endpoint
from playground.compare.events import BatchDone, Divergence, LaneEvent
from playground.compare.lane_spec import LaneSpec, parse_lane, parse_lane_spec
from playground.compare.mixed import LaneTarget, MixedRunner
from playground.compare.run import LaneTranscript, lane_requests, run_compare
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams
from playground.sessions.store import load
from llama_server import ENV, KEY

PROMPT = "The capital of France is"
GREEDY = SamplerParams(temperature=0.0, repeat_penalty=1.0)  # the server's default penalty is 1.1
pytestmark = pytest.mark.slow


def server_endpoint(url: str) -> Endpoint:
    return Endpoint("srv", "openai", url + "/v1", "smollm2", api_key_env="PG_LLAMA_KEY",
                    extra_params=frozenset({"top_k", "min_p", "repeat_penalty"}), read_timeout=60)


def run_cli(args: list[str], tmp_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**subprocess_env(tmp_path), **(extra_env or {})}
    return subprocess.run(playground_cmd() + args, capture_output=True, text=True, timeout=120, env=env)


def write_config(tmp_path: Path, url: str) -> None:
    config = tmp_path / "config" / "playground" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[backends.srv]\nkind = "openai"\nbase_url = "{url}/v1"\nmodel = "smollm2"\n'
                      'api_key_env = "PG_LLAMA_KEY"\nextra_params = ["top_k", "min_p", "repeat_penalty"]\n')


# --- lane specs ---------------------------------------------------------------------------------

def test_lane_spec_targets():
    assert parse_lane("temp=0,backend=srv") == LaneSpec(SamplerParams(temperature=0.0), backend="srv")
    assert parse_lane("model=/m/x.gguf,seed=2").model == "/m/x.gguf"
    assert parse_lane("top_k=5") == LaneSpec(SamplerParams(top_k=5))
    for bad, needle in [("backend=a,model=b", "not both"), ("backend=", "needs a value"), ("backend=a,backend=b", "twice")]:
        with pytest.raises(InvalidParameterError, match=needle):
            parse_lane(bad)
    with pytest.raises(InvalidParameterError, match="not accepted"):
        parse_lane_spec("backend=srv")  # the sampler-only parser does not silently drop it


# --- one local lane + one remote lane, in process -------------------------------------------------

def test_local_and_remote_lanes_agree_and_merge(server_url):
    engine = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(1))
    runner = LaneRunner(engine)
    try:
        default = "local"
        mixed = MixedRunner([LaneTarget(), LaneTarget(server_endpoint(server_url))], {default: runner}, default, ENV)
        requests = lane_requests(GenerationRequest(PROMPT, GREEDY, max_tokens=10, top_n=3), [GREEDY, GREEDY])
        lanes: list[LaneTranscript] = []
        items = list(run_compare(mixed, requests, transcripts=lanes))
    finally:
        runner.close()
        engine.close()
    assert all(isinstance(lane.end, DoneEvent) for lane in lanes), [lane.end for lane in lanes]
    assert len(lanes[0].tokens) >= 6 and lanes[0].text == lanes[1].text
    assert all(t.id >= 0 for t in lanes[0].tokens) and all(t.id == -1 for t in lanes[1].tokens)
    # one batch, for the local lane only; the remote lane has none
    batches = [i for i in items if isinstance(i, BatchDone)]
    assert len(batches) == 1 and batches[0].lanes == (0,) and batches[0].n_lanes == 1
    (div,) = [i for i in items if isinstance(i, Divergence)]
    assert div.index is None and div.by == "text" and div.to_dict()["compared_by"] == "text"
    # every lane's events arrive in its own order, whatever the interleaving
    for k in (0, 1):
        own = [i.event for i in items if isinstance(i, LaneEvent) and i.lane == k]
        assert isinstance(own[-1], DoneEvent)
        assert [e.i for e in own if isinstance(e, TokenEvent)] == list(range(len(lanes[k].tokens)))


def test_cli_local_and_remote_lane(server_url, tmp_path):
    write_config(tmp_path, server_url)
    path = tmp_path / "mixed.json"
    args = ["compare", PROMPT, "-n", "10", "-t", "1", "--top-n", "3", "--json", "--save", str(path),
            "--lane", "temp=0,repeat_penalty=1", "--lane", "temp=0,repeat_penalty=1,backend=srv"]
    proc = run_cli(args, tmp_path, ENV)
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout and KEY not in proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    tokens = [e for e in events if e["event"] == "token"]
    assert tokens and all("lane" in e for e in tokens)
    texts = ["".join(e["text"] for e in tokens if e["lane"] == k) for k in (0, 1)]
    assert texts[0] == texts[1] and len(texts[0]) > 0
    starts = {e["lane"]: e for e in events if e["event"] == "start"}
    assert starts[1]["model"]["endpoint"] == "srv" and starts[0]["params"]["temperature"] == 0.0
    (div,) = [e for e in events if e["event"] == "divergence"]
    assert div["index"] is None and div["compared_by"] == "text"
    saved = path.read_text()
    assert KEY not in saved
    session = load(path).session
    assert session.lanes[1].backend.kind == "openai" and session.lanes[1].backend.api_key_env == "PG_LLAMA_KEY"
    assert session.lanes[0].text == session.lanes[1].text == texts[0]
    history = list((tmp_path / "data" / "playground" / "sessions").glob("*.json"))
    assert len(history) == 1 and KEY not in history[0].read_text()


def test_unknown_backend_is_one_line_exit_2(tmp_path):
    proc = run_cli(["compare", "Hi", "--lane", "temp=0", "--lane", "backend=nowhere"], tmp_path)
    assert proc.returncode == 2 and "no backend named 'nowhere'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- a lane on another local model file -----------------------------------------------------------

def test_lane_on_another_model_file(tmp_path, embedded_path):
    other = tmp_path / "other.gguf"
    try:
        os.link(embedded_path, other)  # another path, so another engine (a hard link: no copy)
    except OSError:
        shutil.copy(embedded_path, other)
    args = ["compare", PROMPT, "-n", "8", "-t", "1", "--json", "--no-history",
            "--lane", "temp=0", "--lane", "temp=1,seed=4", "--lane", f"temp=0,model={other}"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    batches = sorted(e["lanes"] for e in events if e["event"] == "batch")
    assert batches == [[0, 1], [2]]  # lanes 0 and 1 share one batch; lane 2 has its own engine
    divs = {e["lane"]: e for e in events if e["event"] == "divergence"}
    assert "compared_by" not in divs[1]  # same model: ids
    assert divs[2]["compared_by"] == "text" and divs[2]["index"] is None  # same weights, greedy
    ids = [[e["id"] for e in events if e["event"] == "token" and e["lane"] == k] for k in (0, 2)]
    assert ids[0] == ids[1]
