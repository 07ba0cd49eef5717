"""Reading a response body with bounded memory: our own decompression, capped sizes and lines.

httpx would decompress a whole network chunk at once (a 64 KB gzip chunk can expand to 64 MB) and
``aread()`` keeps everything, so a hostile server could exhaust memory with a small "bomb". Here
the raw bytes go through ``zlib`` with ``max_length``, so no step ever holds more than ``_STEP``
decompressed bytes beyond the line being assembled, and each body and each line has a cap.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from playground.backends.faults import RemoteFailure

#: Encodings we decode ourselves (and therefore the only ones we ask for).
ACCEPT_ENCODING = "gzip, deflate"
#: Most bytes one decompression step may produce.
_STEP = 64 * 1024
#: A streamed line longer than this is not the protocol (a token with 20 alternatives is ~3 KB).
MAX_LINE = 1024 * 1024
#: Runs of blank lines: one means "end of event" (SSE) or nothing (NDJSON); more mean nothing more.
_BLANK_RUNS = re.compile(rb"\n{3,}")  # (CRLF runs are not collapsed: a loop per line, still bounded)
#: The most of an error body that is read (and decompressed) to find the server's message.
ERROR_BODY = 4096


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


class _Inflate:
    """One gzip or deflate layer, producing at most ``_STEP`` bytes per piece."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # 47: gzip or zlib header, detected; deflate may also come raw (no header), tried on failure.
        self._z = zlib.decompressobj(47 if encoding == "gzip" else zlib.MAX_WBITS)
        self._raw_tried = encoding == "gzip"
        self._done = False  # deflate has one stream; bytes after its end are ignored
        self.open = False
        """Inside a compressed stream that has not ended yet (at the end of the body: truncated)."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.open = self.open or bool(data)
        while not self._done:
            try:
                out = self._z.decompress(data, _STEP)
            except zlib.error as exc:
                if not self._raw_tried:  # "deflate" sent without the zlib header, as some servers do
                    self._raw_tried = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise RemoteFailure(f"the {self.encoding} body is corrupt ({exc})") from None
            self._raw_tried = True
            if self._z.eof and self.encoding == "gzip":
                data, self._z = self._z.unused_data, zlib.decompressobj(47)  # the next gzip member
                self.open = bool(data)
            elif self._z.eof:
                data, self._done, self.open = b"", True, False
            else:
                data = self._z.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < _STEP:  # a full step may leave output inside zlib: ask again
                return


def content_layers(response: httpx.Response) -> list[_Inflate]:
    """Decoders for the response's Content-Encoding, outermost last; unknown ones are refused."""
    names = [n.strip().lower() for n in response.headers.get("content-encoding", "").split(",") if n.strip()]
    layers = []
    for name in names:
        if name == "identity":
            continue
        if name not in ("gzip", "x-gzip", "deflate"):
            raise RemoteFailure(f"the server sent a body in an encoding that was not asked for ({name!r})")
        layers.append(_Inflate("gzip" if name == "x-gzip" else name))
    return layers[::-1]  # "gzip, br" means gzip was applied first: undo the last one first


async def iter_body(response: httpx.Response, limit: int) -> AsyncIterator[bytes]:
    """The decoded body in pieces of at most ``_STEP`` bytes; RemoteFailure past ``limit`` bytes."""
    layers = content_layers(response)
    total = 0

    def through(data: bytes, k: int) -> Iterator[bytes]:
        if k == len(layers):
            yield data
            return
        for piece in layers[k].feed(data):
            yield from through(piece, k + 1)

    async for raw in response.aiter_raw():  # no chunk_size: that would buffer (and delay tokens)
        for piece in through(raw, 0):
            total += len(piece)
            if total > limit:
                raise RemoteFailure(f"the response is larger than {_mib(limit)} (decompressed); reading stopped there")
            yield piece
    for layer in layers:
        if layer.open:
            raise RemoteFailure(f"the {layer.encoding} body is truncated (it ends inside a compressed block)")


async def iter_lines(chunks: AsyncIterator[bytes], max_line: int = MAX_LINE) -> AsyncIterator[list[str]]:
    """Lines split at LF (a CR before it is left for the caller), decoded as UTF-8 with U+FFFD,
    in batches: one list per network chunk, so that a flood of tiny lines costs little.

    Splitting at LF bytes before decoding keeps a character cut between two chunks whole (LF is
    never part of a multi-byte character). A line longer than ``max_line`` bytes fails as soon as
    it is known to be, without keeping it.
    """
    too_long = f"a line of the stream is longer than {_mib(max_line)}; reading stopped"
    buf = bytearray()
    async for chunk in chunks:
        head, nl, tail = chunk.rpartition(b"\n")
        if not nl:  # no line ends in this chunk: it all belongs to the unfinished line
            if len(buf) + len(chunk) > max_line:
                raise RemoteFailure(too_long)
            buf += chunk
            continue
        block = bytes(buf) + head
        if len(tail) > max_line or (len(block) > max_line and max(map(len, block.split(b"\n"))) > max_line):
            raise RemoteFailure(too_long)
        buf = bytearray(tail)
        # A flood of blank lines (a bomb of newlines) costs one regex pass, not a loop per line.
        yield _BLANK_RUNS.sub(b"\n\n", block).decode("utf-8", "replace").split("\n")
    if buf:
        yield [buf.decode("utf-8", "replace")]


async def read_error_body(response: httpx.Response) -> str:
    """At most ``ERROR_BODY`` decoded bytes of an error response, as text (never raises)."""
    out = bytearray()
    try:
        async for piece in iter_body(response, limit=1 << 62):
            out += piece[: ERROR_BODY - len(out)]
            if len(out) >= ERROR_BODY:
                break
    except (RemoteFailure, httpx.HTTPError):
        pass  # what arrived is enough to quote; the status is the real message
    return out.decode("utf-8", "replace")
