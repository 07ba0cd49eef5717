"""Inert terminal text, NaN-safe JSON lines and the one failure path of a stream (pure units)."""

from __future__ import annotations

import io
import json
import math
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground import jsonlines
from playground.commands.output import Output
from playground.errors import PromptTooLongError
from playground.events import Alternative, DoneEvent, FailedEvent, StartEvent, TokenEvent
from playground.stream_guard import guarded
from playground.terminal_text import inert, inert_json, inert_line


def is_control(ch: str) -> bool:
    """Independent of the module's pattern: Unicode's own categories (Cc, and the bidi Cf ones)."""
    return (unicodedata.category(ch) == "Cc" and ch not in "\n\t") or ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(st.text())
def test_inert_leaves_no_control_character(text):
    shown = inert(text)
    assert not any(is_control(ch) for ch in shown)
    assert shown.count("\n") == text.count("\n")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cf"))))
def test_inert_keeps_printable_text_exactly(text):
    assert inert(text) == text


def test_inert_shows_each_control_visibly():
    assert inert("a\x1b[2Jb\x07\x9b\u202e") == "a\\x1b[2Jb\\x07\\x9b\\u202e"
    assert inert_line("one\ntwo\tthree") == "one\\ntwo\\tthree"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)))
def test_inert_json_parses_to_the_same_value(value):
    line = inert_json(json.dumps(value, ensure_ascii=False))
    assert json.loads(line) == value
    assert not any(is_control(ch) for ch in line)


def token(logprob: float, **kw) -> TokenEvent:
    return TokenEvent(i=0, id=5, text="x", logprob=logprob, p_sampled=kw.get("p", 0.5),
                      top=(Alternative(5, "x", logprob),), t=0.01, entropy=kw.get("entropy", 1.0))


def test_nan_numbers_are_written_as_null_and_marked():
    line = jsonlines.dumps(token(math.nan, entropy=math.inf))
    obj = json.loads(line)  # strict JSON: no NaN literal
    assert "NaN" not in line and "Infinity" not in line
    assert obj["logprob"] is None and obj["entropy"] is None and obj["top"][0]["logprob"] is None
    assert obj["nonfinite"] == ["logprob", "entropy", "top"]
    assert "nonfinite" not in json.loads(jsonlines.dumps(token(-0.5)))


def test_any_json_object_with_nan_becomes_null():
    assert json.loads(jsonlines.dumps_obj({"a": [1.0, math.nan], "b": {"c": -math.inf}})) == {"a": [1.0, None], "b": {"c": None}}


def test_output_to_a_closed_reader_stops_quietly():
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    stopped = []
    out = Output(Closed(), on_close=lambda: stopped.append(True))
    out.text("a")
    out.json({"b": 1})
    assert out.closed and stopped == [True] and out.status == 141


START = StartEvent(model={}, prompt="p", prompt_tokens=(1,), params={})


def failing_after(n: int, exc: Exception):
    """A stream that breaks after n tokens: the fault (a bug, a hostile input) no real run gives on demand."""
    yield START
    for i in range(n):
        yield TokenEvent(i=i, id=i, text=str(i), logprob=-1.0, p_sampled=None, top=(), t=0.0)
    raise exc


@pytest.mark.parametrize("exc", [TypeError("bad field"), RecursionError(), MemoryError(), PromptTooLongError("x")])
def test_a_stream_that_raises_ends_with_failed_keeping_its_tokens(exc):
    events = list(guarded(failing_after(3, exc)))
    assert isinstance(events[0], StartEvent)
    assert [e.text for e in events[1:4]] == ["0", "1", "2"]
    assert isinstance(events[-1], FailedEvent) and events[-1].n_tokens == 3


def test_an_error_before_anything_ran_is_raised():
    def nothing():
        raise PromptTooLongError("too long")
        yield  # pragma: no cover

    with pytest.raises(PromptTooLongError):
        list(guarded(nothing()))


def test_a_finished_stream_passes_unchanged():
    done = DoneEvent("stop", 0, None, None, None)
    assert list(guarded(iter([START, done]))) == [START, done]
