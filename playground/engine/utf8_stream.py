"""Incremental UTF-8 decoding of token bytes.

A token may end inside a multi-byte character (emoji, Korean, CJK in byte-fallback vocabularies).
Its text is then "" and the bytes wait for the token that completes the character, so the stream
never stalls and the concatenation of the emitted texts equals the completion exactly. Bytes that
can never form a character become U+FFFD, as any UTF-8 decoder would show them.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, data: bytes) -> str:
        """Text completed by these bytes (may be empty)."""
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        """Whatever is pending at the end of the stream (incomplete bytes become U+FFFD)."""
        return self._decoder.decode(b"", final=True)

    @property
    def pending(self) -> bool:
        return bool(self._decoder.getstate()[0])
