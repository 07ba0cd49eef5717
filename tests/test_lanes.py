"""Batched lanes on the real model: each lane takes exactly the tokens a single-lane run takes."""

from __future__ import annotations

import dataclasses
import threading

import llama_cpp
import pytest

from helpers import CHAT, collect
from playground.compare.events import BatchDone, LaneEvent
from playground.compare.run import LaneTranscript, run_compare
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.events import DoneEvent, StartEvent, TokenEvent
from playground.params import GenerationRequest, SamplerParams

N_LANES = 6
# Largest |logprob(batched) - logprob(single)| allowed, in nats. A batch of N tokens could take
# other kernels than a one-token decode, and its KV cache holds more (masked) cells, so float sums
# might be taken in another order. Measured with flash attention (the engine's default) on this CPU
# build (AVX2, SmolLM2 Q4_1): 6 lanes x 160 tokens against a fresh single-sequence engine and against
# the same context, max difference of logprob and entropy 0.0 (bit-identical logits). 1e-4 nats (a
# 0.01 % change of a probability, below what the UI shows) leaves room for builds whose batched
# kernels reorder sums, and still catches a lane reading another lane's logits. The ids, not these
# floats, decide the text, and they must match exactly. (Without flash attention llama.cpp's logits
# depend on how the tokens were batched even for one sequence: up to 0.28 nats between a full prompt
# evaluation and a prefix-reused one, so no batching scheme can match single runs there.)
LOGPROB_TOL = 1e-4

PROMPT = CHAT.format("Write a short story about a fox who learns to read. Use simple words.")


@pytest.fixture(scope="module")
def lanes_engine():
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(N_LANES))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def fresh_engine():
    """A single-lane engine that evaluates every prompt from scratch, as the lanes' prompt is.

    (The shared ``engine`` fixture reuses KV prefixes left by earlier tests: evaluating a prompt
    in two pieces changes the last digits of the logits, which can flip a sampled token.)
    """
    eng = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def runner(lanes_engine):
    run = LaneRunner(lanes_engine)
    yield run
    run.close()


def req(sampler: SamplerParams, max_tokens: int = 40, stop: tuple[str, ...] = (), prompt: str = PROMPT) -> GenerationRequest:
    return GenerationRequest(prompt, sampler, max_tokens=max_tokens, stop=stop, top_n=5, add_special=False)


# Lanes of all kinds, ending at different times (limits, a stop string, EOG), so the batch shrinks.
LANES = [
    req(SamplerParams(temperature=0.0, seed=0), max_tokens=40),
    req(SamplerParams(temperature=1.0, top_k=40, top_p=1.0, min_p=0.0, seed=3), max_tokens=12),
    req(SamplerParams(temperature=0.8, top_k=0, top_p=0.9, min_p=0.05, seed=7), max_tokens=40, stop=(".",)),
    req(SamplerParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=5), max_tokens=30),
    req(SamplerParams(temperature=0.9, repeat_penalty=1.3, repeat_last_n=32, seed=11), max_tokens=40),
    req(SamplerParams(temperature=0.7, greedy=True, repeat_penalty=1.5, seed=0), max_tokens=25),
]


def split_lanes(items, n: int) -> tuple[list[LaneTranscript], BatchDone]:
    lanes = [LaneTranscript() for _ in range(n)]
    batch = None
    for item in items:
        if isinstance(item, BatchDone):
            batch = item
            continue
        lane = lanes[item.lane]
        if isinstance(item.event, StartEvent):
            lane.start = item.event
        elif isinstance(item.event, TokenEvent):
            lane.tokens.append(item.event)
        else:
            assert lane.end is None, "one end event per lane"
            lane.end = item.event
    assert batch is not None
    return lanes, batch


