"""Screenshots of the shell around the chat: the setup screen, and the app in a light theme.

Run `pytest tests/snapshots` and look at snapshot_report.html when one fails;
`pytest tests/snapshots --snapshot-update` accepts the new pictures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.app import App

from glmchat.config import Config
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.ui.screens.setup import SetupScreen
from glmchat.ui.themes import THEME_VARIABLE_DEFAULTS, load_themes, register_themes

BASE_TIME = 1_700_000_000.0
"""A fixed 'now' (Tue 14 Nov 2023, 22:13 UTC)."""


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dates on screen in UTC, so the pictures do not depend on the machine's time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class SetupHost(App[None]):
    """The setup screen over an empty app, as on a first run."""

    def __init__(self, theme: str) -> None:
        super().__init__()
        self.theme_name = theme

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        register_themes(self, load_themes(None))
        self.theme = self.theme_name
        # No candidates: the probe runs (and says it found nothing) without touching real ports.
        self.push_screen(SetupScreen(Config(), BUILTIN_HOSTS, probe=True, probe_candidates=()))


async def _settle(pilot: Any) -> None:
    """Let workers finish, and stop cursors blinking (a blink mid-screenshot flips a cell)."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    for screen in pilot.app.screen_stack:
        for widget in screen.query("Input, TextArea"):
            widget.cursor_blink = False
    await pilot.pause()


def test_setup_screen(snap_compare: Any) -> None:
    """You should see the "Set up glmchat" dialog: ten hosts (Z.ai highlighted, each hosted one
    naming its key variable, "(not set)"), "No local servers found …", the masked key field with
    three dots typed, the "Use $ZAI_API_KEY from the environment (not set now)" checkbox, and
    Cancel / Continue."""

    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press(*"abc")
        await _settle(pilot)

    assert snap_compare(SetupHost("glm-dark"), run_before=run_before, terminal_size=(100, 34))


class LightThemeHost(App[None]):
    """The session sidebar next to samples of every app colour variable, in glm-light.

    The chat screen's own pictures belong to its tests; this one checks the light
    theme on the shell's widgets and on the variables the chat widgets use.
    """

    CSS = """
    #samples { padding: 1 2; }
    #samples > Static { margin-bottom: 1; padding: 0 1; }
    #user { background: $user-message-background; }
    #reasoning { color: $reasoning-foreground; background: $reasoning-background; }
    #on { color: $thinking-on; }
    #off { color: $thinking-off; }
    """

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def compose(self) -> Any:
        from textual.containers import Horizontal, Vertical
        from textual.widgets import Static

        from glmchat.store import SessionSummary
        from glmchat.ui.widgets.session_list import SessionList

        summaries = [
            SessionSummary(f"{n:032x}", n, title, "zai", "glm-4.7", BASE_TIME - n * 86_400, BASE_TIME - n * 3_600, n)
            for n, title in ((3, "Rust lifetimes"), (2, "Sourdough timing"), (1, "SQL window functions"))
        ]
        with Horizontal():
            yield SessionList(summaries, summaries[0].id, clock=lambda: BASE_TIME)
            with Vertical(id="samples"):
                yield Static("You · thinking on\nExplain lifetimes in one paragraph.", id="user")
                yield Static("▼ Thought for 3.1 s · 20 tokens\nThe user wants a short explanation.", id="reasoning")
                yield Static("● thinking on", id="on")
                yield Static("○ thinking off", id="off")

    def on_mount(self) -> None:
        register_themes(self, load_themes(None))
        self.theme = "glm-light"


def test_light_theme(snap_compare: Any) -> None:
    """You should see glm-light: the sidebar (search field, three sessions with "Rust lifetimes"
    marked ● and highlighted, New / Rename / Delete), and on the right a pale blue user message,
    a grey reasoning block, a green "thinking on" and a grey "thinking off"."""
    assert snap_compare(LightThemeHost(), run_before=_settle, terminal_size=(90, 20))
