"""Screenshots of the chat screen: the main screen, and a turn with its reasoning folded and unfolded.

Every picture is made from stored turns with fixed ids and timestamps, a fixed
clock, a fixed theme and size, and no blinking cursor, so it only changes
when the screen does. Run `pytest tests/snapshots` and look at
snapshot_report.html when one fails; `--snapshot-update` accepts new pictures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from glmchat.config import AppOptions
from glmchat.session import Session
from glmchat.ui.app import GlmChatApp
from tests.ui_support import BASE_TIME, make_app, make_config, open_store, stored_session, stored_turn

SIZE = (110, 36)

ANSWER = """Use a **context manager** so the file is closed even on errors:

```python
with open("data.txt", encoding="utf-8") as f:
    for line in f:
        print(line.rstrip())
```

- `encoding` avoids the platform default
- iterating the file reads one line at a time
"""

REASONING = (
    "The user asks how to read a file line by line.\n"
    "A with-block closes the file; iterating the file object streams lines.\n"
    "Mention the encoding argument."
)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dates on screen in UTC, whatever the machine's time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _chat_app() -> tuple[GlmChatApp, Session]:
    store = open_store()
    try:
        stored_session(store, "Sourdough timing", [stored_turn(1, user="How long should dough proof?")], number_hint=1)
        session = stored_session(
            store,
            "Reading files in Python",
            [
                stored_turn(2, user="How do I read a file line by line in Python?", reasoning=REASONING, content=ANSWER),
                stored_turn(3, thinking=False, user="Is that safe for huge files?", content="Yes: memory stays flat."),
            ],
            number_hint=2,
        )
    finally:
        store.close()
    app = make_app(config=make_config(theme="glm-dark"), options=AppOptions(session=session.id), clock=lambda: BASE_TIME + 3600)
    return app, session


async def _settle(pilot: Any) -> None:
    """Let workers finish and stop cursors blinking (a blink mid-screenshot flips a cell)."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    await pilot.pause()


class TestChatScreen:
    def test_main_screen(self, snap_compare: Any) -> None:
        """You should see the sidebar with two sessions ("Reading files in Python" marked ●), then two
        turns: the first "You · thinking on" with a folded "▶ Thought for 3.1 s · 20 tokens" pane and a
        Markdown answer (bold text, a highlighted Python block, a two-item list) and its action line;
        the second "You · thinking off" with no reasoning pane. Below: the composer with the thinking
        switch on, the status line (Z.ai · glm-4.7, tokens of the last turn, cost, context) and the footer."""
        app, _ = _chat_app()
        assert snap_compare(app, run_before=_settle, terminal_size=SIZE)

    def test_reasoning_unfolded(self, snap_compare: Any) -> None:
        """You should see the same screen with the first turn's reasoning unfolded: "▼ Thought for 3.1 s ·
        20 tokens" followed by its three lines of reasoning, indented, above the answer."""
        app, session = _chat_app()

        async def run_before(pilot: Any) -> None:
            await _settle(pilot)
            view = pilot.app.chat.log_view.mounted_views[0]
            view.reasoning.action_toggle()
            pilot.app.chat.composer.focus_prompt()
            await _settle(pilot)

        assert snap_compare(app, run_before=run_before, terminal_size=SIZE)
