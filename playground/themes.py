"""Themes as TOML files -> plain ``ThemeSpec`` data (the UI turns them into Textual themes).

A theme file looks like::

    name = "playground-dark"
    dark = true
    [colors]          # Textual's base colours
    primary = "#4f9dde"
    background = "#14161b"
    [variables]       # the playground's own colours, used from CSS as $prob-high etc.
    prob-high = "#5fd787"

Built-in themes live in ``themes/`` of the checkout; a user's in ``locations.user_themes_dir()``
(a user theme with a built-in's name replaces it). A broken file is reported and skipped.
No Textual import here: the core stays headless.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from playground import locations
from playground.errors import ConfigError

DEFAULT_THEME = "playground-dark"

BASE_COLORS = (
    "primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
    "warning", "error", "success",
)

#: The playground's own theme variables and a fallback for themes that do not set them.
APP_VARIABLES: dict[str, str] = {
    "prob-high": "#5fd787",
    "prob-mid": "#d7d75f",
    "prob-low": "#ff8700",
    "prob-very-low": "#ff5f5f",
    "bar-raw": "#5f87af",
    "bar-final": "#87d7ff",
    "cut-mark": "#ff5f87",
    "token-selected": "#3a3a5a",
}

# The shapes Textual's Color.parse takes (the UI still asks Textual, which has the last word).
_COLOR = re.compile(r"^(#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})|(rgb|hsl)a?\([^)]{0,60}\)|[a-z][a-z0-9_]{0,40})$")

#: A theme's name: shown in notifications and used in the config, so plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

#: A theme file larger than this is not a theme.
MAX_THEME_BYTES = 256 * 1024


def describe(value: object) -> str:
    """A short, safe rendering of a TOML value for an error message (never a huge or deep repr)."""
    if isinstance(value, (dict, list)):
        return "a table" if isinstance(value, dict) else "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class ThemeSpec:
    """One theme as data."""

    name: str
    """Name used with ``--theme`` and in the config."""
    dark: bool
    """Whether it is a dark theme (Textual derives shades from it)."""
    colors: dict[str, str]
    """Textual base colours (primary is required)."""
    variables: dict[str, str] = field(default_factory=dict)
    """The playground's variables (``APP_VARIABLES`` names), filled with fallbacks when absent."""
    source: Path | None = None
    """The file it came from."""


def parse_theme(text: str, source: Path | None = None) -> ThemeSpec:
    """Parse one theme file's text; raise ConfigError with the reason if it is malformed."""
    where = str(source) if source else "theme"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})", title="Theme") from None
    except RecursionError:
        raise ConfigError(f"{where}: not a theme (TOML nested too deeply)", title="Theme") from None
    name = data.get("name") or (source.stem if source else None)
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise ConfigError(f"{where}: 'name' must be a plain name (letters, digits, - _ . +), not {describe(name)}",
                          title="Theme")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ConfigError(f"{where}: 'dark' must be true or false", title="Theme")
    unknown = [k for k in data if k not in ("name", "dark", "colors", "variables")]
    if unknown:
        raise ConfigError(f"{where}: unknown key {describe(unknown[0])}", title="Theme")
    colors = _color_table(data.get("colors", {}), where, "colors", allowed=BASE_COLORS)
    if "primary" not in colors:
        raise ConfigError(f"{where}: [colors] needs at least 'primary'", title="Theme")
    # Only the playground's own variables: Textual's (e.g. block-cursor-text-style) are not all
    # colours, and a wrong value there breaks every stylesheet at startup.
    variables = _color_table(data.get("variables", {}), where, "variables", allowed=tuple(APP_VARIABLES))
    return ThemeSpec(name.strip(), dark, colors, {**APP_VARIABLES, **variables}, source)


def _color_table(table: object, where: str, section: str, *, allowed: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{section}] must be a table", title="Theme")
    out: dict[str, str] = {}
    for key, value in table.items():
        if key not in allowed:
            what = "colour" if section == "colors" else "variable"
            raise ConfigError(f"{where}: unknown {what} {describe(key)} in [{section}]", title="Theme")
        if not isinstance(value, str) or not _COLOR.match(value.strip()):
            raise ConfigError(f"{where}: [{section}] '{key}' is not a colour ({describe(value)})", title="Theme")
        out[key] = value.strip()
    return out


def read_theme(path: Path) -> ThemeSpec:
    """Read and parse one theme file (ConfigError naming the file when it cannot be)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_THEME_BYTES + 1)
        if len(data) > MAX_THEME_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_THEME_BYTES // 1024} KiB; not a theme", title="Theme")
        return parse_theme(data.decode("utf-8"), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})", title="Theme") from None


def load_dir(directory: Path) -> tuple[list[ThemeSpec], list[ConfigError]]:
    """Every ``*.toml`` theme in ``directory`` (sorted), and the errors of the broken ones."""
    themes: list[ThemeSpec] = []
    errors: list[ConfigError] = []
    if not directory.is_dir():
        return themes, errors
    try:
        paths = sorted(directory.glob("*.toml"))
    except OSError as exc:
        return themes, [ConfigError(f"{directory}: cannot list the themes ({exc.strerror})", title="Theme")]
    for path in paths:
        try:
            themes.append(read_theme(path))
        except ConfigError as exc:
            errors.append(exc)
    return themes, errors


def load_themes(
    builtin_dir: Path | None = None, user_dir: Path | None = None
) -> tuple[dict[str, ThemeSpec], list[ConfigError]]:
    """Built-in then user themes by name (a user theme overrides a built-in one), plus errors."""
    found: dict[str, ThemeSpec] = {}
    errors: list[ConfigError] = []
    for directory in (builtin_dir or locations.builtin_themes_dir(), user_dir or locations.user_themes_dir()):
        themes, errs = load_dir(directory)
        errors += errs
        found.update({t.name: t for t in themes})
    return found, errors
