"""Theme files: the shipped TOML themes plus the user's own, loaded into Textual's registry.

A theme file uses the field names of Textual's ``Theme`` (``name``, ``primary``,
``background``, ``dark`` ...) and a ``[variables]`` table for the app's own CSS
variables (see ``THEME_VARIABLE_DEFAULTS``). Files are validated before a
``Theme`` is built: a bad file is reported in one line naming it and skipped,
never fatal, so a typo in a user theme cannot stop glmchat from starting.

The shipped themes are package data (``glmchat.themes``) read through
importlib.resources, so they load the same from a wheel, an editable install or
the source tree.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

if TYPE_CHECKING:
    from textual.app import App

DEFAULT_THEME = "glm-dark"
"""The theme used when the config names none (or one that does not exist)."""

THEME_PACKAGE = "glmchat.themes"
"""Package holding the shipped ``*.toml`` themes (the top-level ``themes/`` folder)."""

THEME_VARIABLE_DEFAULTS: dict[str, str] = {
    "reasoning-foreground": "#8c8c96",
    "reasoning-background": "#80808014",
    "user-message-background": "#5a8fd426",
    "thinking-on": "#3fb68b",
    "thinking-off": "#8c8c96",
}
"""Defaults of the app's CSS variables, for ``App.get_theme_variable_defaults()``.

They apply to any theme that does not set them (Textual's built-in themes), so
they are mid-tones and translucent backgrounds that read on dark and light
alike. They must be literal colours: a ``$variable`` reference does not parse.
"""

COLOR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
"""Theme fields that hold a colour."""

_THEME_FIELDS = {f.name for f in dataclasses.fields(Theme)}
_BOOL_FIELDS = ("dark", "ansi")
_NUMBER_FIELDS = ("luminosity_spread", "text_alpha")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# "red 50%" / "#ff0000 20%": Textual CSS accepts a colour followed by an alpha percentage.
_ALPHA_SUFFIX = re.compile(r"^(?P<colour>.+?)\s+(?P<alpha>\d{1,3}(?:\.\d+)?)%$")
# A variable value is pasted into CSS: refuse characters that could end a declaration or rule.
_CSS_UNSAFE = re.compile(r"[;{}\n\r]")


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message says why (without the path)."""


@dataclass
class ThemeLoadResult:
    """What `load_themes` found."""

    themes: list[Theme] = field(default_factory=list)
    """Valid themes, shipped ones first; a user theme with a shipped name replaces it."""
    failures: list[str] = field(default_factory=list)
    """One line per file that was skipped: "<file>: <problem>"."""
    sources: dict[str, str] = field(default_factory=dict)
    """Theme name -> the file it came from (for messages and tests)."""

    @property
    def names(self) -> list[str]:
        """Names of the loaded themes, in load order."""
        return [theme.name for theme in self.themes]


def _check_colour(value: Any, where: str, *, allow_alpha_suffix: bool = False) -> None:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where} must be a colour string, not {type(value).__name__}")
    text = value.strip()
    if allow_alpha_suffix and (match := _ALPHA_SUFFIX.match(text)):
        text = match.group("colour")
        if float(match.group("alpha")) > 100:
            raise ThemeFileError(f"{where} = {value!r}: alpha above 100%")
    try:
        Color.parse(text)
    except ColorParseError:
        raise ThemeFileError(f"{where} = {value!r} is not a colour") from None


