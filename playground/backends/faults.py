"""Turn what goes wrong with a remote server into one clear sentence (the caller adds its name).

Server-provided text is quoted only briefly, and callers pass every message through the backend's
``redact`` so that a server echoing the API key cannot leak it.
"""

from __future__ import annotations

import json

import httpx

from playground.backends.endpoints import Endpoint
from playground.backends.redact import display_url
from playground.backends.sse import clean_text, excerpt


class RemoteFailure(Exception):
    """A fault of the server or the connection; ``cause`` is the human sentence."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def server_detail(text: str) -> str:
    """The server's own error message out of an error body (OpenAI, Ollama, FastAPI shapes)."""
    text = clean_text(text).strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return excerpt(text)
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, str):
            return excerpt(clean_text(err), 200)
        if err is not None:
            try:
                return excerpt(json.dumps(err), 200)
            except (ValueError, RecursionError):
                return excerpt(text)
    return excerpt(text)


def http_status_message(response: httpx.Response, body: str, endpoint: Endpoint, has_key: bool) -> str:
    """Why a non-2xx answer failed, and what to check."""
    status = response.status_code
    detail = server_detail(body)
    said = f"HTTP {status}" + (f": {detail}" if detail else "")
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return (f"the server redirected ({said}) to {display_url(location)}; redirects are not followed, "
                "so the API key only ever goes to the configured base URL")
    if status in (401, 403):
        if endpoint.api_key_env:
            hint = f"check the key in ${endpoint.api_key_env}" + ("" if has_key else " (it is not set)")
        else:
            hint = "this endpoint has no api_key_env configured"
        return f"authentication failed ({said}); {hint}"
    if status == 404:
        return f"not found ({said}): unknown model '{endpoint.model}', or a wrong base URL"
    if status == 429:
        return f"rate limited ({said})"
    if status >= 500:
        return f"server error ({said})"
    return f"request rejected ({said})"


def transport_message(exc: httpx.HTTPError, endpoint: Endpoint, n_tokens: int) -> str:
    """A connection-level failure, phrased by when it happened (before or during the stream)."""
    after = f" after {n_tokens} tokens" if n_tokens else ""
    match exc:
        case httpx.ConnectTimeout():
            return f"could not connect within {endpoint.connect_timeout:g} s (connect timeout)"
        case httpx.ConnectError():
            return f"could not connect: {exc or 'connection refused'}"
        case httpx.ReadTimeout() if n_tokens:
            return f"the stream stalled: nothing received for {endpoint.read_timeout:g} s{after} (read timeout)"
        case httpx.ReadTimeout():
            return f"no response within {endpoint.read_timeout:g} s (read timeout)"
        case httpx.TimeoutException():
            return f"timed out ({type(exc).__name__})"
        case httpx.RemoteProtocolError():
            return f"the connection was cut{after}: {exc}"
        case httpx.ReadError() | httpx.WriteError():
            return f"the connection was lost{after}: {exc or type(exc).__name__}"
        case _:
            return f"{type(exc).__name__}{after}: {exc}"
