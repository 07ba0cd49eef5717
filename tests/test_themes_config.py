"""Theme files and the config file: parsing, errors reported, defaults kept, the app still starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground import locations
from playground.config import Config, load_config, parse_config
from playground.errors import ConfigError
from playground.params import SamplerParams
from playground.themes import APP_VARIABLES, DEFAULT_THEME, load_themes, parse_theme

GOOD = """
name = "mine"
dark = false
[colors]
primary = "#123456"
background = "#ffffff"
[variables]
prob-high = "#00aa00"
"""


def test_builtin_themes_load_and_define_every_app_variable():
    themes, errors = load_themes()
    assert errors == []
    assert {DEFAULT_THEME, "playground-light", "playground-high-contrast"} <= set(themes)
    for spec in themes.values():
        assert set(APP_VARIABLES) <= set(spec.variables)
    assert themes["playground-light"].dark is False


def test_builtin_themes_become_textual_themes():
    from textual.color import Color

    from playground.ui.theming import to_textual

    themes, _ = load_themes()
    for spec in themes.values():
        theme = to_textual(spec)
        assert theme.name == spec.name and theme.dark == spec.dark
        for value in theme.variables.values():
            Color.parse(value)


def test_theme_missing_variables_get_fallbacks():
    spec = parse_theme(GOOD)
    assert spec.variables["prob-high"] == "#00aa00"
    assert spec.variables["cut-mark"] == APP_VARIABLES["cut-mark"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("name = [", "not valid TOML"),
        ('name = "x"\n[colors]\nbackground = "#000"', "needs at least 'primary'"),
        ('name = "x"\n[colors]\nprimary = "not a colour!"', "is not a colour"),
        ('name = "x"\n[colors]\nprimary = "#000"\nsparkle = "#fff"', "unknown colour"),
        ('name = "x"\ndark = "yes"\n[colors]\nprimary = "#000"', "'dark' must be"),
    ],
)
def test_broken_theme_is_reported(text, reason):
    with pytest.raises(ConfigError) as info:
        parse_theme(text)
    assert reason in info.value.message


def test_user_theme_dir_broken_file_reported_good_ones_kept(tmp_path: Path):
    user = tmp_path / "themes"
    user.mkdir()
    (user / "mine.toml").write_text(GOOD)
    (user / "broken.toml").write_text("name = [")
    (user / "override.toml").write_text(GOOD.replace('"mine"', f'"{DEFAULT_THEME}"'))
    themes, errors = load_themes(user_dir=user)
    assert "mine" in themes and len(errors) == 1 and "broken.toml" in errors[0].message
    assert themes[DEFAULT_THEME].source == user / "override.toml"


def test_ui_rejects_a_colour_textual_cannot_parse():
    from playground.ui.theming import to_textual

    spec = parse_theme('name = "x"\n[colors]\nprimary = "notacolour"')
    with pytest.raises(ConfigError):
        to_textual(spec)


def test_config_absent_is_defaults():
    config, errors = load_config()
    assert config == Config() and errors == []


def test_config_values_and_keymap():
    config, errors = parse_config(
        'theme = "playground-light"\n'
        '[model]\nctx_size = 1024\npath = "/models/x.gguf"\n'
        "[sampler]\ntemperature = 1\ntop_k = 0\nmax_tokens = 99\n"
        '[keymap]\ngenerate = "f5,ctrl+g"\n'
    )
    assert errors == []
    assert config.theme == "playground-light"
    assert config.model.ctx_size == 1024 and config.model.path == "/models/x.gguf"
    assert config.sampler == SamplerParams(temperature=1.0, top_k=0)
    assert isinstance(config.sampler.temperature, float)
    assert config.generation.max_tokens == 99
    assert config.keymap == {"generate": "f5,ctrl+g"}


def test_config_bad_values_reported_rest_kept():
    config, errors = parse_config(
        '[sampler]\ntemperature = "hot"\ntop_k = 5\nwhatever = 1\n[model]\nctx_size = true\n[bogus]\n'
    )
    messages = " | ".join(e.message for e in errors)
    assert "'temperature' should be float" in messages
    assert "unknown key 'whatever'" in messages and "unknown key 'bogus'" in messages
    assert "'ctx_size' should be int" in messages
    assert config.sampler.top_k == 5 and config.sampler.temperature == SamplerParams().temperature


def test_config_out_of_range_sampler_falls_back_to_defaults():
    config, errors = parse_config("[sampler]\ntop_p = 0.0\n")
    assert config.sampler == SamplerParams() and "top-p" in errors[0].message


def test_config_broken_toml_is_defaults_and_one_error():
    path = locations.config_file()
    path.parent.mkdir(parents=True)
    path.write_text("theme = = 1")
    config, errors = load_config()
    assert config == Config() and len(errors) == 1 and str(path) in errors[0].message


async def test_app_starts_with_broken_config_and_theme_and_reports_them(engine):
    """A broken config and a broken user theme are notified; the app runs on defaults."""
    from playground.commands.tui import build_parser, settings_from_args
    from playground.ui.app import make_app

    locations.config_file().parent.mkdir(parents=True)
    locations.config_file().write_text("[sampler]\ntemperature = 'hot'\n")
    locations.user_themes_dir().mkdir(parents=True)
    (locations.user_themes_dir() / "bad.toml").write_text("name = [")
    config, errors = load_config()
    settings = settings_from_args(build_parser().parse_args(["--theme", "playground-light"]), config, errors)
    settings.engine = engine
    app = make_app(settings)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        texts = [n.message for n in app._notifications]
        assert any("temperature" in t for t in texts)
        assert any("bad.toml" in t for t in texts)
        assert app.theme == "playground-light"
        assert app.get_css_variables()["prob-high"] == "#1f7a3a"


async def test_unknown_theme_name_falls_back(engine):
    from playground.ui.app import make_app
    from playground.ui.settings import AppSettings

    app = make_app(AppSettings(theme="no-such-theme", engine=engine))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == DEFAULT_THEME
        assert any("no-such-theme" in n.message for n in app._notifications)


async def test_keymap_remaps_a_binding_by_id(engine):
    from playground.ui.app import make_app
    from playground.ui.settings import AppSettings

    config = Config(keymap={"show_rendered": "f9"})
    app = make_app(AppSettings(config=config, engine=engine))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f9")
        await pilot.pause()
        assert type(app.screen).__name__ == "RenderedPromptScreen"
