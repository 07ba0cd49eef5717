"""Command-line options shared by the TUI and the headless commands (llama.cpp's names)."""

from __future__ import annotations

import argparse
import sys

from playground.config import Config
from playground.constraint import Constraint
from playground.engine_options import EngineChoice
from playground.errors import InvalidParameterError
from playground.params import (
    DEFAULT_SAMPLERS,
    SAMPLER_OPTION_NAMES,
    GenerationRequest,
    LogitBias,
    SamplerParams,
    parse_sampler_order,
)


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
    adv = parser.add_argument_group(
        "more llama.cpp samplers (off by default; --samplers sets the order, default "
        + ";".join(DEFAULT_SAMPLERS) + ")"
    )
    adv.add_argument("--samplers", type=_order, default=None, metavar="LIST", help="chain order, ';'-separated llama.cpp names")
    adv.add_argument("--typical", type=float, default=None, metavar="P", help=f"locally typical p, 1.0 = off (default {d.typical_p})")
    adv.add_argument("--top-nsigma", type=float, default=None, metavar="N", help="keep logits within N sigma of the top, -1 = off")
    adv.add_argument("--xtc-probability", type=float, default=None, metavar="P", help=f"XTC chance per token, 0 = off (default {d.xtc_probability})")
    adv.add_argument("--xtc-threshold", type=float, default=None, metavar="T", help=f"XTC threshold, > 0.5 = off (default {d.xtc_threshold})")
    adv.add_argument("--dry-multiplier", type=float, default=None, metavar="M", help="DRY penalty scale, 0 = off")
    adv.add_argument("--dry-base", type=float, default=None, metavar="B", help=f"DRY base (default {d.dry_base})")
    adv.add_argument("--dry-allowed-length", type=int, default=None, metavar="N", help=f"unpunished repeat length (default {d.dry_allowed_length})")
    adv.add_argument("--dry-penalty-last-n", type=int, default=None, metavar="N", help=f"tokens DRY scans, -1 = all (default {d.dry_penalty_last_n})")
    adv.add_argument("--dry-sequence-breaker", action="append", default=None, metavar="S",
                     help="DRY sequence breaker (repeatable; replaces the defaults; 'none' for none)")
    adv.add_argument("--presence-penalty", type=float, default=None, metavar="P", help="0 = off")
    adv.add_argument("--frequency-penalty", type=float, default=None, metavar="P", help="0 = off")
    adv.add_argument("--mirostat", type=int, default=None, choices=(0, 1, 2), help="0 = off, 1 = Mirostat, 2 = Mirostat 2.0")
    adv.add_argument("--mirostat-lr", type=float, default=None, metavar="ETA", help=f"learning rate (default {d.mirostat_eta})")
    adv.add_argument("--mirostat-ent", type=float, default=None, metavar="TAU", help=f"target entropy (default {d.mirostat_tau})")
    adv.add_argument("--dynatemp-range", type=float, default=None, metavar="R", help="dynamic temperature range, 0 = off")
    adv.add_argument("--dynatemp-exp", type=float, default=None, metavar="E", help=f"dynamic temperature exponent (default {d.dynatemp_exponent})")
    adv.add_argument("-l", "--logit-bias", action="append", type=_bias, default=None, metavar="TOKEN(+|-)BIAS",
                     help="add BIAS to a token's logit, the token by id or by text (repeatable)")
    group.add_argument("-n", "--max-tokens", "--n-predict", dest="max_tokens", type=int, default=None, metavar="N",
                       help="maximum new tokens (default 256)")
    group.add_argument("--top-n", type=int, default=None, metavar="N", help="alternatives reported per token, 0-100 (default 10)")
    group.add_argument("--stop", action="append", default=None, metavar="TEXT", help="stop string (repeatable)")


def _order(text: str) -> tuple[str, ...]:
    try:
        return parse_sampler_order(text)
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _bias(text: str) -> LogitBias:
    try:
        return LogitBias.parse(text)
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def sampler_from_args(args: argparse.Namespace, base: SamplerParams | None = None) -> SamplerParams:
    """Sampler settings: ``base`` (config defaults) overridden by what was given on the line."""
    params = base or SamplerParams()
    changes = {
        field: getattr(args, arg) for arg, field in SAMPLER_OPTION_NAMES.items() if getattr(args, arg, None) is not None
    }
    if "dry_sequence_breakers" in changes:  # llama.cpp: the first one clears the defaults, "none" clears all
        breakers: list[str] = []
        for value in changes["dry_sequence_breakers"]:
            breakers = [] if value == "none" else [*breakers, value]
        changes["dry_sequence_breakers"] = tuple(breakers)
    if "logit_bias" in changes:
        changes["logit_bias"] = tuple(changes["logit_bias"])
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
        constraint=constraint_from_args(args),
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


def add_constraint_options(parser: argparse.ArgumentParser) -> None:
    """``--json-schema``, ``--grammar``, ``--grammar-file``, ``--choices`` (at most one)."""
    group = parser.add_argument_group("structured output (one of)").add_mutually_exclusive_group()
    group.add_argument("--json-schema", metavar="FILE_OR_JSON", default=None,
                       help="the output must be JSON that fits this schema: a file, or the schema itself when it starts with '{'")
    group.add_argument("--grammar", metavar="TEXT", default=None, help="the output must follow this GBNF grammar (rule 'root')")
    group.add_argument("--grammar-file", metavar="FILE", default=None, help="the same, the grammar read from FILE")
    group.add_argument("--choices", metavar="A|B|...", default=None,
                       help="the output must be exactly one of these '|'-separated choices")


def constraint_from_args(args: argparse.Namespace) -> Constraint | None:
    """The constraint the options ask for, files read as UTF-8; None without one.

    Raises:
        InvalidParameterError: a file that cannot be read or is not UTF-8, a schema that is not a
            JSON object, an empty grammar or choice list.
    """
    schema, grammar, grammar_file, choices = (getattr(args, name, None) for name in ("json_schema", "grammar", "grammar_file", "choices"))
    if schema is not None:
        text = schema if schema.lstrip().startswith("{") else read_text_file(schema, "--json-schema")
        return Constraint.json_schema(text)
    if grammar is not None:
        return Constraint.grammar(grammar)
    if grammar_file is not None:
        return Constraint.grammar(read_text_file(grammar_file, "--grammar-file"))
    if choices is not None:
        return Constraint.of_choices(choices)
    return None


def read_text_file(path: str, option: str) -> str:
    """A small text file given to ``option``, as UTF-8 (one clear error if it cannot be)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONSTRAINT_FILE + 1)
    except FileNotFoundError:
        raise InvalidParameterError(f"{option}: no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidParameterError(f"{option}: {path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidParameterError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONSTRAINT_FILE:
        raise InvalidParameterError(f"{option}: {path} is larger than {MAX_CONSTRAINT_FILE // 2**20} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(
            f"{option}: {path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


#: The largest schema or grammar file read.
MAX_CONSTRAINT_FILE = 1 << 20
