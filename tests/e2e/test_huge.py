"""End to end: a stored turn with a long reasoning, unfolded and paged with keys in a real terminal (tmux).

Shift+Tab reaches the reasoning pane from the prompt, Enter unfolds it (one
page, with the page bar under it), Tab reaches the bar, End shows the last
page, y copies the whole reasoning (tmux keeps what the app sends to the
clipboard as a paste buffer), Enter on the pane folds it again.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.e2e.test_tmux import HEIGHT, KEY, REPO, WIDTH, Terminal, next_thinking, terminal  # noqa: F401
from tests.ui_support import stored_turn

pytestmark = [pytest.mark.slow]

LINES = 6_000
REASONING = "".join(f"thought-{i:05d} keeps going.\n" for i in range(LINES))


def wait_for_focus(terminal: Terminal, text: str) -> None:
    """Wait until the line showing `text` is drawn bold: the reasoning pane's title when it has focus."""
    import time

    deadline = time.monotonic() + 15
    while True:
        styled = terminal.tmux("capture-pane", "-p", "-e", "-t", terminal.name).stdout
        line = next((line for line in styled.splitlines() if text in line), "")
        if "\x1b[1m" in line:
            return
        assert time.monotonic() < deadline, f"the pane never took focus: {line!r}"
        time.sleep(0.05)


def test_a_long_reasoning_unfolds_by_pages_in_a_terminal(terminal: Terminal, glmchat_home: Path) -> None:
    from glmchat.session import Session
    from glmchat.store import Store

    with Store.open(glmchat_home) as store:
        store.save_session(Session(title="Long thoughts", turns=[stored_turn(1, reasoning=REASONING)]))
    env = {"GLMCHAT_HOME": str(glmchat_home), "ZAI_API_KEY": KEY, "TERM": "xterm-256color",
           "TEXTUAL_ANIMATIONS": "none", "PYTHONPATH": str(REPO)}  # fmt: skip
    terminal.tmux(
        "new-session", "-d", "-s", terminal.name, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(REPO),
        *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
        f"{sys.executable} -m glmchat",
        ";", "set-option", "-t", terminal.name, "remain-on-exit", "on",
        ";", "set-option", "-s", "set-clipboard", "on",
    )  # fmt: skip
    terminal.wait_for("the session list", lambda s: next_thinking(s) == "on" and "Thought for" in s and "Filter" in s)

    terminal.press("BTab")  # from the prompt to the reasoning pane
    wait_for_focus(terminal, "Thought for")
    terminal.press("Enter")
    screen = terminal.wait_for("the first page", lambda s: re.search(r"reasoning page 1 of \d+", s) is not None, timeout=90)
    count = int(re.search(r"reasoning page 1 of (\d+)", screen).group(1))
    assert count > 1
    assert f"thought-{LINES - 1:05d}" not in screen, "the end of the reasoning is not laid out on page 1"

    terminal.press("Tab")  # to the page bar
    terminal.press("End")
    # The log shows the new page from its first line (the bar under it may be below the window then).
    last_page_starts = LINES * (count - 1) // count

    def last_page_shown(screen: str) -> bool:
        shown = [int(n) for n in re.findall(r"thought-(\d{5})", screen)]
        return bool(shown) and min(shown) > last_page_starts * 0.9 and "Thought for" in screen

    terminal.wait_for("the last page, from its first lines", last_page_shown, timeout=90)

    terminal.press("y")
    terminal.wait_for("the copy", lambda s: "Copied the reasoning" in s)
    copied = terminal.tmux("show-buffer").stdout
    assert copied == REASONING

    terminal.press("BTab")  # back to the pane
    wait_for_focus(terminal, "Thought for")
    terminal.press("Enter")
    terminal.wait_for("the pane folded", lambda s: "reasoning page" not in s and "▶ Thought for" in s)
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=15)
