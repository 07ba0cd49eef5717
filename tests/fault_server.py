"""A tiny HTTP server on 127.0.0.1 that misbehaves on purpose, for the remote-backend tests.

Each test installs a script per path: ``server.route("/v1/completions", script)`` where
``script(call)`` uses ``call``'s helpers to answer (JSON, SSE/NDJSON streams that can be cut or
stalled, redirects). Every request is recorded (path, headers, JSON body) for assertions. Runs in
a daemon thread; ``close()`` releases any stalled handler at once.
"""

from __future__ import annotations

import functools
import json
import socket
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    client: tuple[str, int] = ("", 0)
    """The client's address and port: one per connection (requests on a kept-alive one share it)."""


@dataclass
class Call:
    """One request being answered; the helpers write the response."""

    handler: BaseHTTPRequestHandler
    record: Recorded
    released: threading.Event
    disconnected: threading.Event
    n: int
    """How many requests this path had before this one (0 for the first)."""

    def json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.raw(status, data, {"Content-Type": "application/json", **(headers or {})})

    def raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        h = self.handler
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def stream(self, chunks: Iterable[str | bytes], *, content_type: str = "text/event-stream", delay: float = 0.0,
               cut: bool = False, stall: float = 0.0, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Chunked response; ``cut`` drops the connection without the final chunk, ``stall``
        then waits that long (or until the server closes) before doing so. ``bytes`` chunks are
        sent as they are (invalid UTF-8, compressed data); ``delay`` stops early on ``close()``."""
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            for chunk in chunks:
                data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogatepass")
                if data:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    h.wfile.flush()
                if delay and self.released.wait(delay):
                    break
            if stall:
                self.released.wait(stall)
            if cut or stall:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            h.wfile.write(b"0\r\n\r\n")
        except OSError:  # broken pipe / reset: the client went away (a cancel), as some tests check
            self.disconnected.set()


Script = Callable[[Call], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is routine here
            super().handle_error(request, client_address)


class FaultServer:
    """``with FaultServer() as srv: srv.route(path, script); srv.url`` -> http://127.0.0.1:PORT."""

    def __init__(self) -> None:
        self.routes: dict[str, Script] = {}
        self.requests: list[Recorded] = []
        self.released = threading.Event()
        self.disconnected = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                rec = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                               tuple(self.client_address[:2]))
                n = sum(1 for r in server.requests if r.path == self.path)
                server.requests.append(rec)
                script = server.routes.get(self.path) or server.routes.get(self.path.partition("?")[0])
                if script is None:
                    Call(self, rec, server.released, server.disconnected, n).json(404, {"error": f"no route {self.path}"})
                    return
                script(Call(self, rec, server.released, server.disconnected, n))

            do_GET = do_POST

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fault-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, script: Script) -> None:
        self.routes[path] = script

    def start(self) -> "FaultServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def sse(objs: Iterable[Any], done: bool = True) -> list[str]:
    """SSE events for JSON objects (strings are sent verbatim), then ``data: [DONE]``."""
    out = [f"data: {o if isinstance(o, str) else json.dumps(o)}\n\n" for o in objs]
    return out + (["data: [DONE]\n\n"] if done else [])


def gzip_bomb(size: int, *, prefix: bytes = b"", fill: bytes = b"\0") -> Iterator[bytes]:
    """A gzip body that expands to ``prefix`` + ``size`` bytes of ``fill`` (a 1 GB bomb is about
    1 MB on the wire). It is a series of gzip members (RFC 1952 allows that): one 16 MiB member
    compressed once and sent again and again, so that the server spends no time compressing."""
    if prefix:
        yield _gzip(prefix)
    member = _gzip_fill(fill, _MEMBER)
    for _ in range(size // _MEMBER):
        yield member
    if size % _MEMBER:
        yield _gzip_fill(fill, size % _MEMBER)


_MEMBER = 16 << 20


def _gzip(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(data) + z.flush()


@functools.lru_cache(maxsize=8)
def _gzip_fill(fill: bytes, size: int) -> bytes:
    return _gzip((fill * (size // len(fill) + 1))[:size])


def big_line(size: int, *, prefix: bytes = b"data: ", fill: bytes = b"a", step: int = 1 << 16) -> Iterator[bytes]:
    """``prefix`` then ``size`` bytes of ``fill`` without a newline, made as it is sent."""
    yield prefix
    block = fill * (step // len(fill))
    for _ in range(size // len(block)):
        yield block


def drip(data: bytes) -> Iterator[bytes]:
    """``data`` one byte at a time (paced by ``Call.stream(delay=...)``)."""
    for k in range(len(data)):
        yield data[k:k + 1]


def ndjson(objs: Iterable[Any]) -> list[str]:
    return [json.dumps(o) + "\n" for o in objs]


def completion_chunk(text: str, logprob: float | None = None, top: dict[str, float] | None = None,
                     finish: str | None = None) -> dict[str, Any]:
    """One ``/v1/completions`` stream chunk in OpenAI's shape."""
    logprobs = None
    if logprob is not None:
        logprobs = {"tokens": [text], "token_logprobs": [logprob], "top_logprobs": [top or {text: logprob}], "text_offset": [0]}
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}]}


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Blackhole:
    """A listening socket whose accept queue is full, so new connections hang (connect timeout)."""

    sock: socket.socket = field(default_factory=socket.socket)
    fillers: list[socket.socket] = field(default_factory=list)

    def __enter__(self) -> str:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        port = self.sock.getsockname()[1]
        for _ in range(4):  # fill the backlog; further SYNs are dropped and connect() hangs
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        for s in self.fillers:
            s.close()
        self.sock.close()