def theme_from_dict(data: dict[str, Any]) -> Theme:
    """Build a Theme from a theme file's table, checking every key and value.

    Raises:
        ThemeFileError: an unknown key, a missing ``name``/``primary``, a value of
            the wrong type, or a colour Textual cannot parse.
    """
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise ThemeFileError(f"unknown key(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeFileError("missing name")
    if not _NAME.match(name):
        raise ThemeFileError(f"name {name!r} must be letters, digits, '-' or '_'")
    if "primary" not in data:
        raise ThemeFileError("missing primary colour")
    for key in COLOR_FIELDS:
        if data.get(key) is not None:
            _check_colour(data[key], key)
    for key in _BOOL_FIELDS:
        if key in data and not isinstance(data[key], bool):
            raise ThemeFileError(f"{key} must be true or false")
    for key in _NUMBER_FIELDS:
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
            raise ThemeFileError(f"{key} must be a number")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError("[variables] must be a table")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ThemeFileError(f"variables.{key} must be a string")
        if _CSS_UNSAFE.search(value) or not value.strip():
            raise ThemeFileError(f"variables.{key} = {value!r} is not a usable CSS value")
        if key in THEME_VARIABLE_DEFAULTS:
            _check_colour(value, f"variables.{key}", allow_alpha_suffix=True)
    values = dict(data)
    values["variables"] = dict(variables)
    for key in _NUMBER_FIELDS:
        if key in values:
            values[key] = float(values[key])
    return Theme(**values)


def load_theme_text(text: str) -> Theme:
    """Parse one theme file's TOML text.

    Raises:
        ThemeFileError: not TOML, or not a valid theme.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"not valid TOML ({exc})") from None
    return theme_from_dict(data)


def _read(entry: Traversable | Path) -> str:
    try:
        return entry.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ThemeFileError("not valid UTF-8") from None
    except OSError as exc:
        raise ThemeFileError(f"cannot read ({exc.strerror or exc})") from None


def shipped_theme_files() -> list[Traversable | Path]:
    """The shipped ``*.toml`` theme files, sorted by name.

    Installed, they are the package ``glmchat.themes``; in a source tree that was
    never installed, that package does not exist (the folder is mapped at install
    time), so the top-level ``themes/`` folder next to ``glmchat/`` is used.
    """
    try:
        folder: Traversable | Path = resources.files(THEME_PACKAGE)
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parents[2] / "themes"
        if not folder.is_dir():
            return []
    entries = [entry for entry in folder.iterdir() if entry.name.endswith(".toml") and entry.is_file()]
    return sorted(entries, key=lambda entry: entry.name)


def load_themes(user_dir: Path | None) -> ThemeLoadResult:
    """Load the shipped themes, then the user's ``*.toml`` files from `user_dir`.

    Never raises for a bad file: it is skipped and reported in ``failures`` as
    one line naming the file. A user theme with the name of a shipped theme
    replaces it; two user files with one name keep the first (sorted by file name).

    Args:
        user_dir: folder of user themes (``Paths.themes_dir``); None or a missing
            folder means no user themes.
    """
    result = ThemeLoadResult()
    by_name: dict[str, Theme] = {}
    user_names: set[str] = set()

    def add(entry: Traversable | Path, label: str, *, user: bool) -> None:
        try:
            theme = load_theme_text(_read(entry))
        except ThemeFileError as exc:
            result.failures.append(f"{label}: {exc}; skipped")
            return
        if user and theme.name in user_names:
            result.failures.append(
                f"{label}: theme {theme.name!r} is already defined by {result.sources[theme.name]}; skipped"
            )
            return
        if user:
            user_names.add(theme.name)
        by_name[theme.name] = theme
        result.sources[theme.name] = label

    for entry in shipped_theme_files():
        add(entry, f"themes/{entry.name}", user=False)

    if user_dir is not None and user_dir.is_dir():
        try:
            files = sorted(p for p in user_dir.iterdir() if p.suffix == ".toml" and p.is_file())
        except OSError as exc:
            result.failures.append(f"{user_dir}: cannot list themes ({exc.strerror or exc})")
            files = []
        for path in files:
            add(path, str(path), user=True)

    result.themes = list(by_name.values())
    return result


def failure_message(result: ThemeLoadResult) -> str | None:
    """One notification text listing every skipped theme file, or None if all loaded."""
    if not result.failures:
        return None
    lines = "\n".join(result.failures)
    count = len(result.failures)
    return f"{count} theme file{'s' if count > 1 else ''} skipped:\n{lines}"


def register_themes(app: App[Any], result: ThemeLoadResult, *, notify: bool = True) -> list[str]:
    """Register the loaded themes with the app (replacing same-named ones).

    Args:
        app: the running (or about to run) app.
        result: what `load_themes` returned.
        notify: show one warning toast naming every skipped file.

    Returns:
        The names registered.
    """
    for theme in result.themes:
        app.register_theme(theme)
    if notify and (message := failure_message(result)):
        app.notify(message, title="Themes", severity="warning", timeout=10, markup=False)
    return result.names
