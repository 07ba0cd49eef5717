"""Ollama's native API: ``/api/generate`` (raw prompt) and ``/api/chat``, streamed as NDJSON.

Request: ``options`` carries the sampler (temperature, top_k, top_p, min_p, repeat_penalty,
repeat_last_n, seed, num_predict, stop); ``logprobs: true`` and ``top_logprobs`` (0-20) ask for
probabilities. Each streamed object may carry ``logprobs: [{token, logprob, bytes,
top_logprobs: [{token, logprob, bytes}]}]`` (Ollama >= 0.12.11; older servers omit it and the
tokens then have no probabilities). The last object has ``done: true``, ``done_reason`` and the
prompt's ``prompt_eval_count`` / ``prompt_eval_duration`` (ns).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from playground.backends.base import Capabilities
from playground.backends.faults import RemoteFailure, server_detail
from playground.backends.logprob_shapes import ByteJoiner, logprob_entries
from playground.backends.remote import Finish, Piece, RemoteBackend, pieces_for
from playground.backends.sse import MalformedStream, as_count, as_rate, as_text, iter_ndjson
from playground.params import GenerationRequest

MAX_TOP = 20
_PARAMS = frozenset({"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "greedy"})


class OllamaBackend(RemoteBackend):
    """Streams from an Ollama server (every llama.cpp sampler setting is native there)."""

    backend_label = "ollama"

    def make_capabilities(self) -> Capabilities:
        e = self.endpoint
        return Capabilities(
            logprobs=e.logprobs,
            max_alternatives=MAX_TOP if e.logprobs else 0,
            sampled_prob=False,
            distribution=False,
            raw_prompt=not self.chat,
            chat=self.chat,
            seed=True,
            cancel=True,
            token_ids=False,
            sampler_params=_PARAMS,
        )

    def build(self, request: GenerationRequest, seed: int | None) -> tuple[str, dict[str, Any]]:
        s = request.sampler
        options: dict[str, Any] = {
            "temperature": 0.0 if s.is_greedy else s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
            "repeat_last_n": s.repeat_last_n,
            "num_predict": request.max_tokens,
        }
        if seed is not None:
            options["seed"] = seed
        if request.stop:
            options["stop"] = list(request.stop)
        body: dict[str, Any] = {"model": self.endpoint.model, "stream": True, "options": options}
        if self.endpoint.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = min(request.top_n, MAX_TOP)
        if self.chat:
            messages = request.messages or (("user", request.prompt),)
            body["messages"] = [{"role": role, "content": content} for role, content in messages]
            return "/api/chat", body
        body["prompt"] = request.prompt
        body["raw"] = True  # the prompt is sent as is, without the model's template
        return "/api/generate", body

    async def parse(self, response: httpx.Response, request: GenerationRequest) -> AsyncIterator[Piece | Finish]:
        top_n = min(request.top_n, MAX_TOP)
        joiner = ByteJoiner()  # exact UTF-8 from ``bytes``, across tokens that split a character
        async for obj in iter_ndjson(self.lines(response)):
            if "error" in obj:
                raise RemoteFailure(f"the server reported an error: {_error_text(obj['error'])}")
            if self.chat:
                message = obj.get("message") or {}
                if not isinstance(message, dict):
                    raise MalformedStream("'message' is not an object")
                text = as_text(message.get("content"))
            else:
                text = as_text(obj.get("response"))
            for piece in pieces_for(text, logprob_entries(obj.get("logprobs"), top_n, joiner)):
                yield piece
            if obj.get("done") is True:
                yield _finish(obj)
                return


def _finish(obj: dict[str, Any]) -> Finish:
    count, duration = obj.get("prompt_eval_count"), obj.get("prompt_eval_duration")
    reason = obj.get("done_reason")
    return Finish(reason if isinstance(reason, str) and reason else "stop", prompt_tokens=as_count(count),
                  prompt_tok_s=as_rate(count, duration, per_second=1e9))  # ns


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message")
    return server_detail(error) if isinstance(error, str) else "(no readable message)"
