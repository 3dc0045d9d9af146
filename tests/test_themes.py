"""Theme files: shipped themes, user themes, bad files, and registering them with an app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.color import Color
from textual.widgets import Static

from glmchat.ui import themes
from glmchat.ui.themes import (
    DEFAULT_THEME,
    THEME_VARIABLE_DEFAULTS,
    ThemeFileError,
    failure_message,
    load_theme_text,
    load_themes,
    register_themes,
)

GOOD = """
name = "my-sea"
dark = true
primary = "#0077be"
background = "#001f2f"

[variables]
reasoning-foreground = "#88aacc"
"""


def test_shipped_themes_load_and_set_every_app_variable() -> None:
    result = load_themes(None)
    assert result.failures == []
    assert {"glm-dark", "glm-light"} <= set(result.names)
    assert len(result.names) >= 4
    assert DEFAULT_THEME in result.names
    by_name = {t.name: t for t in result.themes}
    assert by_name["glm-dark"].dark and not by_name["glm-light"].dark
    for theme in result.themes:
        assert set(THEME_VARIABLE_DEFAULTS) <= set(theme.variables), theme.name
        assert result.sources[theme.name] == f"themes/{theme.name}.toml"


def test_variable_defaults_are_literal_colours() -> None:
    for name, value in THEME_VARIABLE_DEFAULTS.items():
        assert not value.startswith("$"), name
        Color.parse(value)


def test_bad_theme_files_are_skipped_with_a_line_naming_each(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad-colour.toml").write_text('name = "x1"\nprimary = "not-a-colour"\n', encoding="utf-8")
    (tmp_path / "unknown-key.toml").write_text('name = "x2"\nprimary = "red"\nshiny = true\n', encoding="utf-8")
    (tmp_path / "not-toml.toml").write_text("name = \n", encoding="utf-8")
    (tmp_path / "no-primary.toml").write_text('name = "x3"\n', encoding="utf-8")
    (tmp_path / "bad-var.toml").write_text(
        'name = "x4"\nprimary = "red"\n[variables]\nthinking-on = "blurple"\n', encoding="utf-8"
    )
    (tmp_path / "css-injection.toml").write_text(
        'name = "x5"\nprimary = "red"\n[variables]\nsomething = "red; } Screen { display: none"\n',
        encoding="utf-8",
    )
    (tmp_path / "latin1.toml").write_bytes(b'name = "caf\xe9"\nprimary = "red"\n')
    (tmp_path / "notes.txt").write_text("ignored: not a .toml file", encoding="utf-8")

    result = load_themes(tmp_path)

    assert "my-sea" in result.names
    assert not {"x1", "x2", "x3", "x4", "x5"} & set(result.names)
    failed = {line.split(": ", 1)[0]: line for line in result.failures}
    expected = {
        "bad-colour.toml": "not a colour",
        "unknown-key.toml": "unknown key(s) shiny",
        "not-toml.toml": "not valid TOML",
        "no-primary.toml": "missing primary",
        "bad-var.toml": "variables.thinking-on",
        "css-injection.toml": "not a usable CSS value",
        "latin1.toml": "not valid UTF-8",
    }
    assert set(failed) == {str(tmp_path / name) for name in expected}
    for name, problem in expected.items():
        assert problem in failed[str(tmp_path / name)]
    message = failure_message(result)
    assert message is not None and "7 theme files skipped" in message
    assert all(str(tmp_path / name) in message for name in expected)


def test_user_theme_replaces_shipped_one_and_duplicates_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "glm-dark"\nprimary = "#ff0000"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('name = "glm-dark"\nprimary = "#00ff00"\n', encoding="utf-8")
    result = load_themes(tmp_path)
    theme = next(t for t in result.themes if t.name == "glm-dark")
    assert theme.primary == "#ff0000"
    assert result.sources["glm-dark"] == str(tmp_path / "a.toml")
    assert result.failures == [
        f"{tmp_path / 'b.toml'}: theme 'glm-dark' is already defined by {tmp_path / 'a.toml'}; skipped"
    ]


def test_missing_user_dir_is_fine(tmp_path: Path) -> None:
    result = load_themes(tmp_path / "does-not-exist")
    assert result.failures == []
    assert DEFAULT_THEME in result.names


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name = "a b"\nprimary = "red"', "name 'a b'"),
        ('name = "x"\nprimary = "red"\ndark = "yes"', "dark must be true or false"),
        ('name = "x"\nprimary = "red"\ntext_alpha = "high"', "text_alpha must be a number"),
        ('name = "x"\nprimary = 12', "primary must be a colour string"),
        ('name = "x"\nprimary = "red"\nvariables = "no"', "[variables] must be a table"),
        ('name = "x"\nprimary = "red"\n[variables]\nthinking-on = "red 150%"', "alpha above 100%"),
    ],
)
def test_theme_validation_messages(text: str, problem: str) -> None:
    with pytest.raises(ThemeFileError) as info:
        load_theme_text(text)
    assert problem in str(info.value)


def test_alpha_suffix_is_accepted_for_app_variables() -> None:
    theme = load_theme_text('name = "x"\nprimary = "red"\n[variables]\nreasoning-background = "#202020 50%"\n')
    assert theme.variables["reasoning-background"] == "#202020 50%"


class ThemedApp(App[None]):
    """Uses every app variable in CSS, as the chat widgets do."""

    CSS = """
    #probe {
        color: $reasoning-foreground;
        background: $reasoning-background;
        border-left: tall $thinking-on;
        border-right: tall $thinking-off;
    }
    #probe2 { background: $user-message-background; }
    """

    def __init__(self, user_dir: Path | None) -> None:
        super().__init__()
        self.user_dir = user_dir

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        yield Static("probe", id="probe")
        yield Static("probe2", id="probe2")

    def on_mount(self) -> None:
        register_themes(self, load_themes(self.user_dir))
        self.theme = DEFAULT_THEME


async def test_registered_themes_drive_app_variables(tmp_path: Path) -> None:
    (tmp_path / "sea.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "nope"\n', encoding="utf-8")
    app = ThemedApp(tmp_path)
    notes: list[Any] = []
    async with app.run_test(size=(40, 10), notifications=True) as pilot:
        notes.extend(app._notifications)
        assert app.theme == "glm-dark"
        probe = app.query_one("#probe")
        dark_fg = probe.styles.color
        assert app.theme_variables["reasoning-foreground"] == "#9aa3b2"

        app.theme = "glm-light"
        await pilot.pause()
        assert app.theme_variables["reasoning-foreground"] == "#5c6575"
        assert probe.styles.color != dark_fg

        app.theme = "my-sea"
        await pilot.pause()
        assert app.theme_variables["reasoning-foreground"] == "#88aacc"
        # Variables the theme leaves out fall back to the defaults.
        assert app.theme_variables["thinking-on"] == THEME_VARIABLE_DEFAULTS["thinking-on"]

        # Textual's own themes have none of our variables: the defaults must parse there too.
        app.theme = "nord"
        await pilot.pause()
        assert app.theme_variables["reasoning-background"] == THEME_VARIABLE_DEFAULTS["reasoning-background"]
    assert len(notes) == 1
    assert str(tmp_path / "broken.toml") in notes[0].message
    assert notes[0].severity == "warning"


def test_shipped_themes_fall_back_to_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not installed, `glmchat.themes` does not exist; the top-level themes/ folder is used."""

    def no_package(name: str) -> Any:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(themes.resources, "files", no_package)
    files = themes.shipped_theme_files()
    assert [Path(str(f)).parent.name for f in files] == ["themes"] * len(files)
    assert "glm-light.toml" in [f.name for f in files]


