"""Remote cells: every case on an OpenAI-compatible endpoint, at most --concurrency in flight, a 429
retried after its Retry-After, no answer log-probabilities (local only, and the receipt says so)."""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time

import pytest
from fault_server import FaultServer, completion_chunk, sse

from conftest import ROOT, playground_cmd, subprocess_env

ANSWERS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Peru": "Lima"}


def test_remote_cells_bounded_and_retried(tmp_path):
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def script(call):
        if call.n == 0:  # the first request is rate limited once
            call.json(429, {"error": "slow down"}, {"Retry-After": "0"})
            return
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.3)  # long enough that every free slot is taken
            prompt = call.record.body["prompt"]
            word = next(answer for country, answer in ANSWERS.items() if country in prompt)
            call.stream(sse([completion_chunk(" " + word, -0.25), completion_chunk("", finish="stop")]))
        finally:
            with lock:
                state["now"] -= 1

    suite = tmp_path / "s.toml"
    suite.write_text("[suite]\ntemplate = 'plain'\nmax_tokens = 4\n" + "".join(
        f"[[case]]\ninput = 'What is the capital of {country}?'\nexpected = '{answer}'\nassert = [{{ type = 'equals' }}]\n"
        for country, answer in ANSWERS.items()), encoding="utf-8")
    with FaultServer() as srv:
        srv.route("/v1/completions", script)
        proc = subprocess.run([*playground_cmd(), "eval", str(suite), "--json", "--base-url", srv.url + "/v1",
                               "--api-model", "m", "--concurrency", "2"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=subprocess_env(tmp_path))
        n_requests = len(srv.requests)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    cells, summary = lines[:-1], lines[-1]
    assert sorted(c["case"] for c in cells) == list(range(len(ANSWERS)))
    for cell in cells:
        assert cell["output"].strip() == cell["expected"] and cell["pass"] is True
        assert cell["answer_logprob"] is None and cell["answer_tokens"] is None
    assert n_requests == len(ANSWERS) + 1  # one retry
    assert state["most"] == 2  # bounded by --concurrency, and the bound was reached
    assert summary["variants"]["s"]["pass_rate"] == 1.0 and summary["variants"]["s"]["n_scored"] == 0
    assert summary["receipt"]["max_concurrency"] == 2 and "local model only" in summary["receipt"]["answer_logprob"]


def test_a_remote_judge_reports_the_servers_probabilities(tmp_path):
    """[judge] backend = NAME: the judge runs on that endpoint; its verdict's probability is the one
    the server sent for the verdict token, and the alternatives there give PASS vs FAIL."""

    def script(call):
        prompt = call.record.body["prompt"]
        if prompt.endswith("Verdict:"):
            verdict = " PASS" if "Answer: Paris" in prompt else " FAIL"
            top = {" PASS": -0.2, " FAIL": -1.8} if verdict == " PASS" else {" FAIL": -0.1, " PASS": -2.5}
            chunks = [completion_chunk(verdict, top[verdict], top), completion_chunk("", finish="stop")]
        else:
            word = next(answer for country, answer in ANSWERS.items() if country in prompt)
            chunks = [completion_chunk(" " + word, -0.5), completion_chunk("", finish="stop")]
        call.stream(sse(chunks))

    suite = tmp_path / "s.toml"
    suite.write_text("[suite]\ntemplate = 'plain'\nmax_tokens = 4\nassert = [{ type = 'judge' }]\n"
                     "[judge]\nbackend = 'judgebox'\ntemplate = 'plain'\nprompt = 'Q: {input}\\nAnswer: {output}\\nVerdict:'\n"
                     "[[case]]\ninput = 'Capital of France?'\n[[case]]\ninput = 'Capital of Peru?'\n", encoding="utf-8")
    with FaultServer() as srv:
        srv.route("/v1/completions", script)
        config = tmp_path / "config" / "playground" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"[backends.judgebox]\nkind = 'openai'\nbase_url = '{srv.url}/v1'\nmodel = 'judge-m'\n",
                          encoding="utf-8")
        proc = subprocess.run([*playground_cmd(), "eval", str(suite), "--json", "--base-url", srv.url + "/v1",
                               "--api-model", "m"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=subprocess_env(tmp_path))
        models = [r.body["model"] for r in srv.requests]
    assert proc.returncode == 0, proc.stderr
    cells = {c["input"]: c for c in map(json.loads, proc.stdout.splitlines()[:-1])}
    assert sorted(models) == ["judge-m", "judge-m", "m", "m"]
    for question, verdict, top in (("Capital of France?", "PASS", {"PASS": -0.2, "FAIL": -1.8}),
                                   ("Capital of Peru?", "FAIL", {"PASS": -2.5, "FAIL": -0.1})):
        judge = cells[question]["asserts"][0]["judge"]
        assert cells[question]["pass"] is (verdict == "PASS") and judge["verdict"] == verdict
        assert judge["backend"] == "judgebox" and judge["model"] == "judge-m"
        assert judge["verdict_token"]["prob"] == pytest.approx(math.exp(top[verdict]), rel=1e-9)
        assert judge["verdict_probs"] == pytest.approx({w: math.exp(lp) for w, lp in top.items()}, rel=1e-9)
