"""OpenAI-compatible servers (vLLM, trtllm-serve, llama.cpp's servers, OpenAI): SSE over httpx.

``/completions`` takes the raw prompt and ``logprobs`` as an integer (alternatives per token,
OpenAI allows up to 5); ``/chat/completions`` takes messages, ``logprobs: true`` and
``top_logprobs`` (up to 20, or vLLM's ``--max-logprobs``). Every logprob shape the engines send is
read (``logprob_shapes``); token ids are used where a server gives them (llama-server does). The
sampler's final probabilities are not part of the protocol: they stay None, never guessed. Sampler
settings not sent are the server's own (``server_defaults`` in the start event's params).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from playground.backends.base import Capabilities
from playground.backends.faults import RemoteFailure, server_detail
from playground.backends.logprob_shapes import ByteJoiner, logprob_entries
from playground.backends.remote import Finish, Piece, RemoteBackend, pieces_for
from playground.backends.sse import (
    DONE,
    MalformedStream,
    as_count,
    as_text,
    excerpt,
    iter_sse,
    parse_json_object,
)
from playground.errors import InvalidParameterError
from playground.params import GenerationRequest

CHAT_MAX_TOP = 20
_BASE_PARAMS = frozenset({"temperature", "top_p", "seed", "greedy", "presence_penalty", "frequency_penalty", "logit_bias"})


class OpenAIBackend(RemoteBackend):
    """Streams from an OpenAI-compatible endpoint in its ``mode`` (completions or chat)."""

    backend_label = "openai"

    def make_capabilities(self) -> Capabilities:
        e = self.endpoint
        top = (max(CHAT_MAX_TOP, e.max_logprobs) if self.chat else e.max_logprobs) if e.logprobs else 0
        return Capabilities(
            logprobs=e.logprobs,
            max_alternatives=top,
            sampled_prob=False,
            distribution=False,
            raw_prompt=not self.chat,
            chat=self.chat,
            seed=True,
            cancel=True,
            token_ids=False,
            sampler_params=_BASE_PARAMS | e.extra_params,
        )

    def build(self, request: GenerationRequest, seed: int | None) -> tuple[str, dict[str, Any]]:
        s = request.sampler
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "stream": True,
            "max_tokens": request.max_tokens,
            "temperature": 0.0 if s.is_greedy else s.temperature,
            "top_p": s.top_p,
        }
        if seed is not None:
            body["seed"] = seed
        if request.stop:
            body["stop"] = list(request.stop)
        for name in sorted(self.endpoint.extra_params):
            body[name] = getattr(s, name)
        for name in ("presence_penalty", "frequency_penalty"):  # OpenAI's own names; 0 is its default
            if getattr(s, name):
                body[name] = getattr(s, name)
        if s.logit_bias:
            if any(b.token is None for b in s.logit_bias):
                raise InvalidParameterError("OpenAI-compatible endpoints take a logit bias by token id only, not by text")
            body["logit_bias"] = {str(b.token): b.bias for b in s.logit_bias}
        top_n = min(request.top_n, self.capabilities.max_alternatives)
        if self.chat:
            messages = request.messages or (("user", request.prompt),)
            body["messages"] = [{"role": role, "content": content} for role, content in messages]
            if self.endpoint.logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = top_n
            return "/chat/completions", body
        body["prompt"] = request.prompt
        body["echo"] = False
        if self.endpoint.logprobs:
            body["logprobs"] = top_n  # 0 still returns the chosen token's log-probability
        return "/completions", body

    async def parse(self, response: httpx.Response, request: GenerationRequest) -> AsyncIterator[Piece | Finish]:
        top_n = min(request.top_n, self.capabilities.max_alternatives)  # servers may add the chosen one
        finish: Finish | None = None
        prompt_tokens: int | None = None
        joiner = ByteJoiner()  # one per stream: a character's bytes may span two tokens
        async for event in iter_sse(self.lines(response)):
            if event.data.strip() == DONE:
                break
            obj = parse_json_object(event.data)
            if event.event == "error" or "error" in obj:
                raise RemoteFailure(f"the server reported an error: {server_detail(event.data)}")
            usage = obj.get("usage")
            if isinstance(usage, dict) and as_count(usage.get("prompt_tokens")) is not None:
                prompt_tokens = usage["prompt_tokens"]
            choices = obj.get("choices")
            if not choices:
                continue
            if not isinstance(choices, list) or not isinstance(choices[0], dict):
                raise MalformedStream(f"'choices' is not a list of objects: {excerpt(event.data)}")
            choice = choices[0]
            if self.chat:
                delta = choice.get("delta")
                delta = delta if isinstance(delta, dict) else {}
                text = as_text(delta.get("content"))
            else:
                text = as_text(choice.get("text"))
            entries = logprob_entries(choice.get("logprobs"), top_n, joiner)
            for piece in pieces_for(text, entries):
                yield piece
            reason = choice.get("finish_reason")
            if reason:
                finish = Finish(reason if isinstance(reason, str) else "stop")
        if finish is not None:
            yield Finish(finish.reason, prompt_tokens=prompt_tokens)

