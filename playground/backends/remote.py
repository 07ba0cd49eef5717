"""What every HTTP backend shares: the request with bounded retries, cancel, faults as messages.

A subclass says what to send (``build``) and how to read the answer (``parse``: Piece per token,
then one Finish). This class turns that into StartEvent, TokenEvent..., Done/FailedEvent.

The API key is held in a ``Secret`` (its repr is ``***``), added as ``Authorization`` only to
requests for the configured base URL's origin, and redirects are never followed, so it cannot
travel to another host. Every message is passed through ``redact`` before it leaves, and token
text through a ``TokenRedactor``, with the key and any credentials written into the base URL.

Nothing a server sends ends the stream with a traceback: every fault, including an unforeseen
one, becomes one FailedEvent after the tokens already received. Time and memory are bounded
(``timing.Clock``; ``body``'s capped decompression and line lengths).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from playground.backends import constraints
from playground.backends.base import CLASSIC_SAMPLER_FIELDS, Capabilities, refuse_unhonoured_samplers
from playground.backends.body import ACCEPT_ENCODING, iter_body, iter_lines, read_error_body
from playground.backends.endpoints import Endpoint
from playground.backends.faults import RemoteFailure, http_status_message, transport_message
from playground.backends.redact import Redactor, TokenRedactor, display_url, guard_logs, url_secrets
from playground.backends.sse import MalformedStream, excerpt
from playground.backends.timing import Cancelled, Clock, TimeUp, retry_delay, sleep_unless, until
from playground.events import Alternative, DoneEvent, FailedEvent, StartEvent, StreamEvent, TokenEvent
from playground.params import RANDOM_SEED, GenerationRequest

__all__ = ["Cancelled", "Finish", "Piece", "RemoteBackend", "Secret", "pieces_for", "retry_delay", "same_origin"]

_END = object()
#: How long, and how much, is read after a stream's end marker to finish the response (see _drain).
_DRAIN_S = 0.25
_DRAIN_BYTES = 16 * 1024
#: Sampler fields that are no setting of their own on any wire ("greedy" is sent as temperature 0).
_NOT_A_SETTING = frozenset({"greedy"})


class Secret:
    """A string that does not show itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


@dataclass(frozen=True, slots=True)
class Piece:
    """One generated token as the server describes it; None/() where it says nothing."""

    text: str
    logprob: float | None = None
    top: tuple[Alternative, ...] = ()
    id: int = -1
    p_sampled: float | None = None
    """Probability in the server's final (post-sampler) distribution, where it says (llama-server)."""
    n_candidates: int | None = None
    """How many candidates survived its sampler chain, where that is known."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The server's end of the completion."""

    reason: str
    prompt_tokens: int | None = None
    prompt_tok_s: float | None = None


