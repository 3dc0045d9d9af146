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

from glmchat.config import AppOptions, Config
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.ui.screens.setup import SetupScreen
from glmchat.ui.themes import THEME_VARIABLE_DEFAULTS, load_themes, register_themes
from tests.ui_support import BASE_TIME, make_app, make_config, open_store, stored_session, stored_turn


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


def test_light_theme_chat(snap_compare: Any) -> None:
    """You should see glmchat in the glm-light theme: the sidebar with two sessions (the open
    one marked ●), a turn whose reasoning is unfolded above its answer, a turn sent with
    thinking off, the composer and the status line."""
    store = open_store()
    try:
        stored_session(store, "Sourdough timing", [stored_turn(1, user="How long should dough proof?")], number_hint=1)
        session = stored_session(
            store,
            "Rust lifetimes",
            [
                stored_turn(
                    2,
                    user="Explain lifetimes in one paragraph.",
                    reasoning="The user wants a short explanation.\nMention the borrow checker and scopes.",
                    content="A **lifetime** names how long a reference stays valid; the borrow checker "
                    "proves no reference outlives the value it points to.",
                ),
                stored_turn(3, thinking=False, user="And in one word?", content="Scope."),
            ],
            number_hint=2,
        )
    finally:
        store.close()
    config = make_config(theme="glm-light")
    app = make_app(config=config, options=AppOptions(session=session.id), clock=lambda: BASE_TIME + 3600)

    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("ctrl+o")  # unfold every reasoning pane
        await _settle(pilot)

    assert snap_compare(app, run_before=run_before, terminal_size=(110, 34))