def assert_same_run(lane: LaneTranscript, start, tokens: list[TokenEvent], end) -> float:
    """Ids, texts and ending exactly equal; returns the largest logprob difference."""
    assert [t.id for t in lane.tokens] == [t.id for t in tokens]
    assert [t.text for t in lane.tokens] == [t.text for t in tokens]
    assert lane.text == "".join(t.text for t in tokens) + end.tail
    assert lane.start.params == start.params and lane.start.prompt_tokens == start.prompt_tokens
    assert (lane.end.finish_reason, lane.end.n_tokens, lane.end.stop_string, lane.end.seed) == (
        end.finish_reason, end.n_tokens, end.stop_string, end.seed)
    for a, b in zip(lane.tokens, tokens):
        assert a.n_candidates == b.n_candidates
        assert [alt.id for alt in a.top[:1]] == [alt.id for alt in b.top[:1]]
        assert a.p_sampled == pytest.approx(b.p_sampled, abs=LOGPROB_TOL)
    return max((abs(a.logprob - b.logprob) for a, b in zip(lane.tokens, tokens)), default=0.0)


@pytest.mark.parametrize("reference", ["fresh engine", "same context"])
def test_lanes_equal_single_lane_runs(fresh_engine, lanes_engine, runner, reference):
    lanes, batch = split_lanes(runner.stream(LANES), len(LANES))
    single = fresh_engine if reference == "fresh engine" else lanes_engine
    worst = 0.0
    for lane, request in zip(lanes, LANES):
        start, tokens, end = collect(single.stream(request))
        assert isinstance(end, DoneEvent)
        worst = max(worst, assert_same_run(lane, start, tokens, end))
    assert worst <= LOGPROB_TOL
    # the lanes really ended at different times, and the batch summary adds up
    assert len({lane.end.n_tokens for lane in lanes}) > 2
    assert batch.n_tokens == sum(lane.end.n_tokens for lane in lanes)
    assert batch.n_steps == max(steps_needed(lane.end) for lane in lanes)


def steps_needed(end: DoneEvent) -> int:
    """Batched decodes a lane took part in: one per token after its first (which comes from the
    prompt's logits), plus one more when it ended by sampling an end-of-generation token."""
    eog = end.finish_reason == "stop" and end.stop_string is None
    return end.n_tokens - 1 + eog


def test_prompt_evaluated_once_and_reused(lanes_engine, runner):
    requests = LANES[:3]
    n_prompt = len(lanes_engine.model.tokenize(PROMPT, add_special=False))
    lanes_engine.reuse_prefix = False
    first, batch1 = split_lanes(runner.stream(requests), 3)
    lanes_engine.reuse_prefix = True
    again, batch2 = split_lanes(runner.stream(requests), 3)
    assert batch1.prompt_tokens_evaluated == n_prompt == batch1.prompt_tokens
    assert batch2.prompt_tokens_evaluated == 0  # sequence 0 kept the prompt, and its last row
    assert all(lane.end.prompt_tokens_evaluated == n_prompt for lane in first)
    assert [[t.id for t in lane.tokens] for lane in again] == [[t.id for t in lane.tokens] for lane in first]
    mem = lanes_engine.model.memory
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == n_prompt - 1
    for seq in range(1, seq_max_for(N_LANES)):  # the lanes' sequences are emptied after a run
        assert llama_cpp.llama_memory_seq_pos_max(mem, seq) == -1


def test_cancel_one_lane_then_all(runner):
    requests = [req(SamplerParams(temperature=0.0), max_tokens=20), req(SamplerParams(temperature=1.0, seed=1), max_tokens=20)]
    own = [None, threading.Event()]
    items = []
    for item in runner.stream(requests, lane_cancel=own):
        items.append(item)
        if isinstance(item, LaneEvent) and item.lane == 1 and isinstance(item.event, TokenEvent) and item.event.i == 2:
            own[1].set()
    lanes, _ = split_lanes(items, 2)
    assert lanes[1].end.finish_reason == "cancelled" and lanes[1].end.n_tokens == 3
    assert lanes[0].end.n_tokens == 20 or lanes[0].end.finish_reason == "stop"
    cancel = threading.Event()
    items = []
    for item in runner.stream(requests, cancel):
        items.append(item)
        if isinstance(item, LaneEvent) and item.lane == 1 and isinstance(item.event, TokenEvent) and item.event.i == 0:
            cancel.set()  # after the first step: both lanes have one token, the next step ends both
    lanes, batch = split_lanes(items, 2)
    assert [lane.end.finish_reason for lane in lanes] == ["cancelled", "cancelled"]
    assert [lane.end.n_tokens for lane in lanes] == [1, 1] and batch.n_steps == 1