class RemoteBackend:
    """Base of the OpenAI-compatible, Ollama and llama-server backends.

    Several streams may run at once on one instance, on one event loop: they share its client and
    so its connection pool (a comparison's lanes on one endpoint, up to ``max_concurrency``).
    """

    backend_label: ClassVar[str] = "remote"

    def __init__(self, endpoint: Endpoint, api_key: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoint = endpoint.validate()
        self.name = endpoint.name
        self._key = Secret(api_key) if api_key else None
        self._secrets = Redactor([api_key, *url_secrets(endpoint.base_url)])
        guard_logs(self._secrets)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        #: Each open response's line reader (see ``lines``), until its stream ends.
        self._readers: dict[httpx.Response, AsyncIterator[list[str]]] = {}
        self.capabilities = replace(self.make_capabilities(),
                                    constraints=constraints.supported(endpoint.kind, self.chat))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.label}, model={self.endpoint.model!r})"

    @property
    def requests_per_stream(self) -> int:
        """HTTP requests one stream keeps open at once (what ``max_concurrency`` counts)."""
        return 1

    @property
    def chat(self) -> bool:
        """Sends chat messages (else the raw prompt)."""
        return self.endpoint.mode == "chat"

    # -- to be provided by subclasses --------------------------------------------------------
    def make_capabilities(self) -> Capabilities:
        raise NotImplementedError

    def build(self, request: GenerationRequest, seed: int | None) -> tuple[str, dict[str, Any]]:
        """(path under base_url, JSON body) for this request."""
        raise NotImplementedError

    def parse(self, response: httpx.Response, request: GenerationRequest) -> AsyncIterator[Piece | Finish]:
        """Piece per token, then one Finish; raise RemoteFailure for an error the server reports."""
        raise NotImplementedError

    # -- the stream -------------------------------------------------------------------------
    async def stream(self, request: GenerationRequest, cancel: threading.Event | None = None) -> AsyncIterator[StreamEvent]:
        request.validate()
        cancel = cancel or threading.Event()
        refuse_unhonoured_samplers(request.sampler, self.capabilities.sampler_params, self.endpoint.label)
        seed = self.resolve_seed(request)
        path, body = self.build(request, seed)
        # a constraint this protocol cannot carry is refused here, before any request
        body.update(constraints.constraint_fields(self.endpoint.kind, self.chat, request.constraint))
        t0 = time.perf_counter()
        yield StartEvent(
            model={"name": self.endpoint.model, "endpoint": self.endpoint.name, "base_url": display_url(self.endpoint.base_url),
                   "kind": self.endpoint.kind, "mode": self.endpoint.mode},
            prompt=request.prompt,
            prompt_tokens=(),  # the server's tokenisation is not returned
            params={**self.describe_params(request, seed, body),
                    **({"constraint": request.constraint.to_dict()} if request.constraint is not None else {})},
            backend=self.backend_label,
        )
        clock = Clock(self.endpoint.deadline, self.endpoint.progress_timeout)
        tokens = TokenRedactor(self._secrets)
        n, t_first, t_last, finish = 0, None, t0, None
        reason, failed = "stop", None
        responses: list[httpx.Response] = []
        parts: AsyncIterator[Piece | Finish] | None = None
        try:
            parts = await self.open_parts(path, body, request, cancel, clock, responses)
            while (item := await until(anext(parts, _END), cancel, clock)) is not _END:
                if isinstance(item, Finish):
                    finish = item
                    continue
                t_last = time.perf_counter()
                t_first = t_first if t_first is not None else t_last
                clock.progress()
                event = TokenEvent(i=n, id=item.id, text=item.text, logprob=item.logprob, p_sampled=item.p_sampled,
                                   top=item.top, t=t_last - t0, n_candidates=item.n_candidates)
                n += 1
                for ready in tokens.push(event):
                    yield ready
            if finish is None:
                raise RemoteFailure(f"the stream ended before the server said it was done, after {n} tokens (connection cut?)")
            reason = {"length": "length"}.get(finish.reason, "stop")
            await self._drain(responses)
        except Cancelled:
            reason = "cancelled"
        except TimeUp as exc:
            failed = clock.message(exc.which, n)
        except RemoteFailure as exc:
            failed = exc.cause
        except MalformedStream as exc:
            failed = f"malformed response after {n} tokens: {exc}"
        except httpx.HTTPError as exc:
            failed = transport_message(exc, self.endpoint, n)
        except Exception as exc:  # a last guard: whatever a server can provoke ends as a failure, not a traceback
            failed = f"unexpected {type(exc).__name__} reading the response after {n} tokens: {excerpt(str(exc), 200)}"
        finally:
            for response in responses:
                self._readers.pop(response, None)
            await self._close(parts, *responses)
        for ready in tokens.flush():  # tokens held back while they might have begun a secret
            yield ready
        if failed is not None:
            yield self._failed(failed, n)
            return
        decode_s = t_last - t_first if t_first is not None else 0.0
        yield DoneEvent(
            finish_reason=reason,  # type: ignore[arg-type]
            n_tokens=n,
            ttft_s=(t_first - t0) if t_first is not None else None,
            prompt_tok_s=finish.prompt_tok_s if finish else None,
            decode_tok_s=((n - 1) / decode_s) if n > 1 and decode_s > 0 else None,
            prompt_tokens_evaluated=(finish.prompt_tokens or 0) if finish else 0,
            seed=seed,
        )

    async def open_parts(self, path: str, body: dict[str, Any], request: GenerationRequest, cancel: threading.Event,
                         clock: Clock, responses: list[httpx.Response]) -> AsyncIterator[Piece | Finish]:
        """Send the request (one by default) and return its parsed parts; each response opened is
        added to ``responses`` at once, so that it is closed whatever happens next."""
        response = await until(self._open(path, body, cancel, clock), cancel, clock)
        responses.append(response)
        return self.parse(response, request)

    def lines(self, response: httpx.Response) -> AsyncIterator[list[str]]:
        """The response's text lines in batches: decompressed with a size cap, each line capped too.

        The reader is kept, so that what follows the parser's end marker can be read afterwards
        (``_drain``) and the connection go back to the pool."""
        reader = iter_lines(iter_body(response, int(self.endpoint.max_response_mb * 2**20)))
        self._readers[response] = reader
        return reader

    async def _drain(self, responses: list[httpx.Response]) -> None:
        """Read the rest of each finished response (its last chunk, usually already received), for a
        moment and a few KB at most: a response read to its end leaves its connection open for the
        next request (a comparison's next lane); one closed early closes the connection."""
        for response in responses:
            reader = self._readers.pop(response, None)
            if reader is None or response.is_closed:
                continue
            size = 0
            try:
                async with asyncio.timeout(_DRAIN_S):
                    async for batch in reader:
                        size += sum(map(len, batch))
                        if size > _DRAIN_BYTES:
                            break
            except Exception:  # noqa: BLE001 - a server that says more after its end: the connection closes
                pass

    @staticmethod
    async def _close(parts: Any, *responses: httpx.Response) -> None:
        """Close the parser, then the responses (the server sees a cancel); a failing close is moot."""
        for closable in (parts, *responses):
            if closable is not None:
                try:
                    await closable.aclose()
                except Exception:  # noqa: BLE001 - the run's outcome is already decided
                    pass

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- helpers ----------------------------------------------------------------------------
    def resolve_seed(self, request: GenerationRequest) -> int | None:
        """The seed sent: a fresh one for -1 so it can be shown and replayed; None if not sent."""
        if not self.capabilities.seed:
            return None
        seed = request.sampler.seed
        return random.randrange(0, 2**31 - 1) if seed == RANDOM_SEED else seed

    def describe_params(self, request: GenerationRequest, seed: int | None, body: dict[str, Any]) -> dict[str, Any]:
        honoured = self.capabilities.sampler_params
        sampler = request.sampler.to_dict()
        unsent = [k for k in sampler if k not in honoured and k in CLASSIC_SAMPLER_FIELDS]
        return {
            **sampler,
            "seed": seed,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop),
            "top_n": min(request.top_n, self.capabilities.max_alternatives),
            # The classic settings a kind cannot send; a newer stage it cannot send is refused
            # before the request unless it is off (refuse_unhonoured_samplers), so it is no news here.
            "not_sent": sorted(unsent),
            # Not sent, so the server's own default applies (llama-cpp-python's repeat_penalty 1.1...).
            "server_defaults": sorted(k for k in unsent if k not in _NOT_A_SETTING),
        }

    def redact(self, text: str) -> str:
        """``text`` with the key and the URL's credentials masked."""
        return self._secrets.text(text)

    def _failed(self, cause: str, n: int) -> FailedEvent:
        return FailedEvent("Backend", self.redact(f"{self.endpoint.label}: {cause}"), n)

    def _client_for_loop(self) -> httpx.AsyncClient:
        if self._client is None:
            e = self.endpoint
            # Room for every concurrent request and its connection kept alive for the next lane.
            room = max(e.max_concurrency, self.requests_per_stream)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(e.read_timeout, connect=e.connect_timeout),
                limits=httpx.Limits(max_connections=max(100, room), max_keepalive_connections=max(20, room)),
                follow_redirects=False,  # the key must not follow a redirect to another host
                transport=self._transport,
                trust_env=False,  # no proxy from the environment sees the key or the prompt
            )
        return self._client

    def url(self, path: str) -> str:
        """``path`` under the base URL, keeping its query (``?api-version=...&key=...``)."""
        parts = urlsplit(self.endpoint.base_url)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, fragment=""))

    def headers(self, url: str) -> dict[str, str]:
        """Authorization only for the configured origin (scheme, host, port); only encodings we
        decode ourselves, with bounded memory."""
        out = {"Accept-Encoding": ACCEPT_ENCODING}
        if self._key is not None and same_origin(url, self.endpoint.base_url):
            out["Authorization"] = f"Bearer {self._key.reveal()}"
        return out

    async def _open(self, path: str, body: dict[str, Any], cancel: threading.Event, clock: Clock) -> httpx.Response:
        """POST and return the streaming response once its status is 2xx; retries 429/503 first."""
        client = self._client_for_loop()
        url = self.url(path)
        e = self.endpoint
        for attempt in range(e.max_retries + 1):
            request = client.build_request("POST", url, json=body, headers=self.headers(url))
            response = await client.send(request, stream=True)
            if response.status_code < 300:
                return response
            try:
                text = await read_error_body(response)  # a few KB at most, however it is compressed
            finally:
                await response.aclose()
            said = http_status_message(response, text, e, self._key is not None)
            wait = retry_delay(response, attempt)
            if wait is not None and attempt < e.max_retries:
                if wait > e.max_retry_wait:
                    raise RemoteFailure(f"{said}; the server asks to wait {_seconds(wait)} (more than {e.max_retry_wait:g} s)")
                if wait >= clock.left():
                    raise RemoteFailure(f"{said}; the server asks to wait {_seconds(wait)}, past the request's limits")
                await sleep_unless(cancel, wait)
                continue
            retries = f" (after {attempt} retries)" if attempt else ""
            raise RemoteFailure(said + retries)
        raise AssertionError("unreachable")


def same_origin(a: str, b: str) -> bool:
    ua, ub = httpx.URL(a), httpx.URL(b)
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


def _seconds(wait: float) -> str:
    return f"{wait:g} s" if wait < 1e12 else "forever"


def pieces_for(text: str, entries: list[Piece]) -> list[Piece]:
    """Attach the server's per-token entries to the text of one streamed chunk.

    One entry: it is that chunk's token. Several: one Piece each when their texts add up to the
    chunk; otherwise the first carries the whole text (the text stays the server's). None: one
    Piece without probabilities (the chunk may then hold more than one token).
    """
    if not entries:
        return [Piece(text)] if text else []
    if len(entries) == 1:
        return [replace(entries[0], text=text)]
    if "".join(e.text for e in entries) == text:
        return entries
    return [replace(e, text=text if i == 0 else "") for i, e in enumerate(entries)]
