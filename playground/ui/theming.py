"""Turn the core's ``ThemeSpec`` data into Textual themes and register them."""

from __future__ import annotations

from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import Theme

from playground.errors import ConfigError
from playground.themes import APP_VARIABLES, DEFAULT_THEME, ThemeSpec, load_themes


def to_textual(spec: ThemeSpec) -> Theme:
    """One ThemeSpec as a Textual Theme (the playground's variables included).

    Raises:
        ConfigError: a colour Textual cannot parse, or a theme Textual cannot derive shades from;
            naming the file and the field.
    """
    where = spec.source or spec.name
    for section, table in (("colors", spec.colors), ("variables", spec.variables)):
        for key, value in table.items():
            try:
                Color.parse(value)
            except ColorParseError:
                raise ConfigError(f"{where}: [{section}] '{key}' is not a colour ({value!r:.40})", title="Theme") from None
    # Only our own variables reach Textual: some of Textual's are not colours (text styles).
    variables = {k: v for k, v in spec.variables.items() if k in APP_VARIABLES}
    theme = Theme(name=spec.name, dark=spec.dark, variables=variables, **spec.colors)
    try:
        theme.to_color_system().generate()  # what Textual does when the theme is applied
    except Exception as exc:  # noqa: BLE001 - whatever Textual dislikes, the app must still start
        raise ConfigError(f"{where}: Textual cannot use this theme ({exc})", title="Theme") from None
    return theme


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
