"""`glmchat serve` in a real terminal (tmux): what it prints, and Ctrl+C from the keyboard.

Ctrl+C in a terminal reaches the whole foreground process group, the server and
every tab's glmchat at once; the server must still stop in order, leave no app
behind and exit 0. A tab is a plain websocket here (the browser test has the rest).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serve_support import REPO, alive, children_of, open_tab, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Pane:
    """One tmux pane on a private tmux server."""

    def __init__(self) -> None:
        self.socket = f"glmchat-serve-{uuid.uuid4().hex[:12]}"
        self.name = "serve"

    def tmux(self, *args: str, check: bool = True) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=10
        ).stdout

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", self.name)

    def show(self, what: str) -> str:
        return self.tmux("display-message", "-p", "-t", self.name, what).strip()

    def wait_for(self, what: str, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the pane was:\n{text}")
            time.sleep(0.05)


@pytest.fixture
def pane() -> Iterator[Pane]:
    pane = Pane()
    try:
        yield pane
    finally:
        pane.tmux("kill-server", check=False)  # the server and its apps go with the pane


def test_ctrl_c_in_the_terminal_stops_the_server_and_its_apps(pane: Pane, glmchat_home: Path) -> None:
    env = {
        "GLMCHAT_HOME": str(glmchat_home),
        "ZAI_API_KEY": "terminal-secret-key-0123456789abcdef",
        "PYTHONPATH": str(REPO),
        "TERM": "xterm-256color",
    }
    pane.tmux(
        "new-session", "-d", "-s", pane.name, "-x", "110", "-y", "20", "-c", str(REPO),
        *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
        # The exit status is written into the pane by the shell (bash waits out a child that
        # handles Ctrl+C itself, then goes on): tmux's own record of it can lag on a busy machine.
        "bash -c '\"$0\" -m glmchat serve --port 0; echo \"glmchat exited with status $?\"' " + sys.executable,
        ";", "set-option", "-t", pane.name, "remain-on-exit", "on",
    )  # fmt: skip
    text = pane.wait_for("the URL", lambda t: "Press Ctrl+C to stop." in t)
    match = re.search(r"glmchat is served at http://127\.0\.0\.1:(\d+)/", text)
    assert match, text
    assert "only this machine can connect" in text
    port = int(match.group(1))
    [server] = children_of(int(pane.show("#{pane_pid}")))  # (the pane's process is the bash around it)

    status, tab = open_tab(port, "/ws", {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 101 and tab is not None
    try:
        # The tab's app is up: its first frame (an 80×24 tab: no session list beside the chat).
        last_screen = lambda: tab.screen_text()[-3000:]  # noqa: E731
        wait_until("the tab's glmchat to draw", lambda: "Message GLM" in tab.screen_text(), 60, last_screen)
        [app] = children_of(server)
        pane.wait_for("the connection", lambda t: "a browser connected from 127.0.0.1 (1 open)" in t)

        pane.tmux("send-keys", "-t", pane.name, "C-c")
        text = pane.wait_for("the server to exit", lambda t: "glmchat exited with status" in t, timeout=60)
        assert "glmchat exited with status 0" in text, text
        assert "stopping…" in text and "stopped." in text, text
        assert not alive(app)
        assert tab.closed_by_server.wait(5)
    finally:
        tab.close()
