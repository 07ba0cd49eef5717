"""Streaming behaviour of the engine: UTF-8, prefix reuse, stops, limits, cancel."""

from __future__ import annotations

import threading

import pytest

from helpers import CHAT, collect
from playground.engine.utf8_stream import Utf8Stream
from playground.errors import PromptTooLongError
from playground.params import GenerationRequest, SamplerParams


def test_utf8_stream_splits_characters_anywhere():
    text = "한국어 😀 naïve ∑ 代码"
    data = text.encode("utf-8")
    for size in (1, 2, 3, 5):
        stream = Utf8Stream()
        parts = [stream.push(data[i : i + size]) for i in range(0, len(data), size)]
        assert "".join(parts) + stream.flush() == text
        if size <= 2:  # a character split across chunks yields "" first, never garbage
            assert "" in parts
        assert "\ufffd" not in "".join(parts)


def test_utf8_stream_flushes_incomplete_tail():
    stream = Utf8Stream()
    assert stream.push("가".encode()[:2]) == ""
    assert stream.pending
    assert stream.flush() == "\ufffd"


@pytest.mark.parametrize(
    "instruction",
    [
        "다음 문장을 그대로 반복하세요: 안녕하세요, 만나서 반갑습니다. 오늘 날씨가 좋네요.",
        "Reply with only emoji: 😀🎉🚀🌍🔥💡",
        "Write a Python function that returns the sum of a list, with a docstring.",
    ],
)
def test_streamed_text_concatenates_to_the_completion(engine, instruction):
    request = GenerationRequest(CHAT.format(instruction), SamplerParams(temperature=0.0), max_tokens=48, top_n=0, add_special=False)
    _, tokens, done = collect(engine.stream(request))
    completion = b"".join(engine.model.piece(t.id) for t in tokens).decode("utf-8", "replace")
    assert "".join(t.text for t in tokens) + done.tail == completion
    if not instruction.startswith("Write"):
        assert any(ord(ch) > 127 for ch in completion)


def test_prefix_reuse_evaluates_only_the_new_suffix(engine):
    long_context = " ".join(f"Item {i}: the quick brown fox jumps over the lazy dog." for i in range(60))
    base = CHAT.format(long_context + "\nSummarise the list.")
    first = GenerationRequest(base, SamplerParams(temperature=0.0), max_tokens=4, top_n=0, add_special=False)
    engine.reuse_prefix = True
    _, _, done1 = collect(engine.stream(first))
    n_prompt = len(engine.model.tokenize(base, add_special=False))
    # an earlier run may share the chat template's first tokens, nothing more
    assert n_prompt - 8 <= done1.prompt_tokens_evaluated <= n_prompt
    # only the sampler changes: nothing is evaluated (the prompt's last row was kept)
    second = GenerationRequest(base, SamplerParams(temperature=0.7, seed=1), max_tokens=4, top_n=0, add_special=False)
    _, _, done2 = collect(engine.stream(second))
    assert done2.prompt_tokens_evaluated == 0
    # an appended suffix: only the suffix, from the last whole chunk of the shared prefix on
    third_prompt = base + "Sure, here it is:"
    third = GenerationRequest(third_prompt, SamplerParams(temperature=0.0), max_tokens=4, top_n=0, add_special=False)
    _, _, done3 = collect(engine.stream(third))
    base_ids = engine.model.tokenize(base, add_special=False)
    third_ids = engine.model.tokenize(third_prompt, add_special=False)
    n_third = len(third_ids)
    shared = next(i for i, (a, b) in enumerate(zip(base_ids + [-1], third_ids)) if a != b)
    chunk = engine.prefill_chunk
    assert done3.prompt_tokens_evaluated == n_third - (shared // chunk) * chunk < n_third
    # and it measurably skips work: a fresh evaluation of the same prompt is slower
    engine.reuse_prefix = False
    _, _, full = collect(engine.stream(second))
    engine.reuse_prefix = True
    assert full.prompt_tokens_evaluated == n_prompt
    assert full.ttft_s > 3 * done2.ttft_s


def test_max_tokens_and_length(engine):
    request = GenerationRequest(CHAT.format("Count from one to one hundred in words."), SamplerParams(temperature=0.0), max_tokens=7, top_n=0, add_special=False)
    _, tokens, done = collect(engine.stream(request))
    assert len(tokens) == 7 and done.finish_reason == "length" and done.n_tokens == 7


def test_stop_string_ends_the_run(engine):
    request = GenerationRequest(CHAT.format("Count from 1 to 20, separated by commas."), SamplerParams(temperature=0.0), max_tokens=80, top_n=0, stop=("5",), add_special=False)
    _, tokens, done = collect(engine.stream(request))
    text = "".join(t.text for t in tokens)
    assert done.finish_reason == "stop" and done.stop_string == "5"
    assert text.rstrip().endswith("5") or "5" in tokens[-1].text


def test_end_of_generation_token_stops(engine):
    request = GenerationRequest(CHAT.format("Say only the word yes."), SamplerParams(temperature=0.0), max_tokens=100, top_n=0, add_special=False)
    _, tokens, done = collect(engine.stream(request))
    assert done.finish_reason == "stop" and done.stop_string is None and len(tokens) < 100


def test_cancel_between_tokens(engine):
    cancel = threading.Event()
    request = GenerationRequest(CHAT.format("Write a long essay about the sea."), SamplerParams(temperature=0.0), max_tokens=200, top_n=0, add_special=False)
    seen = 0
    done = None
    for event in engine.stream(request, cancel):
        if hasattr(event, "i"):
            seen += 1
            if seen == 3:
                cancel.set()
        elif hasattr(event, "finish_reason"):
            done = event
    assert seen == 3 and done.finish_reason == "cancelled" and done.n_tokens == 3


def test_prompt_longer_than_context_is_refused(engine):
    request = GenerationRequest("word " * 5000, max_tokens=4)
    with pytest.raises(PromptTooLongError, match="context holds"):
        list(engine.stream(request))
    # and the engine still works afterwards
    _, tokens, _ = collect(engine.stream(GenerationRequest(CHAT.format("Hi"), SamplerParams(temperature=0.0), max_tokens=3, add_special=False)))
    assert tokens


def test_timing_is_reported(engine):
    request = GenerationRequest(CHAT.format("Tell me about cats."), SamplerParams(temperature=0.0), max_tokens=10, top_n=0, add_special=False)
    _, tokens, done = collect(engine.stream(request))
    assert done.ttft_s > 0 and done.decode_tok_s > 0 and done.prompt_tok_s > 0
    assert all(b.t >= a.t for a, b in zip(tokens, tokens[1:]))
    assert tokens[0].t == pytest.approx(done.ttft_s)
