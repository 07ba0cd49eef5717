"""Every per-token probability shape the serving engines send, read into ``Piece`` entries.

Shapes (all optional data: an entry of the wrong shape is skipped, a bad number reads as None):

- legacy completions lists (OpenAI, vLLM, TensorRT-LLM, llama-cpp-python):
  ``{"tokens": [...], "token_logprobs": [...], "top_logprobs": [{text: logprob}, ...]}``;
  vLLM returns up to its ``--max-logprobs`` alternatives there and may add the chosen token;
- ``content`` entries (OpenAI / vLLM / TensorRT-LLM chat, and llama.cpp's llama-server on both
  ``/v1`` endpoints): ``{"content": [{"id"?, "token", "bytes"?, "logprob", "top_logprobs":
  [{"id"?, "token", "bytes"?, "logprob"}]}]}``;
- a bare list of such entries (Ollama's native API);
- llama-server's native ``/completion`` with ``post_sampling_probs``: ``prob`` and ``top_probs``
  (probabilities after its sampler chain) in place of ``logprob`` and ``top_logprobs``.

Ids are used when given (vLLM's ``token_id:N`` spelling included). Text comes from ``bytes`` when
given, through one incremental UTF-8 decoder per stream, so a character whose bytes are split over
two tokens comes out whole with the second (the first adds ""), exactly as the local engine does.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass
from typing import Any

from playground.backends.remote import Piece
from playground.backends.sse import as_list, as_logprob, clean_text
from playground.events import Alternative

__all__ = ["ByteJoiner", "Sampled", "logprob_entries", "sampled_entries"]

_TOKEN_ID = "token_id:"


class ByteJoiner:
    """One stream's UTF-8 decoder: joins the bytes of characters split across tokens."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def text(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def reset(self) -> None:
        """Forget pending bytes (an entry without ``bytes`` broke the chain)."""
        self._decoder.reset()


@dataclass(frozen=True, slots=True)
class Sampled:
    """One token of llama-server's post-sampling answer: its final probability and the survivors."""

    piece: Piece
    p_sampled: float | None
    survivors: tuple[Alternative, ...]
    """Candidates left by the sampler chain, with log of their *final* probabilities."""


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value):
        return bytes(value)
    return None


def _id(entry: dict[str, Any]) -> int:
    value = entry.get("id", entry.get("token_id"))
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    token = entry.get("token")
    if isinstance(token, str) and token.startswith(_TOKEN_ID) and token[len(_TOKEN_ID):].isdigit():
        return int(token[len(_TOKEN_ID):])  # vLLM --return-tokens-as-token-ids
    return -1


def _alt_text(entry: dict[str, Any]) -> str | None:
    data = _bytes(entry.get("bytes"))
    if data is not None:
        return data.decode("utf-8", "replace")  # an alternative stands alone: no joining
    token = entry.get("token")
    return clean_text(token) if isinstance(token, str) else None


def _prob_as_logprob(value: Any) -> float | None:
    """A probability in [0, 1] as its log; 0 as -inf is not a log-probability we show (None)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value <= 1.0 + 1e-6:
        return None
    return min(math.log(value), 0.0)


def _alternatives(items: Any, top_n: int, field: str = "logprob") -> tuple[Alternative, ...]:
    """A list of ``{id?, token, bytes?, logprob|prob}``, or a legacy ``{text: logprob}`` object."""
    if isinstance(items, dict):
        pairs = [(-1, clean_text(t), as_logprob(v)) for t, v in items.items() if isinstance(t, str)]
    else:
        pairs = []
        for a in as_list(items):
            if isinstance(a, dict):
                lp = _prob_as_logprob(a.get("prob")) if field == "prob" else as_logprob(a.get("logprob"))
                pairs.append((_id(a), _alt_text(a), lp))
    known = [(i, t, lp) for i, t, lp in pairs if t is not None and lp is not None]
    known.sort(key=lambda item: -item[2])  # stable: the server's order among equal values
    return tuple(Alternative(i, t, lp) for i, t, lp in known[:top_n])


def _entry_text(entry: dict[str, Any], joiner: ByteJoiner) -> str | None:
    data = _bytes(entry.get("bytes"))
    if data is not None:
        return joiner.text(data)
    joiner.reset()
    token = entry.get("token")
    return clean_text(token) if isinstance(token, str) else None


def _legacy(logprobs: dict[str, Any], top_n: int) -> list[Piece]:
    tokens = [t for t in as_list(logprobs.get("tokens")) if isinstance(t, str)]
    values = as_list(logprobs.get("token_logprobs"))
    tops = as_list(logprobs.get("top_logprobs"))
    out = []
    for k, token in enumerate(tokens):
        top = tops[k] if k < len(tops) else None
        value = values[k] if k < len(values) else None
        out.append(Piece(clean_text(token), as_logprob(value), _alternatives(top, top_n), _id({"token": token})))
    return out


def logprob_entries(logprobs: Any, top_n: int, joiner: ByteJoiner | None = None) -> list[Piece]:
    """The per-token entries of one chunk, whatever the shape; [] when it carries none."""
    joiner = joiner or ByteJoiner()
    if isinstance(logprobs, dict):
        if "content" not in logprobs and "tokens" in logprobs:
            return _legacy(logprobs, top_n)
        logprobs = logprobs.get("content")
    out = []
    for entry in as_list(logprobs):
        if not isinstance(entry, dict):
            continue
        text = _entry_text(entry, joiner)
        if text is None:
            continue  # an entry without a token's text or bytes says nothing usable
        top = entry.get("top_logprobs")
        out.append(Piece(text, as_logprob(entry.get("logprob")), _alternatives(top, top_n), _id(entry)))
    return out


def sampled_entries(probs: Any, top_n: int, joiner: ByteJoiner) -> list[Sampled]:
    """llama-server's ``completion_probabilities`` with ``post_sampling_probs: true``."""
    out = []
    for entry in as_list(probs):
        if not isinstance(entry, dict):
            continue
        text = _entry_text(entry, joiner)
        if text is None:
            continue
        survivors = _alternatives(entry.get("top_probs"), top_n, field="prob")
        p = entry.get("prob")
        p_ok = float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= 1.0 + 1e-6 else None
        out.append(Sampled(Piece(text, None, (), _id(entry)), None if p_ok is None else min(p_ok, 1.0), survivors))
    return out