def _sampled_until_divergence(engine, max_tokens: int):
    """A seed whose sampled completion leaves the greedy one after at least two shared tokens."""
    greedy = req(SamplerParams(temperature=0.0), max_tokens=max_tokens)
    _, greedy_tokens, _ = collect(engine.stream(greedy))
    for seed in range(100):
        sampled = req(SamplerParams(temperature=0.6, top_k=40, top_p=1.0, min_p=0.0, seed=seed), max_tokens=max_tokens)
        _, tokens, _ = collect(engine.stream(sampled))
        n = min(len(tokens), len(greedy_tokens))
        index = next((i for i in range(n) if tokens[i].id != greedy_tokens[i].id), None)
        if index is not None and index >= 2:
            return greedy, greedy_tokens, sampled, tokens, index
    pytest.fail("no seed in 100 shares two tokens with greedy before leaving it")


def test_divergence_index_against_single_runs(fresh_engine, runner):
    greedy, greedy_tokens, sampled, sampled_tokens, index = _sampled_until_divergence(fresh_engine, 16)
    short = req(SamplerParams(temperature=0.0), max_tokens=5)
    out: list[LaneTranscript] = []
    events = list(run_compare(runner, [greedy, sampled, greedy, short], transcripts=out))
    divs = [e for e in events if not isinstance(e, (LaneEvent, BatchDone))]
    assert [d.lane for d in divs] == [1, 2, 3]
    d = divs[0]
    assert d.index == index
    assert (d.token.id, d.reference_token.id) == (sampled_tokens[index].id, greedy_tokens[index].id)
    # both probabilities are the model's, at the same position: what the single runs saw there
    assert d.token.logprob == pytest.approx(sampled_tokens[index].logprob, abs=LOGPROB_TOL)
    assert d.reference_token.logprob == pytest.approx(greedy_tokens[index].logprob, abs=LOGPROB_TOL)
    assert d.reference_token.logprob >= d.token.logprob  # greedy took the most likely token
    assert divs[1].index is None  # two greedy lanes never part
    if len(greedy_tokens) > 5:  # the 5-token greedy lane is a prefix of the greedy lane
        assert divs[2].index == 5 and divs[2].token is None and divs[2].reference_token.id == greedy_tokens[5].id


def test_lane_limits(lanes_engine, runner):
    with pytest.raises(InvalidParameterError, match="n_seq_max"):
        list(runner.stream([LANES[0]] * (N_LANES + 1)))
    # lanes with different prompts are allowed now: tests/test_lanes_prompts.py


def test_full_context_ends_lanes_with_length():
    eng = EngineChoice(n_ctx=256).load(n_seq_max=seq_max_for(4))
    run = LaneRunner(eng)
    try:
        prompt = "Count: " + " ".join(str(i) for i in range(60))
        n_prompt = len(eng.model.tokenize(prompt))
        requests = [GenerationRequest(prompt, SamplerParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=s),
                                      max_tokens=200, top_n=0) for s in range(4)]
        lanes, batch = split_lanes(run.stream(requests), 4)
        assert all(isinstance(lane.end, DoneEvent) for lane in lanes)
        full = [lane for lane in lanes if lane.end.finish_reason == "length"]
        assert full, "the cache should fill before 4 x 200 tokens"
        # every token but each lane's last went into the cache, which holds n_ctx cells in all
        assert n_prompt + batch.n_tokens - 4 <= eng.model.n_ctx
    finally:
        run.close()
        eng.close()
    

