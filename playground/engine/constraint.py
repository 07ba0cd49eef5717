"""Constrained sampling with llama.cpp's own grammar sampler, and what the constraint cost.

Compilation: a JSON schema goes through llama-cpp-python's ``json_schema_to_gbnf`` (the port of
llama.cpp's converter), a choice list through ``constraint.choices_gbnf``; a grammar is used as
given. ``llama_sampler_init_grammar`` parses it with the model's vocabulary (root rule ``root``).
Its parser reports a syntax error by printing to the C ``stderr`` and returning NULL, so the first
parse of a grammar text runs with file descriptor 2 sent to a temporary file: the message becomes
an InvalidParameterError with the line and column, and whatever else reached the descriptor
meanwhile (the TUI draws on stderr) is written back to it, in order.

Sampling one step (``ConstrainedSampler.choose``): grammar first, as llama.cpp's
``common_sampler_sample(..., grammar_first=true)`` and its resampling path do.

1. The grammar sampler is applied to the whole vocabulary; the tokens it sets to -inf are the
   forbidden ones. ``constraint_mass_removed`` = their total probability under the raw
   distribution (softmax at T = 1 of the raw logits, in float64): what the constraint took away
   from the model, independent of the sampler settings.
2. A clone of the sequence's chain (``llama_sampler_clone``: the same RNG state, penalty history,
   mirostat mu) samples the raw logits: the token the model would have taken unconstrained at
   this step under the same sampler and seed (``unconstrained_id``, reported where it differs).
   The clone is dropped; the real chain's state is untouched by it.
3. The real chain samples the allowed tokens only (a candidate array holding just them, with
   their raw logits). So the chosen token is drawn from exactly the distribution the chain builds
   over the allowed set, and ``p_sampled`` is its probability there; ``n_candidates`` counts
   allowed survivors only. (llama.cpp leaves forbidden tokens in the array at -inf, p = 0; every
   stage treats them as absent, so the draw is the same.)
4. The chosen token is accepted into the grammar.

llama.cpp's default (``grammar_first=false``) samples unconstrained first and resamples only when
the grammar rejects the token. That saves the full-vocabulary grammar pass when the model agrees,
but the token is then drawn from a mixture of two distributions, so no single "final distribution"
exists whose probability could be reported as ``p_sampled``; grammar first keeps it truthful. Both
draw once per step from the dist sampler's RNG (step 2 uses a copy), so the unconstrained token at
step i is what a run without the grammar takes at step i after the same earlier tokens.

End: an end-of-generation token is allowed only when the grammar is complete. When it is the only
thing allowed, the sequence stops without a draw. A grammar that allows nothing (a dead end: no
token can continue it) stops the sequence too (``dead_end``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import llama_cpp
from llama_cpp.llama_grammar import json_schema_to_gbnf

from playground.constraint import Constraint, bad_constraint, choices_gbnf
from playground.engine.llama_model import LlamaModel, log_mark, log_since
from playground.engine.sampler_chain import TOKEN_DATA_DTYPE, SampledToken, SamplerChain

ROOT = b"root"
_stderr_lock = threading.Lock()
#: Grammar texts the parser accepted already (they parse silently: no capture needed).
_parsed_ok: set[str] = set()
_MAX_REMEMBERED = 256
#: Per model: which ids are end-of-generation tokens (asking llama.cpp per id costs ~0.1 s).
_eog_tables: "weakref.WeakKeyDictionary[LlamaModel, np.ndarray]" = weakref.WeakKeyDictionary()


def eog_table(model: LlamaModel) -> np.ndarray:
    """A boolean array: ``table[id]`` is whether ``id`` ends generation."""
    table = _eog_tables.get(model)
    if table is None:
        table = np.fromiter((model.is_eog(i) for i in range(model.n_vocab)), dtype=bool, count=model.n_vocab)
        table.flags.writeable = False
        _eog_tables[model] = table
    return table


def to_gbnf(constraint: Constraint) -> str:
    """The GBNF grammar of a constraint.

    Raises:
        InvalidParameterError: a schema llama.cpp's converter cannot turn into a grammar.
    """
    return _gbnf(constraint)


@functools.lru_cache(maxsize=64)
def _gbnf(constraint: Constraint) -> str:
    if constraint.kind == "grammar":
        return constraint.source
    if constraint.kind == "choices":
        return choices_gbnf(constraint.choices)
    schema = constraint.schema()  # a clear error for text that is not a JSON object
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except RecursionError:
        raise bad_constraint("the JSON schema is nested too deeply to convert") from None
    except Exception as exc:  # noqa: BLE001 - the converter raises ValueError, KeyError, TypeError...
        detail = str(exc) or type(exc).__name__
        raise bad_constraint(f"llama.cpp's converter cannot turn the JSON schema into a grammar: {detail}") from None


# --- parsing, with the parser's stderr message captured ---------------------------------------

@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[bytes]]:
    """Send file descriptor 2 to a temporary file; yields a list that gets the captured bytes."""
    out: list[bytes] = []
    with _stderr_lock, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read())


def _give_back(data: bytes) -> None:
    """Write bytes others sent to stderr during the capture to the real stderr."""
    while data:
        try:
            n = os.write(2, data)
        except OSError:
            return
        data = data[n:]


def init_grammar(model: LlamaModel, gbnf: str) -> ctypes.c_void_p:
    """A new grammar sampler for ``gbnf`` over ``model``'s vocabulary (the caller frees it).

    Raises:
        InvalidParameterError: the grammar does not parse (with line and column), has no ``root``
            rule, or is left-recursive.
    """
    data = gbnf.encode("utf-8")
    if gbnf in _parsed_ok:
        smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, data, ROOT)
        if smpl:
            return smpl
    mark = log_mark()
    with _captured_stderr() as captured:
        smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, data, ROOT)
    text = captured[0] if captured else b""
    message, rest = _split_parser_message(text, data)
    _give_back(rest)
    if smpl:
        if len(_parsed_ok) < _MAX_REMEMBERED:
            _parsed_ok.add(gbnf)
        return smpl
    raise bad_constraint(describe_grammar_error(gbnf, message, log_since(mark)))


_PARSER = re.compile(rb"[A-Za-z_]*: error parsing grammar: ")


def _split_parser_message(captured: bytes, src: bytes) -> tuple[str, bytes]:
    """(what the parser said, the other bytes of ``captured``). The parser prints
    ``parse: error parsing grammar: WHAT\\n\\nSOURCE\\n`` in one call."""
    m = _PARSER.search(captured)
    if m is None:
        return "", captured
    tail = b"\n\n" + src + b"\n"
    end = captured.find(tail, m.end())
    if end < 0:
        return captured[m.end():].decode("utf-8", "replace").strip(), captured[: m.start()]
    what = captured[m.end():end].decode("utf-8", "replace")
    return what, captured[: m.start()] + captured[end + len(tail):]


def describe_grammar_error(gbnf: str, what: str, log: list[str]) -> str:
    """One line: where the grammar is wrong (line, column, the text there) and what is wrong."""
    if what:
        head, where = _locate(gbnf, what)
        return f"the grammar does not parse: {where}{head}"
    for line in log:
        if "does not contain" in line:
            return "the grammar has no 'root' rule (generation starts there)"
        if "left recursion" in line:
            return "the grammar is left-recursive (a rule begins with itself), which llama.cpp does not support"
        if "undefined rule" in line:
            return f"the grammar refers to a rule it does not define ({line})"
    detail = next((line for line in reversed(log) if line and "failed to parse" not in line), "")
    return f"llama.cpp refused the grammar{': ' + detail if detail else ''}"


def _locate(gbnf: str, what: str) -> tuple[str, str]:
    """(the message without the echoed rest of the source, "line L column C: ")."""
    if what.strip() == "unexpected end of input":
        what = "unexpected end of input at "
    for m in re.finditer(r" at ", what):
        rest = what[m.end():]
        if gbnf.endswith(rest):
            offset = len(gbnf) - len(rest)
            line = gbnf.count("\n", 0, offset) + 1
            col = offset - (gbnf.rfind("\n", 0, offset) + 1) + 1
            near = rest.split("\n", 1)[0][:30]
            return f"{what[: m.start()]} (at {near!r})" if near.strip() else f"{what[: m.start()]} (at the end of the grammar)", f"line {line} column {col}: "
    m = re.search(r"Undefined rule identifier '([^']*)'", what)
    if m:
        name = m.group(1)
        ref = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", gbnf)
        if ref:
            line = gbnf.count("\n", 0, ref.start()) + 1
            return f"the rule '{name}' is used but never defined", f"line {line}: "
        return f"the rule '{name}' is used but never defined", ""
    return what.split("\n", 1)[0][:200], ""


def check_constraint(model: LlamaModel, constraint: Constraint) -> str:
    """Compile ``constraint`` for ``model`` and parse it once; its GBNF. Raises InvalidParameterError."""
    gbnf = to_gbnf(constraint)
    llama_cpp.llama_sampler_free(init_grammar(model, gbnf))
    return gbnf


# --- one sequence's constrained sampling --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConstrainedStep:
    """What the constraint did at one step (see the module docstring)."""

    mass_removed: float
    """Raw (T = 1) probability of the tokens the grammar forbade."""
    unconstrained_id: int
    """The token the same chain and seed take from the raw logits."""
    allowed: np.ndarray
    """The ids the grammar allowed at this step, ascending."""


class ConstrainedSampler:
    """The grammar state of one sequence and the scratch buffers of its steps."""

    def __init__(self, constraint: Constraint, model: LlamaModel) -> None:
        self.model = model
        self.n_vocab = model.n_vocab
        self.gbnf = to_gbnf(constraint)
        self._grammar = init_grammar(model, self.gbnf)
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._cand = np.zeros(self.n_vocab, dtype=TOKEN_DATA_DTYPE)
        self._array = llama_cpp.llama_token_data_array(
            data=self._cand.ctypes.data_as(llama_cpp.llama_token_data_p), size=self.n_vocab, selected=-1, sorted=False,
        )
        self._exp = np.empty(self.n_vocab, dtype=np.float64)
        self._shadow: SamplerChain | None = None  # reused buffer of the unconstrained clone
        self.dead_end = False
        self._eog = eog_table(model)

    def allowed(self) -> np.ndarray:
        """Ids the grammar allows next, ascending (llama.cpp's grammar sampler decides)."""
        cand = self._cand
        cand["id"] = self._ids
        cand["logit"] = 0.0  # the grammar ignores logits; -inf afterwards means "forbidden"
        arr = self._array
        arr.data = cand.ctypes.data_as(llama_cpp.llama_token_data_p)
        arr.size = self.n_vocab
        arr.selected = -1
        arr.sorted = False
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        # the grammar sampler neither reorders nor resizes the array
        return cand["id"][~np.isneginf(cand["logit"])]

    def permits(self, token: int) -> bool:
        """Whether the grammar allows ``token`` next (for tokens that are given, not sampled)."""
        return bool(np.isin(token, self.allowed()))

    def accept(self, token: int) -> None:
        """Advance the grammar by ``token``, which it must allow (llama.cpp throws otherwise, which
        terminates the process: hence ``accept_forced`` for tokens that were not drawn from it)."""
        llama_cpp.llama_sampler_accept(self._grammar, token)

    def accept_forced(self, token: int) -> None:
        """Advance by a forced token, refusing one the grammar forbids."""
        if self._eog[token] or not self.permits(token):
            raise bad_constraint(
                f"the forced token {token} ({self.model.piece_text(token)!r}) is not allowed by the constraint there")
        self.accept(token)

    def mass_removed(self, logits: np.ndarray, allowed: np.ndarray) -> float:
        """Raw probability (softmax at T = 1, float64) of the tokens outside ``allowed``."""
        e = self._exp
        np.subtract(logits, np.float64(logits.max()), out=e, dtype=np.float64)
        np.exp(e, out=e)
        total = float(e.sum())
        kept = float(e[allowed].sum())
        return max(0.0, (total - kept) / total)

    def choose(self, chain: SamplerChain, logits: np.ndarray) -> tuple[SampledToken, ConstrainedStep] | None:
        """One grammar-first step; None when the sequence ends without a draw (only an end of
        generation is allowed, or nothing is: ``dead_end``)."""
        allowed = self.allowed()
        if allowed.size == 0:
            self.dead_end = True
            return None
        if bool(self._eog[allowed].all()):
            return None
        mass = self.mass_removed(logits, allowed)
        self._shadow = chain.clone(into=self._shadow)
        unconstrained = self._shadow.sample(logits).id
        picked = chain.sample_among(allowed, logits)
        if not self._eog[picked.id]:
            self.accept(picked.id)
        return picked, ConstrainedStep(mass, unconstrained, allowed)

    def close(self) -> None:
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
        if self._shadow is not None:
            self._shadow.close()
            self._shadow = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

