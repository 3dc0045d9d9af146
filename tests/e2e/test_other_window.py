"""End to end: glmchat open in tmux while `glmchat ask -c` adds a turn from another terminal.

The open window shows the other turn without a key pressed, and its next
request replays it, reasoning byte for byte, in the store's order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_tmux import (  # noqa: F401 - server_url and terminal are fixtures
    HEIGHT,
    KEY,
    REPO,
    WIDTH,
    Terminal,
    next_thinking,
    requests_seen,
    server_url,
    terminal,
)
from tests.glm_server import default_content, default_reasoning

pytestmark = [pytest.mark.slow]


def test_a_turn_added_by_glmchat_ask_shows_up_and_is_replayed(server_url: str, terminal: Terminal, glmchat_home: Path) -> None:
    env = {
        "GLMCHAT_HOME": str(glmchat_home),
        "ZAI_API_KEY": KEY,
        "TERM": "xterm-256color",
        "TEXTUAL_ANIMATIONS": "none",
        "PYTHONPATH": str(REPO),
    }
    command = f"{sys.executable} -m glmchat --host zai --base-url {server_url}/zai"
    terminal.tmux(
        "new-session", "-d", "-s", terminal.name, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(REPO),
        *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
        command,
        ";", "set-option", "-t", terminal.name, "remain-on-exit", "on",
    )  # fmt: skip
    terminal.wait_for("the first frame", lambda s: next_thinking(s) == "on")
    terminal.type("first from the window")
    terminal.press("Enter")
    terminal.wait_for("the first answer", lambda s: default_content("first from the window").strip() in s)

    # Another terminal continues the same session.
    result = subprocess.run(
        [sys.executable, "-m", "glmchat", "ask", "-c", "--base-url", f"{server_url}/zai", "from another terminal"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    screen = terminal.wait_for(
        "the other terminal's turn", lambda s: default_content("from another terminal").strip() in s, timeout=15
    )
    assert "from another terminal" in screen

    terminal.type("third from the window")
    terminal.press("Enter")
    terminal.wait_for("the third answer", lambda s: default_content("third from the window").strip() in s)

    sent = requests_seen(server_url)
    assert len(sent) == 3
    last = json.loads(sent[-1]["body"])
    users = [m["content"] for m in last["messages"] if m["role"] == "user"]
    assert users == ["first from the window", "from another terminal", "third from the window"]
    reasoning = [m.get("reasoning_content") for m in last["messages"] if m["role"] == "assistant"]
    assert reasoning == [default_reasoning("first from the window"), default_reasoning("from another terminal")]

    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=15)
    from glmchat.store import Store

    with Store.open(glmchat_home) as store:
        [summary] = store.list_sessions()
        turns = store.load_session(summary.id).turns
    assert [t.user_text for t in turns] == ["first from the window", "from another terminal", "third from the window"]
