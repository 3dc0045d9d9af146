"""Branches in a real terminal: regenerate adds `‹ 2/2 ›`, the palette and ← → switch, a fork opens.

The installed glmchat runs in tmux against the loopback server; keys are what a
terminal sends, the screen is read with `capture-pane`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.terminal import GlmServerProcess, Terminal, app_env, glmchat_command

pytestmark = [pytest.mark.slow, pytest.mark.tmux]


def palette(terminal: Terminal, command: str) -> None:
    terminal.press("C-p")
    terminal.wait_for("the command palette", lambda s: "Search for commands" in s or "Search…" in s)
    terminal.type(command)
    terminal.wait_for(f"{command!r} offered", lambda s: command in s)
    terminal.press("Enter")


def test_branches_and_a_fork_in_the_terminal(server: GlmServerProcess, terminal: Terminal, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    command = [*glmchat_command(), "--host", "zai", "--base-url", f"{server.url}/zai", "--new"]
    terminal.start(command, app_env(home), size=(110, 36))
    terminal.wait_for("the first frame", lambda s: "Message GLM" in s, timeout=30)
    for text in ("first question", "second question"):
        terminal.type(text)
        terminal.press("Enter")
        terminal.wait_for(f"the answer to {text}", lambda s, t=text: f"You said: {t}" in s and "regenerate" in s)

    server.enqueue({"content": "Another take on the second."})
    terminal.press("C-r")
    terminal.wait_for("the new branch", lambda s: "Another take on the second." in s and "‹ 2/2 ›" in s)

    palette(terminal, "Previous branch")
    terminal.wait_for("the first branch again", lambda s: "‹ 1/2 ›" in s and "You said: second question" in s
                      and "Another take" not in s)  # fmt: skip
    # The switch left the focus on that turn's ‹ › line: → goes on to the next branch.
    terminal.press("Right")
    terminal.wait_for("→ on the focused line", lambda s: "‹ 2/2 ›" in s and "Another take on the second." in s)

    palette(terminal, "Fork from here")
    terminal.wait_for("the fork opened", lambda s: "Forked: a new session" in s)
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)

    listed = subprocess.run(
        [*glmchat_command(), "sessions", "list", "--json"], env=app_env(home), capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    assert len(sessions) == 2, "the source and its fork"
    shown = subprocess.run(
        [*glmchat_command(), "sessions", "show", str(sessions[-1]["number"])],
        env=app_env(home), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Another take on the second." in shown.stdout, "the source shows the branch chosen last"
