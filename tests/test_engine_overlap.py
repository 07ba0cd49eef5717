"""Decoding token t+1 while token t's statistics are computed changes no number and no ending."""

from __future__ import annotations

from helpers import CHAT, collect
from playground.engine.generator import Engine
from playground.engine.llama_model import LlamaModel, ModelOptions
from playground.model_file import resolve_model
from playground.params import GenerationRequest, SamplerParams


def _engine(overlap: bool) -> Engine:
    return Engine(LlamaModel(resolve_model(None), ModelOptions(n_ctx=1024, n_threads=1)), overlap=overlap)


def test_overlapped_and_serial_streams_are_identical():
    request = GenerationRequest(CHAT.format("Write two sentences about owls."), SamplerParams(temperature=0.9, seed=5),
                                max_tokens=24, top_n=20, add_special=False)
    runs = []
    for overlap in (True, False):
        eng = _engine(overlap)
        try:
            assert eng.overlap is overlap
            _, tokens, done = collect(eng.stream(request, dist_size=64))
            # a consumer that leaves mid-stream: the decode in flight finishes, the engine goes on
            stream = eng.stream(request)
            next(stream), next(stream), next(stream)
            stream.close()
            _, again, _ = collect(eng.stream(request))
            numbers = [(t.id, t.text, t.logprob, t.entropy, t.p_sampled, tuple(a.logprob for a in t.top),
                        t.dist.ids.tolist()) for t in tokens]
            runs.append((numbers, done.finish_reason, done.n_tokens, [t.id for t in again]))
        finally:
            eng.close()
    assert runs[0] == runs[1]
    assert runs[0][3] == [t[0] for t in runs[0][0]]