# -- packaging: themes and stylesheets must survive a non-editable install -------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[zipfile.ZipFile, Path]:
    """Build a wheel from a copy of the source (so no build/ folder lands in the repo) and unpack it.

    A pure-Python wheel unpacked into a folder is what `pip install .` puts in site-packages.
    """
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("glmchat", "themes"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel_path] = out.glob("glmchat-*.whl")
    wheel = zipfile.ZipFile(wheel_path)
    site = root / "site"
    wheel.extractall(site)
    return wheel, site


@pytest.mark.timeout(300)
def test_wheel_ships_every_theme_and_stylesheet(unpacked_wheel: tuple[zipfile.ZipFile, Path]) -> None:
    wheel, _ = unpacked_wheel
    names = set(wheel.namelist())
    themes = sorted(p.name for p in (REPO / "themes").glob("*.toml"))
    assert len(themes) >= 4
    for name in themes:
        assert f"glmchat/themes/{name}" in names
    stylesheets = sorted(str(p.relative_to(REPO)) for p in (REPO / "glmchat").rglob("*.tcss"))
    for name in stylesheets:
        assert name in names
    # Every module too: a package missing from the list installs fine and fails on first use.
    modules = sorted(str(p.relative_to(REPO)) for p in (REPO / "glmchat").rglob("*.py"))
    assert [name for name in modules if name not in names] == []


@pytest.mark.timeout(300)
def test_installed_package_loads_its_themes_away_from_the_source_tree(
    unpacked_wheel: tuple[zipfile.ZipFile, Path], tmp_path: Path
) -> None:
    _, site = unpacked_wheel
    script = (
        "import glmchat.ui.themes as t, json; r = t.load_themes(None); "
        "print(json.dumps({'names': r.names, 'failures': r.failures, "
        "'files': [str(f) for f in t.shipped_theme_files()], 'module': t.__file__}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout)
    assert found["module"].startswith(str(site))
    assert found["failures"] == []
    assert {"glm-dark", "glm-light", "glm-ember", "glm-high-contrast"} <= set(found["names"])
    assert all(f.startswith(str(site / "glmchat" / "themes")) for f in found["files"])
