"""A loaded GGUF model and its llama.cpp context, through llama-cpp-python's low-level API."""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Literal

import llama_cpp

from playground.cores import default_threads
from playground.engine.prefill import DEFAULT_PREFILL_CHUNK
from playground.errors import InvalidParameterError, ModelLoadError, PromptTooLongError
from playground.model_file import ModelFile

_backend_lock = threading.Lock()
_backend_ready = False
_log_lines: list[str] = []
_log_count = [0]  # lines ever logged, for ``log_since``


@llama_cpp.llama_log_callback
def _capture_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp is chatty on stderr, which would tear a TUI; keep the tail for error messages.
    try:
        line = text.decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - a logging callback must never raise into C
        return
    if line:
        _log_lines.append(line)
        _log_count[0] += 1
        del _log_lines[:-50]


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_log_set(_capture_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True


def last_llama_log(n: int = 3) -> str:
    return " | ".join(_log_lines[-n:])


def log_mark() -> int:
    """A mark for ``log_since``: how many lines llama.cpp has logged so far."""
    return _log_count[0]


def log_since(mark: int) -> list[str]:
    """The lines llama.cpp logged after ``log_mark`` returned ``mark`` (at most the last 50)."""
    return _log_lines[len(_log_lines) - min(len(_log_lines), _log_count[0] - mark):] if _log_count[0] > mark else []


def default_gpu_layers() -> int:
    """Offload every layer when this llama.cpp build can use a GPU, else none."""
    _init_backend()
    return 999 if llama_cpp.llama_supports_gpu_offload() else 0


@dataclass(frozen=True)
class ModelOptions:
    """How to load a model: llama.cpp's ``-c``, ``-ngl``, ``-t``."""

    n_ctx: int = 4096
    n_gpu_layers: int | None = None
    """None = all layers when the build supports a GPU, else 0."""
    n_threads: int | None = None
    """None = all cores."""
    n_seq_max: int = 1
    """Parallel sequences the context must hold (compare lanes)."""
    flash_attn: bool = True
    """Flash attention changes float summation order, hence the last digits of every logprob;
    fixed explicitly (not llama.cpp's "auto") so that runs and receipts are reproducible."""
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK
    """Prompt tokens per ``llama_decode`` in the canonical schedule (engine/prefill.py); part of
    the result, so it is reported in every start event and receipt."""
    beyond_train: Literal["refuse", "clamp", "allow"] = "refuse"
    """A context larger than the model was trained for: refuse it (a typo like ``-c 4000000``
    would allocate gigabytes of KV cache for positions the model never saw), clamp it to the
    trained size (contexts sized automatically), or allow it (the user insists)."""


class LlamaModel:
    """Owns the llama.cpp model and context; not thread-safe (one decode at a time)."""

    def __init__(self, model_file: ModelFile, options: ModelOptions = ModelOptions()) -> None:
        _init_backend()
        self.file = model_file
        self.options = options
        self.n_threads = options.n_threads or default_threads()
        self.n_gpu_layers = (
            default_gpu_layers() if options.n_gpu_layers is None else options.n_gpu_layers
        )
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = self.n_gpu_layers
        self._model = llama_cpp.llama_model_load_from_file(
            str(model_file.path).encode(), mparams
        )
        if not self._model:
            raise ModelLoadError(
                f"llama.cpp could not load {model_file.path}: {last_llama_log() or 'no reason given'}"
            )
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        n_ctx = options.n_ctx
        if self.n_ctx_train > 0 and n_ctx > self.n_ctx_train and options.beyond_train != "allow":
            if options.beyond_train == "clamp":
                n_ctx = self.n_ctx_train
            else:
                llama_cpp.llama_model_free(self._model)
                self._model = None
                raise InvalidParameterError(
                    f"context size {n_ctx} is larger than the {self.n_ctx_train} tokens {model_file.path.name} was "
                    "trained for; pass --ctx-beyond-train to insist")
        options = self.options = dataclasses.replace(options, n_ctx=n_ctx)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = options.n_ctx
        cparams.n_batch = options.n_ctx  # a batch may hold the whole context (lanes, long chunks)
        # One chunk must be one micro-batch: llama.cpp would otherwise split it again (still
        # deterministically, but the schedule would no longer be what the receipt says).
        cparams.n_ubatch = min(options.n_ctx, max(cparams.n_ubatch, options.prefill_chunk))
        cparams.n_seq_max = max(1, options.n_seq_max)
        # Lanes share one prompt: a unified cache lets llama_memory_seq_cp tag the prompt's cells for
        # every sequence (no copy) and gives each sequence the whole n_ctx, not n_ctx / n_seq_max.
        cparams.kv_unified = cparams.n_seq_max > 1
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.no_perf = True
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if options.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            self._model = None
            raise ModelLoadError(
                f"llama.cpp could not create a context of {options.n_ctx} tokens: "
                f"{last_llama_log() or 'no reason given'}"
            )
        # llama.cpp may round the context up; a batch must also fit.
        self.n_ctx = min(llama_cpp.llama_n_ctx(self._ctx), llama_cpp.llama_n_batch(self._ctx))
        self.prefill_chunk = max(1, options.prefill_chunk)
        self.memory = llama_cpp.llama_get_memory(self._ctx)
        self._pieces: dict[int, bytes] = {}
        self._texts: dict[int, str] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    # --- raw handles -------------------------------------------------------------------------
    @property
    def ctx(self) -> Any:
        return self._ctx

    @property
    def vocab(self) -> Any:
        return self._vocab

    @property
    def model(self) -> Any:
        return self._model

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # --- text <-> tokens ---------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes one token stands for (special tokens rendered), cached per id."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, True)
            value = buf.raw[:n]
        else:
            value = self._piece_buf.raw[:n]
        self._pieces[token] = value
        return value

    def piece_text(self, token: int) -> str:
        """A token's text for display; bytes of an incomplete character are shown escaped."""
        text = self._texts.get(token)
        if text is None:
            text = self._texts[token] = self.piece(token).decode("utf-8", "backslashreplace")
        return text

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, 4096)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def check_fits(self, n_prompt: int) -> None:
        if n_prompt + 1 > self.n_ctx:
            raise PromptTooLongError(
                f"the prompt is {n_prompt} tokens; the context holds {self.n_ctx} "
                f"(raise -c/--ctx-size, up to the model's {self.n_ctx_train})"
            )

    def describe(self) -> dict[str, Any]:
        return {
            **self.file.to_dict(),
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "n_threads": self.n_threads,
            "flash_attn": self.options.flash_attn,
            "llama_cpp_python": llama_cpp.__version__,
        }
