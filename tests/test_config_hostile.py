"""Hostile and broken config and theme files: reported in one line naming the file and the field,
defaults kept for the rest, and the app still starts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground import locations
from playground.config import Config, load_config, parse_config
from playground.engine_options import EngineChoice
from playground.errors import ConfigError
from playground.params import MAX_TOP_N
from playground.themes import APP_VARIABLES, BASE_COLORS, load_themes, parse_theme

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- a small TOML writer for the fuzzers (values tomllib can read back, hostile ones included) ---
def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes (\uXXXX)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_document(data: dict) -> str:
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


scalars = (
    st.booleans() | st.integers() | st.sampled_from([2**63 - 1, -(2**63), 2**31, -1, 0])
    | st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, 1e308])
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
SECTIONS = {
    "model": ["path", "ctx_size", "gpu_layers", "threads"],
    "sampler": ["temperature", "temp", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed", "greedy",
                "max_tokens", "top_n"],
    "generation": ["max_tokens", "top_n", "dist_size"],
    "keymap": ["generate", "quit", "show_rendered"],
}


@st.composite
def configs(draw: st.DrawFn) -> dict:
    data: dict = {}
    for name in ("theme", "history_dir", "bogus"):
        if draw(st.booleans()):
            data[name] = draw(values)
    for section, keys in SECTIONS.items():
        if draw(st.booleans()):
            table = {k: draw(values) for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
            data[section] = table if draw(st.integers(0, 9)) else draw(values)  # sometimes not even a table
    return data


def assert_usable(config: Config) -> None:
    """What the app and the commands then do with the config must work."""
    config.sampler.validate()
    config.model.validate()
    config.generation.validate()
    EngineChoice(n_ctx=config.model.ctx_size, n_threads=config.model.threads,
                 n_gpu_layers=config.model.gpu_layers).validate()
    assert isinstance(config.theme, str) and config.theme
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in config.keymap.items())
    assert isinstance(config.history_dir, Path)
    assert all(math.isfinite(getattr(config.sampler, n)) for n in ("temperature", "top_p", "min_p", "repeat_penalty"))


@FUZZ
@given(configs())
def test_any_config_gives_a_usable_config_and_one_line_per_problem(data):
    text = toml_document(data)
    config, errors = parse_config(text, "cfg.toml")
    assert_usable(config)
    for error in errors:
        assert isinstance(error, ConfigError) and error.message.startswith("cfg.toml: ")
        assert "\n" not in error.message and len(error.message) < 400


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_config(data):
    path = locations.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    config, errors = load_config()
    assert_usable(config)
    assert all(str(path) in e.message for e in errors)


@pytest.mark.parametrize(
    "text, field",
    [
        ("theme = 5", "'theme'"),
        ("theme = ''", "'theme'"),
        ("history_dir = 3", "'history_dir'"),
        ('history_dir = "a\\u0000b"', "'history_dir'"),
        ("[model]\nctx_size = -5", "[model] 'ctx_size'"),
        ("[model]\nctx_size = 99999999999999", "[model] 'ctx_size'"),
        ("[model]\nthreads = 99999999999", "[model] 'threads'"),
        ("[model]\ngpu_layers = -99", "[model] 'gpu_layers'"),
        ("[model]\npath = 5", "[model] 'path'"),
        ('[model]\npath = "x\\u0000y"', "[model] 'path'"),
        ("model = 3", "[model] must be a table"),
        ("[sampler]\ntemperature = nan", "[sampler] 'temperature' must be a finite number"),
        ("[sampler]\ntop_p = inf", "[sampler] 'top_p' must be a finite number"),
        ("[sampler]\nrepeat_penalty = -inf", "[sampler] 'repeat_penalty'"),
        ("[sampler]\nseed = 99999999999999", "[sampler] 'seed'"),
        ("[sampler]\ntop_k = [1, 2]", "[sampler] 'top_k' should be int"),
        ("[generation]\ndist_size = 100000000000", "[generation] 'dist_size'"),
        ("[generation]\ntop_n = 1000", "[generation] 'top_n'"),
        ("[generation]\nmax_tokens = 0", "[generation] 'max_tokens'"),
        ("[generation]\nmax_tokens = 1e3", "[generation] 'max_tokens' should be int"),
        ("[keymap]\ngenerate = 5", "[keymap] 'generate'"),
        ("keymap = 'ctrl+g'", "[keymap] must be a table"),
    ],
)
def test_each_bad_field_is_named_and_the_rest_kept(text, field):
    good = "" if "[sampler]" in text else "\n[sampler]\ntop_k = 7\n"
    config, errors = parse_config(text + good, "cfg.toml")
    assert_usable(config)
    assert len(errors) == 1 and field in errors[0].message and errors[0].message.startswith("cfg.toml: "), errors
    if good:
        assert config.sampler.top_k == 7  # a bad value elsewhere does not cost the good ones


@pytest.mark.parametrize("text", ["x = " + "[" * 5000 + "]" * 5000, "x = " + "{a = " * 3000 + "1" + "}" * 3000,
                                  "[" + ".".join(["a"] * 5000) + "]"])
def test_deeply_nested_toml_is_one_error(text):
    config, errors = parse_config(text, "cfg.toml")
    assert config == Config() and len(errors) == 1 and "cfg.toml: " in errors[0].message


def test_one_bad_sampler_value_keeps_the_other_sampler_values():
    config, errors = parse_config("[sampler]\ntemperature = 0.3\ntop_p = 7.0\ntop_k = 12\n")
    assert config.sampler.temperature == 0.3 and config.sampler.top_k == 12 and config.sampler.top_p == 0.95
    assert len(errors) == 1 and "'top_p'" in errors[0].message


def test_huge_config_file_is_not_read(tmp_path):
    path = locations.config_file()
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    config, errors = load_config()
    assert config == Config() and len(errors) == 1 and "larger than" in errors[0].message


# --- themes -----------------------------------------------------------------------------------------
@st.composite
def themes(draw: st.DrawFn) -> str:
    data: dict = {}
    if draw(st.booleans()):
        data["name"] = draw(st.sampled_from(["t", "my-theme", "", "a b", "[red]x"]) | values)
    if draw(st.booleans()):
        data["dark"] = draw(values)
    colour = st.sampled_from(["#123456", "#12345", "#abc", "notacolour", "red", "rgb(1,2,3)", "hsl(1,2,3)",
                              "ansi_default", "transparent", "#1234567", "#11223344"]) | values
    for section, keys in (("colors", BASE_COLORS + ("sparkle",)),
                          ("variables", tuple(APP_VARIABLES) + ("block-cursor-text-style", "foo bar"))):
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))
            data[section] = {k: draw(colour) for k in chosen}
    return toml_document(data)


@FUZZ
@given(themes())
def test_any_theme_is_a_textual_theme_or_one_config_error(text):
    from textual.color import Color

    from playground.ui.theming import to_textual

    try:
        spec = parse_theme(text, Path("t.toml"))
        theme = to_textual(spec)
    except ConfigError as exc:
        assert exc.message.startswith("t.toml: ") and "\n" not in exc.message
        return
    system = theme.to_color_system().generate()
    for name in APP_VARIABLES:
        Color.parse(theme.variables[name])
    assert system
    assert set(theme.variables) <= set(APP_VARIABLES)


@pytest.mark.parametrize(
    "text, needle",
    [
        ('name = "x"\n[colors]\nprimary = "#12345"', "[colors] 'primary' is not a colour"),
        ('name = "x"\n[colors]\nprimary = "#123456"\n[variables]\nprob-high = "notacolour"',
         "[variables] 'prob-high' is not a colour"),
        ('name = "x"\n[colors]\nprimary = "#123456"\n[variables]\nblock-cursor-text-style = "red"',
         "unknown variable 'block-cursor-text-style'"),
        ('name = "a\\u001b]0;x"\n[colors]\nprimary = "#123456"', "'name' must be a plain name"),
        ("x = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ('name = "x"\ncolors = 5', "[colors] must be a table"),
    ],
)
def test_broken_themes_name_the_file_and_field(tmp_path, text, needle):
    folder = tmp_path / "themes"
    folder.mkdir()
    (folder / "broken.toml").write_text(text)
    found, errors = load_themes(builtin_dir=tmp_path / "none", user_dir=folder)
    if errors:
        (error,) = errors
        assert str(folder / "broken.toml") in error.message and needle in error.message
        return
    from playground.ui.theming import to_textual

    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")) as info:
        to_textual(found["x"])
    assert str(folder / "broken.toml") in info.value.message


async def test_app_starts_with_hostile_config_and_themes_and_names_each_problem(engine):
    """A theme that once crashed every stylesheet, a colour Textual refuses, deep TOML, NaN values."""
    from playground.commands.tui import build_parser, settings_from_args
    from playground.ui.app import make_app

    themes_dir = locations.user_themes_dir()
    themes_dir.mkdir(parents=True)
    (themes_dir / "styles.toml").write_text(
        'name = "styles"\n[colors]\nprimary = "#123456"\n[variables]\nblock-cursor-text-style = "red"\n')
    (themes_dir / "short.toml").write_text('name = "short"\n[colors]\nprimary = "#12345"\n')
    (themes_dir / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000)
    locations.config_file().write_text(
        'theme = "styles"\n[sampler]\ntemperature = nan\ntop_k = 5\n[model]\nctx_size = -5\nthreads = 99999999999\n'
        '[generation]\ndist_size = 100000000000\n[keymap]\ngenerate = 5\n')
    config, errors = load_config()
    settings = settings_from_args(build_parser().parse_args([]), config, errors)
    settings.engine = engine
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        texts = [n.message for n in app._notifications]
        assert app.theme == "playground-dark"
        for needle in ("styles.toml: unknown variable 'block-cursor-text-style'", "short.toml: [colors] 'primary'",
                       "deep.toml: not a theme", "[sampler] 'temperature'", "[model] 'ctx_size'", "[model] 'threads'",
                       "[generation] 'dist_size'", "[keymap] 'generate'", "no theme named 'styles'"):
            assert any(needle in t for t in texts), (needle, texts)
        assert config.sampler.top_k == 5  # the good value next to the NaN is kept


@pytest.mark.parametrize("ctx", [15, 16, 4096, 1 << 20, (1 << 20) + 1])
@pytest.mark.parametrize("threads", [None, 0, 1, "max", "max+1"])
@pytest.mark.parametrize("layers", [None, -2, -1, 0, 100_000, 100_001])
def test_config_and_engine_agree_on_the_model_bounds(ctx, threads, layers):
    """config duplicates the engine's bounds (it may not import engine_options): they must agree."""
    from playground import engine_options
    from playground.config import ModelConfig

    n = {"max": engine_options.max_threads(), "max+1": engine_options.max_threads() + 1}.get(threads, threads)
    engine_ok = config_ok = True
    try:
        EngineChoice(n_ctx=ctx, n_threads=n, n_gpu_layers=layers).validate()
    except Exception:  # noqa: BLE001
        engine_ok = False
    try:
        ModelConfig(ctx_size=ctx, threads=n, gpu_layers=layers).validate()
    except Exception:  # noqa: BLE001
        config_ok = False
    assert engine_ok == config_ok


def test_the_limits_themselves_are_accepted():
    config, errors = parse_config(f"[generation]\ntop_n = {MAX_TOP_N}\ndist_size = 65536\n")
    assert errors == [] and config.generation.top_n == MAX_TOP_N
