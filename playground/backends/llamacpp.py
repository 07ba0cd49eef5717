"""llama.cpp's own ``llama-server``, through its native ``POST /completion`` API (SSE).

Every sampler of the local engine is sent, in the local chain's order (``samplers``), and the
server's extra stages (DRY, XTC, typical, top-n-sigma, mirostat, presence/frequency penalties,
dynamic temperature) are sent switched off, so no server default changes the run.

llama-server answers ``n_probs`` per request in one of two ways: with ``post_sampling_probs: true``
the probabilities after its sampler chain (``prob``, ``top_probs``: the chosen token's p_sampled and
the surviving candidates), otherwise raw ``logprob`` / ``top_logprobs`` (softmax of the logits at
T = 1, before penalties). Both are asked for: the post-sampler request drives the run (text, ids,
p_sampled, n_candidates), and a second request with the same seed, read at the same time, gives
each token's raw logprob and alternatives; they are joined by position and only while their token
ids agree. ``raw_logprobs = false`` sends the first alone (logprob and alternatives then None).

Limits of the protocol: in stream mode the server sends no chunk for a token that ends inside a
multi-byte character, so such a token reaches us merged into the next one (one id, one p_sampled).
Its raw log-probabilities (here and on its ``/v1`` endpoints) read 1e-4 to 3e-4 nats higher than
the local engine's for the same logits: it normalises in float32, adding the probabilities in
sorted order, so the vocabulary's tail is rounded away; gaps between two of a position's values
are exact (within 1e-6). p_sampled comes from the same draw as the local engine's for a seed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx

from playground.backends.base import Capabilities
from playground.backends.faults import RemoteFailure, server_detail
from playground.backends.logprob_shapes import ByteJoiner, logprob_entries, sampled_entries
from playground.backends.remote import Finish, Piece, RemoteBackend
from playground.backends.sse import as_count, as_list, as_text, iter_sse, parse_json_object
from playground.backends.timing import Clock, until
from playground.params import MAX_TOP_N, GenerationRequest, SamplerParams

#: The local engine's default chain (playground/engine/sampler_chain.py), in llama-server's names.
CHAIN = ("penalties", "top_k", "top_p", "min_p", "temperature")
#: SamplerParams fields llama-server takes under the same name.
SAME_NAME = (
    "typical_p", "top_n_sigma", "xtc_probability", "xtc_threshold", "dry_multiplier", "dry_base",
    "dry_allowed_length", "dry_penalty_last_n", "presence_penalty", "frequency_penalty", "mirostat",
    "mirostat_tau", "mirostat_eta", "dynatemp_range", "dynatemp_exponent",
)
_ALL_PARAMS = frozenset(f.name for f in dataclasses.fields(SamplerParams))


class LlamaCppBackend(RemoteBackend):
    """Streams from llama.cpp's llama-server (base URL: the server root; a trailing /v1 is ignored)."""

    backend_label = "llamacpp"

    def make_capabilities(self) -> Capabilities:
        e = self.endpoint
        raw = e.logprobs and e.raw_logprobs
        return Capabilities(
            logprobs=raw,
            max_alternatives=MAX_TOP_N if raw else 0,
            sampled_prob=e.logprobs,
            distribution=False,
            raw_prompt=True,
            chat=False,
            seed=True,
            cancel=True,
            token_ids=True,
            sampler_params=_ALL_PARAMS,
        )

    @property
    def requests_per_stream(self) -> int:
        """Two with raw logprobs: the post-sampler and the raw request are read side by side."""
        return 2 if self.capabilities.logprobs else 1

    def url(self, path: str) -> str:
        base = super().url("")
        head, _, query = base.partition("?")
        head = head.rstrip("/")
        if head.endswith("/v1"):  # the OpenAI-style URL of the same server: the native API is at its root
            head = head[: -len("/v1")]
        return head + path + (f"?{query}" if query else "")

    def build(self, request: GenerationRequest, seed: int | None) -> tuple[str, dict[str, Any]]:
        s = request.sampler
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "stream": True,
            "n_predict": request.max_tokens,
            "temperature": 0.0 if s.is_greedy else s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "min_keep": 1,  # the local chain's top-p and min-p keep at least one token
            "repeat_penalty": s.repeat_penalty,
            "repeat_last_n": s.repeat_last_n,  # -1 is the whole context on both sides
            # Greedy locally is penalties and DRY -> greedy; temperature 0 here keeps only the top token.
            "samplers": [n for n in s.samplers if n in ("penalties", "dry")] + ["temperature"] if s.is_greedy else list(s.samplers),
            **{name: getattr(s, name) for name in SAME_NAME},
            "dry_sequence_breakers": list(s.dry_sequence_breakers),
            # llama-server takes [id, bias] or [text, bias] (text: every token of it, so one-token text agrees)
            "logit_bias": [[b.token if b.token is not None else b.text, b.bias] for b in s.logit_bias],
        }
        if seed is not None:
            body["seed"] = seed
        if request.stop:
            body["stop"] = list(request.stop)
        if self.endpoint.logprobs:
            body["n_probs"] = self._sampled_n(request)
            body["post_sampling_probs"] = True
        return "/completion", body

    def describe_params(self, request: GenerationRequest, seed: int | None, body: dict[str, Any]) -> dict[str, Any]:
        params = super().describe_params(request, seed, body)
        params["samplers"] = body["samplers"]
        params["probabilities"] = {
            "p_sampled": "server (post_sampling_probs)" if self.endpoint.logprobs else None,
            "logprob": "server, second request (raw)" if self.capabilities.logprobs else None,
        }
        return params

    @staticmethod
    def _sampled_n(request: GenerationRequest) -> int:
        """Candidates asked for after sampling: all top-k survivors when that bounds them, so that
        their count (n_candidates) is known."""
        k = request.sampler.top_k
        return max(1, request.top_n, min(k, MAX_TOP_N) if k > 0 else 0)

    async def open_parts(self, path: str, body: dict[str, Any], request: GenerationRequest, cancel: threading.Event,
                         clock: Clock, responses: list[httpx.Response]) -> AsyncIterator[Piece | Finish]:
        response = await until(self._open(path, body, cancel, clock), cancel, clock)
        responses.append(response)
        n_sampled = body.get("n_probs", 0)
        main = self._parse(response, n_sampled, post=True)
        if not self.capabilities.logprobs:
            return main
        raw_body = {**body, "n_probs": max(1, request.top_n), "post_sampling_probs": False}
        return self._joined(main, path, raw_body, request, cancel, clock, responses)

    def parse(self, response: httpx.Response, request: GenerationRequest) -> AsyncIterator[Piece | Finish]:
        return self._parse(response, self._sampled_n(request), post=True)

    async def _parse(self, response: httpx.Response, n_probs: int, *, post: bool) -> AsyncIterator[Piece | Finish]:
        """One native stream: a Piece per chunk, one Finish at ``stop: true``."""
        joiner = ByteJoiner()
        async for event in iter_sse(self.lines(response)):
            obj = parse_json_object(event.data)
            if event.event == "error" or "error" in obj:
                raise RemoteFailure(f"the server reported an error: {server_detail(event.data)}")
            if obj.get("stop") is True:
                yield _finish(obj)
                return
            text = as_text(obj.get("content"))
            ids = [t for t in as_list(obj.get("tokens")) if isinstance(t, int) and not isinstance(t, bool)]
            probs = obj.get("completion_probabilities")
            if post:
                entries = sampled_entries(probs, n_probs, joiner)
                if entries:
                    e = entries[-1]  # one per chunk; the chunk's text is the server's
                    known = len(e.survivors) if len(e.survivors) < n_probs else None
                    yield dataclasses.replace(e.piece, text=text, p_sampled=e.p_sampled, n_candidates=known,
                                              id=e.piece.id if e.piece.id >= 0 else (ids[-1] if ids else -1))
                    continue
            else:
                pieces = logprob_entries(probs, n_probs, joiner)
                if pieces:
                    yield dataclasses.replace(pieces[-1], text=text)
                    continue
            if text or ids:
                yield Piece(text, id=ids[-1] if ids else -1)

    async def _joined(self, main: AsyncIterator[Piece | Finish], path: str, raw_body: dict[str, Any],
                      request: GenerationRequest, cancel: threading.Event, clock: Clock,
                      responses: list[httpx.Response]) -> AsyncIterator[Piece | Finish]:
        """The main stream's pieces with the raw stream's logprob and alternatives at the same
        position. Both are read at once: with one server slot the second request starts only when
        the first has ended, and a stream left unread would stall the server."""
        got: dict[str, list[Piece]] = {"main": [], "raw": []}
        ends: dict[str, Finish | None] = {}
        errors: list[BaseException] = []
        changed = asyncio.Event()

        async def pump(name: str, parts: AsyncIterator[Piece | Finish] | None) -> None:
            try:
                if parts is None:  # the raw request is opened here, alongside the main stream
                    response = await self._open(path, raw_body, cancel, clock)
                    responses.append(response)
                    parts = self._parse(response, raw_body["n_probs"], post=False)
                async for item in parts:
                    if isinstance(item, Finish):
                        ends[name] = item
                        break
                    got[name].append(item)
                    changed.set()
            except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
                errors.append(_second(exc) if name == "raw" else exc)
            finally:
                ends.setdefault(name, None)
                changed.set()
                if parts is not None:
                    await parts.aclose()

        tasks = [asyncio.ensure_future(pump("main", main)), asyncio.ensure_future(pump("raw", None))]
        i, agree = 0, True
        try:
            while True:
                changed.clear()
                if errors:
                    raise errors[0]
                mains, raws = got["main"], got["raw"]
                while i < len(mains) and (i < len(raws) or "raw" in ends):
                    piece, raw = mains[i], (raws[i] if i < len(raws) else None)
                    agree = agree and raw is not None and raw.id == piece.id
                    yield dataclasses.replace(piece, logprob=raw.logprob, top=raw.top) if agree and raw else piece
                    i += 1
                if "main" in ends and i >= len(mains) and "raw" in ends:
                    break
                await changed.wait()
            if ends.get("raw") is None:
                raise RemoteFailure("the second request (raw log-probabilities) ended before the server said it was done")
            if ends["main"] is not None:
                yield ends["main"]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _second(exc: Exception) -> Exception:
    """A fault of the raw-logprob request, saying so (the message reaches the user)."""
    if isinstance(exc, RemoteFailure):
        return RemoteFailure(f"{exc.cause} (in the second request, for raw log-probabilities)")
    return exc


def _finish(obj: dict[str, Any]) -> Finish:
    timings = obj.get("timings") if isinstance(obj.get("timings"), dict) else {}
    rate = timings.get("prompt_per_second")
    rate = float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate < 1e12 else None
    reason = "length" if obj.get("stop_type") == "limit" else "stop"
    return Finish(reason, prompt_tokens=as_count(obj.get("tokens_evaluated")), prompt_tok_s=rate)
