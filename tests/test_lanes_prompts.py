"""Lanes with different prompts (prompt variants): each equals a single run of its own prompt, token
for token and float for float, and a prefix the prompts share is evaluated once."""

from __future__ import annotations

import llama_cpp
import pytest

from helpers import CHAT, collect
from playground.engine.lanes import LaneRunner, seq_max_for
from playground.engine.prefill import plan_shared_prefill
from playground.engine_options import EngineChoice
from playground.events import DoneEvent
from test_lanes import split_lanes

BASE = "You are a careful assistant. " + " ".join(f"Fact {i}: the number {i} squared is {i * i}." for i in range(40))
PROMPTS = [
    CHAT.format(BASE + " Question: what is 7 squared?"),
    CHAT.format(BASE + " Question: name a fox."),
    # two own chunks after the shared prefix: one of them a full 128-token chunk (tiled attention)
    CHAT.format(BASE + " " + " ".join(f"Extra {i}." for i in range(30)) + " Question: tell me a story."),
]


@pytest.fixture(scope="module")
def engines():
    single = EngineChoice(n_ctx=2048, n_threads=1).load(reuse_prefix=False)
    lanes = EngineChoice(n_ctx=2048, n_threads=1).load(n_seq_max=seq_max_for(4))
    runner = LaneRunner(lanes)
    yield single, lanes, runner
    runner.close()
    lanes.close()
    single.close()


def requests():
    from playground.params import GenerationRequest, SamplerParams

    seeds = (1, 2, 3, 4)
    prompts = PROMPTS + [PROMPTS[0]]  # lane 3 repeats lane 0's prompt with another seed
    return [GenerationRequest(p, SamplerParams(temperature=0.9, seed=s), max_tokens=12, top_n=3, add_special=False)
            for p, s in zip(prompts, seeds)]


def numbers(tokens):
    return [(t.id, t.text, t.logprob, t.entropy, t.p_sampled, [(a.id, a.logprob) for a in t.top]) for t in tokens]


def independent_evaluated(token_lists, chunk):
    """Prompt tokens a shared prefill must evaluate, counted without the engine's planner: each
    distinct prompt costs its length less the whole chunks it shares with the best earlier one."""
    distinct = []
    for tokens in token_lists:
        if tokens not in distinct:
            distinct.append(tokens)
    total = len(distinct[0])
    for j, tokens in enumerate(distinct[1:], 1):
        best = 0
        for earlier in distinct[:j]:
            n = 0
            while n < min(len(earlier), len(tokens)) and earlier[n] == tokens[n]:
                n += 1
            best = max(best, min(n, len(tokens) - 1) // chunk * chunk)
        total += len(tokens) - best
    return total, sum(len(t) for t in distinct)


def test_plan_shares_whole_chunks_with_the_best_earlier_prompt():
    a = list(range(300))
    b = list(range(260)) + [-1] * 40   # shares 256 = 2 chunks of 128 with a
    c = list(range(130)) + [-2] * 10   # shares 128 with a and with b (the first wins)
    d = [-3] * 50                      # shares nothing
    e = list(range(256))               # all of it is a's prefix: the last chunk is its own
    assert plan_shared_prefill([a, b, c, d, e], 128) == [(-1, 0), (0, 256), (0, 128), (-1, 0), (0, 128)]


def test_different_prompts_equal_single_runs_and_share_the_prefix(engines):
    single, lanes_engine, runner = engines
    reqs = requests()
    token_lists = [single.model.tokenize(r.prompt, add_special=False) for r in reqs]
    assert min(map(len, token_lists)) > 640 and len(set(map(tuple, token_lists))) == 3
    for attempt in range(2):  # and again: the same numbers from whatever the first run left behind
        lanes, batch = split_lanes(runner.stream(reqs), len(reqs))
        for lane, request in zip(lanes, reqs):
            start, tokens, end = collect(single.stream(request))
            assert isinstance(end, DoneEvent) and isinstance(lane.end, DoneEvent)
            assert numbers(lane.tokens) == numbers(tokens)  # exactly: ids, texts, every float
            assert lane.start.prompt_tokens == start.prompt_tokens and lane.start.prompt == request.prompt
            assert (lane.end.finish_reason, lane.end.n_tokens, lane.end.tail) == (end.finish_reason, end.n_tokens, end.tail)
        evaluated, total = independent_evaluated(token_lists, lanes_engine.prefill_chunk)
        assert batch.n_prompts == 3 and batch.prompt_tokens == total
        assert batch.prompt_tokens_evaluated == evaluated
        assert evaluated <= total - 2 * 640  # the 640-token prefix was evaluated once, not three times
        assert batch.prompt_tokens_shared == total - evaluated
    mem = lanes_engine.model.memory
    for seq in range(1, seq_max_for(4)):  # lanes, prompt groups and the padding are emptied after the run
        assert llama_cpp.llama_memory_seq_pos_max(mem, seq) == -1
    # a same-prompt run afterwards still equals single runs (the cache was re-laid out in between)
    same = [reqs[0], reqs[3]]
    lanes, batch = split_lanes(runner.stream(same), 2)
    assert batch.n_prompts == 1
    for lane, request in zip(lanes, same):
        _, tokens, _ = collect(single.stream(request))
        assert numbers(lane.tokens) == numbers(tokens)
