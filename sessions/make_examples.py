"""Regenerate the example sessions in this directory on the embedded model.

    .venv/bin/python sessions/make_examples.py

Each is a real run recorded through ``SessionRecorder`` exactly as the commands record them:
few-shot classification (one lane, ``generate``), a temperature comparison and a self-consistency
vote (several lanes in one batch, through ``compare.run.run_compare``, as ``playground compare``
runs them). ``tests/test_example_sessions.py`` checks that every file here opens, replays and
passes ``playground replay --check``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from playground.compare.extract import last_number
from playground.compare.run import run_compare, sample_requests
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine_options import EngineChoice
from playground.params import GenerationRequest, SamplerParams
from playground.prompt_builder import Example, PromptSpec, chat_template_of, render
from playground.sessions.prompt import prompt_fields
from playground.sessions.record import SessionRecorder
from playground.sessions.store import save

HERE = Path(__file__).resolve().parent
N_CTX = 1024
THREADS = 1  # recorded in the receipts; the check re-runs with the same count (1: fast on a busy machine)


def few_shot_classification() -> None:
    spec = PromptSpec(
        mode="structured",
        instruction="Classify the sentiment of each review as positive or negative.",
        examples=(
            Example("The pasta was delicious and the staff were lovely.", "positive"),
            Example("We waited an hour and the soup was cold.", "negative"),
            Example("Great value, I will come back with friends.", "positive"),
            Example("The room smelled of smoke and the bed was broken.", "negative"),
        ),
        example_format="Review: {input}\nSentiment: {output}",
        input="The waiter ignored us and the bill was wrong.",
    )
    rendered = render(spec)
    request = GenerationRequest(rendered.text, SamplerParams(temperature=0.0), max_tokens=4, stop=("\n",), top_n=10,
                                add_special=rendered.add_special)
    engine = EngineChoice(n_ctx=N_CTX, n_threads=THREADS).load(reuse_prefix=False)
    try:
        rec = SessionRecorder(kind="generate", title="Few-shot sentiment classification (4-shot, greedy)",
                              **prompt_fields(spec))
        rec.lane(0, request=request, label="greedy")
        for event in engine.stream(request, dist_size=request.top_n):
            rec.feed(event)
    finally:
        engine.close()
    save(rec.session(), HERE / "few-shot-classification.json")


def run_lanes(requests, recorder: SessionRecorder, extractor=None) -> None:
    engine = EngineChoice(n_ctx=N_CTX, n_threads=THREADS).load(n_seq_max=seq_max_for(len(requests)), reuse_prefix=False)
    runner = LaneRunner(engine)
    try:
        for k, request in enumerate(requests):
            recorder.lane(k, request=request, label=_label(request.sampler))
        for item in run_compare(runner, requests, diverge=extractor is None, extractor=extractor,
                                dist_size=requests[0].top_n):
            recorder.feed_compare(item)
    finally:
        runner.close()
        engine.close()


def _label(s: SamplerParams) -> str:
    return "greedy" if s.is_greedy else f"temp={s.temperature:g}, seed={s.seed}"


def temperature_comparison() -> None:
    spec = PromptSpec(mode="freeform", text="Write a short poem about the sea.", template="chat")
    engine = EngineChoice(n_ctx=N_CTX, n_threads=THREADS).load()
    try:
        rendered = render(spec, chat_template_of(engine))
    finally:
        engine.close()
    base = GenerationRequest(rendered.text, max_tokens=40, top_n=10, add_special=rendered.add_special,
                             messages=rendered.messages)
    samplers = [SamplerParams(temperature=0.0), SamplerParams(temperature=0.7, seed=1), SamplerParams(temperature=1.3, seed=1)]
    rec = SessionRecorder(kind="compare", title="Temperature comparison: greedy, 0.7 and 1.3 (same seed)",
                          **prompt_fields(spec))
    run_lanes([dataclasses.replace(base, sampler=s) for s in samplers], rec)
    save(rec.session(), HERE / "temperature-comparison.json")


def self_consistency_vote() -> None:
    spec = PromptSpec(
        mode="structured",
        instruction="Answer each question with a number.",
        examples=(Example("What is 2 + 3?", "5"), Example("What is 10 + 4?", "14"), Example("What is 7 + 8?", "15")),
        example_format="Q: {input}\nA: {output}",
        input="What is 12 + 9?",
    )
    rendered = render(spec)
    base = GenerationRequest(rendered.text, SamplerParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, seed=100),
                             max_tokens=6, stop=("\n",), top_n=5, add_special=rendered.add_special)
    rec = SessionRecorder(kind="vote", title="Self-consistency: 8 samples at T=1.0, last number voted",
                          **prompt_fields(spec))
    rec.extractor = "last_number"
    run_lanes(sample_requests(base, 8), rec, extractor=last_number)
    save(rec.session(), HERE / "self-consistency-vote.json")


if __name__ == "__main__":
    few_shot_classification()
    temperature_comparison()
    self_consistency_vote()
    for path in sorted(HERE.glob("*.json")):
        print(path.name, path.stat().st_size, "bytes")