def test_bench_sides_produce_the_same_tokens():
    from playground.compare.bench import run_bench

    result = run_bench(EngineChoice(n_ctx=1024), lanes=2, tokens=4, rounds=1, prompt_tokens=60, scaling_lanes=(1, 2))
    assert result["same_tokens"] is True  # a short prompt: the same attention kernel on both sides
    assert result["prompt_tokens"] >= 60 and set(result["scaling"]) == {"1", "2"}
    assert result["scaling"]["2"]["tokens"] <= 2 * 4
    assert len(result["sequential_s"]) == len(result["batched_s"]) == 1 and result["ratio_of_minima"] > 0


def test_each_lane_streams_utf8_on_its_own(fresh_engine, runner):
    prompt = CHAT.format("Reply with only emoji and Korean: 😀🎉🚀 안녕하세요")
    requests = [req(SamplerParams(temperature=0.0, seed=0), max_tokens=16, prompt=prompt),
                req(SamplerParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=2), max_tokens=16, prompt=prompt)]
    lanes, _ = split_lanes(runner.stream(requests), 2)
    for lane, request in zip(lanes, requests):
        completion = b"".join(fresh_engine.model.piece(t.id) for t in lane.tokens).decode("utf-8", "replace")
        assert lane.text == completion
        _, tokens, end = collect(fresh_engine.stream(request))
        assert [t.text for t in tokens] == [t.text for t in lane.tokens] and end.tail == lane.end.tail
    assert any(ord(ch) > 127 for lane in lanes for ch in lane.text)


def test_long_context_lanes_equal_single_thread_runs(runner):
    """From 512 KV cells on, llama.cpp decodes ONE token with a split-KV flash-attention kernel (KV
    chunks per thread, merged after), and a batch with a kernel that runs each query over all cells.
    Their floats differ (up to ~0.2 nats on sampled tokens here), exactly as a 1-thread single run
    differs from a 2-thread one. A 1-thread single run uses the unsplit kernel: lanes must then give
    the same ids and bit-identical logprobs, which shows the batching itself changes nothing."""
    from playground.compare.bench import bench_prompt

    single = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    try:
        prompt = bench_prompt(single, 300)  # the cache then spans 512 cells (llama.cpp pads to 256)
        requests = [req(SamplerParams(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, seed=s), max_tokens=8, prompt=prompt)
                    for s in (1, 2)]
        # Both sides evaluate the whole prompt in one batch: a reused prefix would batch another
        # slice of it, which also moves the floats once the cache spans 512 cells.
        runner.engine.reuse_prefix = False
        try:
            lanes, _ = split_lanes(runner.stream(requests), 2)
        finally:
            runner.engine.reuse_prefix = True
        assert all(lane.end.n_tokens == 8 for lane in lanes)  # both lanes live at every step
        for lane, request in zip(lanes, requests):
            start, tokens, end = collect(single.stream(request))
            assert assert_same_run(lane, start, tokens, end) <= LOGPROB_TOL
    finally:
        single.close()


def test_four_seeded_lanes_repeated_give_identical_runs(runner, fresh_engine):
    """The self-consistency case of issue 9: the same 4 seeded lanes again, also after another
    prompt sharing most of this one ran in between, give exactly the same texts and numbers."""
    from playground.compare.bench import bench_prompt

    prompt = bench_prompt(fresh_engine, 300)
    edited = prompt.replace("Continue the log", "Summarise the log")
    sampler = SamplerParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05)
    requests = [req(sampler.replace(seed=s), max_tokens=12, prompt=prompt) for s in (1, 2, 3, 4)]

    def run(reqs):
        lanes, batch = split_lanes(runner.stream(reqs), len(reqs))
        return [(lane.text, [(t.id, t.logprob, t.entropy) for t in lane.tokens]) for lane in lanes], batch

    first, batch1 = run(requests)
    again, batch2 = run(requests)
    run([dataclasses.replace(r, prompt=edited) for r in requests])
    third, batch3 = run(requests)
    assert again == first and third == first
    assert batch2.prompt_tokens_evaluated == 0
    assert 0 < batch3.prompt_tokens_evaluated < batch3.prompt_tokens  # whole chunks were reused
    assert len({text for text, _ in first}) > 1  # the seeds really sample different texts
