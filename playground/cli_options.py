"""Command-line options shared by the TUI and the headless commands (llama.cpp's names)."""

from __future__ import annotations

import argparse
import sys

from playground.config import Config
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import SAMPLER_OPTION_NAMES, GenerationRequest, SamplerParams


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad options give one clear line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


def add_model_options(parser: argparse.ArgumentParser, *, path: bool = True) -> None:
    """``-m PATH -c N -ngl N -t N``; ``path=False`` leaves ``-m`` to the command (e.g. ``replay``)."""
    group = parser.add_argument_group("model")
    if path:
        group.add_argument("-m", "--model", metavar="PATH", help="GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    group.add_argument("-c", "--ctx-size", type=int, default=None, metavar="N", help="context size in tokens (default 4096)")
    group.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", dest="n_gpu_layers", type=int, default=None, metavar="N",
                       help="layers to offload to the GPU (default: all when the build supports a GPU, else 0)")
    group.add_argument("--ctx-beyond-train", action="store_true", default=None,
                       help="allow a -c larger than the context the model was trained for (refused otherwise)")
    group.add_argument("-t", "--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores but one, at least 1; see README)")


def add_sampler_options(parser: argparse.ArgumentParser) -> None:
    d = SamplerParams()
    group = parser.add_argument_group("sampling (llama.cpp order: penalties, top-k, top-p, min-p, temperature)")
    group.add_argument("--temp", type=float, default=None, metavar="T", help=f"temperature; 0 = greedy (default {d.temperature})")
    group.add_argument("--top-k", type=int, default=None, metavar="K", help=f"0 = off (default {d.top_k})")
    group.add_argument("--top-p", type=float, default=None, metavar="P", help=f"1.0 = off (default {d.top_p})")
    group.add_argument("--min-p", type=float, default=None, metavar="P", help=f"0 = off (default {d.min_p})")
    group.add_argument("--repeat-penalty", type=float, default=None, metavar="R", help=f"1.0 = off (default {d.repeat_penalty})")
    group.add_argument("--repeat-last-n", type=int, default=None, metavar="N", help=f"tokens the penalty looks at (default {d.repeat_last_n})")
    group.add_argument("-s", "--seed", type=int, default=None, metavar="N", help="-1 = random, reported (default -1)")
    group.add_argument("--greedy", action="store_true", default=None, help="always take the most likely token")
    group.add_argument("-n", "--max-tokens", "--n-predict", dest="max_tokens", type=int, default=None, metavar="N",
                       help="maximum new tokens (default 256)")
    group.add_argument("--top-n", type=int, default=None, metavar="N", help="alternatives reported per token, 0-100 (default 10)")
    group.add_argument("--stop", action="append", default=None, metavar="TEXT", help="stop string (repeatable)")


def sampler_from_args(args: argparse.Namespace, base: SamplerParams | None = None) -> SamplerParams:
    """Sampler settings: ``base`` (config defaults) overridden by what was given on the line."""
    params = base or SamplerParams()
    changes = {
        field: getattr(args, arg) for arg, field in SAMPLER_OPTION_NAMES.items() if getattr(args, arg, None) is not None
    }
    return params.replace(**changes).validate()


def config_of(args: argparse.Namespace) -> Config:
    """The settings ``cli.main`` loaded once from the config file (defaults when called directly)."""
    config = getattr(args, "config", None)
    return config if isinstance(config, Config) else Config()


def request_from_args(args: argparse.Namespace, prompt: str, base: SamplerParams | None = None) -> GenerationRequest:
    """The request: the command line over the config's ``[sampler]`` and ``[generation]``."""
    config = config_of(args)
    opt = lambda name: getattr(args, name, None)  # noqa: E731
    return GenerationRequest(
        prompt=prompt,
        sampler=sampler_from_args(args, base or config.sampler),
        max_tokens=opt("max_tokens") if opt("max_tokens") is not None else config.generation.max_tokens,
        stop=tuple(opt("stop") or ()),
        top_n=opt("top_n") if opt("top_n") is not None else config.generation.top_n,
    ).validate()


def engine_choice_from_args(args: argparse.Namespace) -> EngineChoice:
    """Which model and how: the command line over the config's ``[model]``."""
    m = config_of(args).model
    opt = lambda name: getattr(args, name, None)  # noqa: E731
    return EngineChoice(
        model_path=opt("model") or m.path,
        n_ctx=opt("ctx_size") or m.ctx_size,
        n_gpu_layers=opt("n_gpu_layers") if opt("n_gpu_layers") is not None else m.gpu_layers,
        n_threads=opt("threads") or m.threads,  # None: engine_options.default_threads()
        beyond_train="allow" if opt("ctx_beyond_train") else "refuse",
    ).validate()


def read_prompt(value: str | None) -> str:
    """The prompt argument, or standard input when it is absent or ``-``; it must be UTF-8."""
    if value is None or value == "-":
        if sys.stdin is None or sys.stdin.isatty() and value is None:
            raise SystemExit("playground: no prompt given (pass it as an argument or on standard input)")
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8").replace("\r\n", "\n")  # as text mode read it before
        except UnicodeDecodeError as exc:
            raise InvalidParameterError(
                f"the prompt on standard input is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
            ) from None
    try:
        value.encode("utf-8")  # an undecodable argument arrives as lone surrogates
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(f"the prompt argument is not valid UTF-8 (at character {exc.start})") from None
    return value


def add_chat_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chat", action="store_true",
        help="send the prompt as one user turn: rendered with the model's chat template (local), or as "
        "chat messages (remote chat endpoints)",
    )
