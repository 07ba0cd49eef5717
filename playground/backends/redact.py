"""Keep secrets out of everything a remote backend shows: URLs, messages, and streamed token text.

People paste keys into base URLs (``?api_key=...``, ``user:password@``) as well as into
``api_key_env`` variables. ``display_url`` is the form of a URL that may be shown or stored;
``Redactor`` replaces known secret values in text, and ``TokenRedactor`` does so across token
boundaries of a stream (a key echoed by the model usually spans several tokens).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from playground.events import Alternative, TokenEvent

#: What a secret is replaced with in streamed text (the run is kept, the value is not).
TOKEN_MARK = "[redacted]"
#: What a secret is replaced with in messages and URLs.
MESSAGE_MARK = "***"
#: Shorter values are too likely to occur by chance in ordinary text to be replaced there.
MIN_SECRET = 6
#: Query parameter names (lower-cased, split at ``-_.``) that carry credentials.
_CREDENTIAL_WORDS = frozenset({"key", "apikey", "token", "auth", "authorization", "secret", "password", "passwd",
                               "pwd", "sig", "signature", "credential", "credentials", "session", "sid", "code"})


def is_credential_name(name: str) -> bool:
    """``api_key``, ``key``, ``token``, ``access_token``, ``auth``, ``X-Api-Key``... (not ``api-version``)."""
    lower = name.lower()
    return bool(set(re.split(r"[-_.\s]+", lower)) & _CREDENTIAL_WORDS) or any(
        w in lower for w in ("apikey", "token", "secret", "passw"))


def _looks_like_key(value: str) -> bool:
    """A long run of letters and digits such as ``sk-...``: treated as a secret whatever its name."""
    return len(value) >= 20 and bool(re.fullmatch(r"[\w.~+/=-]+", value)) and bool(re.search(r"\d", value)) \
        and bool(re.search(r"[A-Za-z]", value))


def _query_items(query: str) -> list[tuple[str, str, str]]:
    """(raw piece, name, value) for each ``&``-separated piece of a query string."""
    out = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            out.append((piece, unquote_plus(name), unquote_plus(value)))
    return out


def _is_secret(name: str, value: str) -> bool:
    return is_credential_name(name) or _looks_like_key(value)


def _clean_url(url: str, mask: bool) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal keeps its brackets
        port = parts.port
    except ValueError:  # "http://[::1", a port out of range: shown cut at "?", without "...@"
        head = re.split(r"[?#]", url, maxsplit=1)[0]
        return re.sub(r"//[^/]*@", "//", head).rstrip("/")
    netloc = f"{host}:{port}" if port is not None else host
    pieces = []
    for piece, name, value in _query_items(parts.query):
        if not _is_secret(name, value):
            pieces.append(piece)
        elif mask:
            pieces.append(f"{quote(name, safe='')}={MESSAGE_MARK}")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "&".join(pieces), ""))


def display_url(url: str) -> str:
    """``url`` safe to show: no ``user:password@``, credential query values as ``***``, no fragment.

    Never raises: a URL that cannot be parsed is cut at its first ``?`` or ``#`` and loses any
    ``...@`` before the host.
    """
    return _clean_url(url, mask=True)


def storage_url(url: str) -> str:
    """``url`` safe to store (sessions, config dumps): as ``display_url``, with credential
    parameters left out so that a stored URL never carries a placeholder in place of a key."""
    return _clean_url(url, mask=False)


def url_secrets(url: str) -> list[str]:
    """The credentials written into ``url``: its password (a user name only if it looks like a
    key), and credential query values, each also as it may appear percent-encoded or decoded."""
    try:
        parts = urlsplit(url)
        found = [parts.password, parts.username if parts.username and _looks_like_key(parts.username) else None]
    except ValueError:
        return []
    found += [value for _, name, value in _query_items(parts.query) if _is_secret(name, value)]
    out = []
    for value in found:
        if value:
            out += [value, unquote(value), quote(value, safe=""), quote_plus(value)]
    return out


class Redactor:
    """Replaces every known secret in a text (longest first, so a key's prefix never shows)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET}
        self.secrets: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def text(self, text: str, mark: str = MESSAGE_MARK) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, mark)
        return text

    def find(self, text: str) -> tuple[int, int] | None:
        """(start, end) of the earliest secret in ``text``, or None."""
        best: tuple[int, int] | None = None
        for secret in self.secrets:
            at = text.find(secret)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, at + len(secret))
        return best

    def held_back(self, text: str) -> int:
        """Length of the longest end of ``text`` that could still grow into a secret."""
        longest = 0
        for secret in self.secrets:
            for n in range(min(len(secret) - 1, len(text)), longest, -1):
                if text.endswith(secret[:n]):
                    longest = n
                    break
        return longest


class _LogFilter(logging.Filter):
    """Masks known secrets in records of httpx's loggers (its INFO line quotes the request URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        masked = Redactor(self.secrets).text(text)
        if masked != text:
            record.msg, record.args = masked, ()
        return True


_LOG_FILTER = _LogFilter()
_HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11")


def guard_logs(redactor: Redactor) -> None:
    """Make httpx's and httpcore's log records mask ``redactor``'s secrets (a URL's ``?key=``)."""
    if not redactor.secrets:
        return
    _LOG_FILTER.secrets.update(redactor.secrets)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


@dataclass
class _Held:
    event: TokenEvent
    text: str


class TokenRedactor:
    """Redacts secrets in a token stream, holding a token back only while it may begin one.

    ``push`` takes a token and returns the tokens now safe to emit (renumbered from 0);
    ``flush`` returns the rest at the end of the stream. A secret spanning tokens becomes
    ``[redacted]`` in the token where it starts; the tokens it covered keep only what follows it.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._held: list[_Held] = []
        self._next = 0

    def push(self, event: TokenEvent) -> list[TokenEvent]:
        if not self.redactor:
            return self._emit([_Held(event, event.text)])
        self._held.append(_Held(event, event.text))
        self._redact_held()
        joined = "".join(h.text for h in self._held)
        keep_from = len(joined) - self.redactor.held_back(joined)
        ready, offset = 0, 0
        for h in self._held:
            if offset + len(h.text) > keep_from:
                break
            offset += len(h.text)
            ready += 1
        out, self._held = self._held[:ready], self._held[ready:]
        return self._emit(out)

    def flush(self) -> list[TokenEvent]:
        out, self._held = self._held, []
        return self._emit(out)

    def _redact_held(self) -> None:
        while (span := self.redactor.find(joined := "".join(h.text for h in self._held))) is not None:
            start, end = span
            offset = 0
            for h in self._held:
                lo, hi = offset, offset + len(h.text)
                offset = hi
                if hi <= start or lo >= end:
                    continue  # an empty token at the edge, or outside the secret
                before = h.text[: max(0, start - lo)] if lo <= start else ""
                after = h.text[end - lo:] if hi > end else ""
                h.text = before + (TOKEN_MARK if lo <= start else "") + after
            assert joined != "".join(h.text for h in self._held)  # progress: the loop ends

    def _emit(self, held: list[_Held]) -> list[TokenEvent]:
        out = []
        for h in held:
            top = tuple(self._alternative(a) for a in h.event.top)
            out.append(replace(h.event, i=self._next, text=h.text, top=top))
            self._next += 1
        return out

    def _alternative(self, alt: Alternative) -> Alternative:
        text = self.redactor.text(alt.text, TOKEN_MARK) if self.redactor else alt.text
        return alt if text == alt.text else Alternative(alt.id, text, alt.logprob)
