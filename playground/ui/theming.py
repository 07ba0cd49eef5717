"""Turn the core's ``ThemeSpec`` data into Textual themes and register them."""

from __future__ import annotations

from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import Theme

from playground.errors import ConfigError
from playground.themes import DEFAULT_THEME, ThemeSpec, load_themes


def to_textual(spec: ThemeSpec) -> Theme:
    """One ThemeSpec as a Textual Theme (the playground's variables included).

    Raises:
        ConfigError: a colour Textual cannot parse.
    """
    for key, value in {**spec.colors, **spec.variables}.items():
        try:
            Color.parse(value)
        except ColorParseError:
            raise ConfigError(f"{spec.source or spec.name}: '{key}' is not a colour ({value!r})", title="Theme") from None
    return Theme(name=spec.name, dark=spec.dark, variables=dict(spec.variables), **spec.colors)


def install_themes(app: App, wanted: str) -> tuple[str, list[ConfigError]]:
    """Register built-in and user themes; return the theme to use and any problems found."""
    specs, errors = load_themes()
    for spec in specs.values():
        try:
            app.register_theme(to_textual(spec))
        except ConfigError as exc:
            errors.append(exc)
    if wanted in app.available_themes:
        return wanted, errors
    fallback = DEFAULT_THEME if DEFAULT_THEME in app.available_themes else "textual-dark"
    errors.append(ConfigError(f"no theme named '{wanted}'; using {fallback}", title="Theme"))
    return fallback, errors
