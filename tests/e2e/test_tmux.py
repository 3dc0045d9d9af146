"""End to end: the real glmchat command in a real terminal (tmux), against the loopback GLM server.

A person's session, typed key by key: a message with thinking on, Ctrl+T, a
message with thinking off, Ctrl+Q. The screen is read with `capture-pane` and
polled (never fixed sleeps); the server's record says what went over the wire.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.glm_server import default_content, default_reasoning

pytestmark = pytest.mark.tmux

REPO = Path(__file__).resolve().parents[2]
KEY = "e2e-secret-key-0123456789abcdef"
WIDTH, HEIGHT = 120, 35


@pytest.fixture
def server_url() -> Iterator[str]:
    """The loopback GLM server as its own process (`READY <url>` on its first line)."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "glm_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints READY as soon as it listens
        match = re.match(r"READY (http://127\.0\.0\.1:\d+)", line)
        assert match, f"the server did not start: {line!r}"
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Terminal:
    """A tmux session on a private tmux server (its own socket), so nothing else is touched."""

    socket: str
    name: str

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=10)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.name, "#{pane_dead}").stdout.strip() == "1"

    def wait_for(self, what: str, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Poll the screen until `predicate(screen)`; fail with the screen shown if it never holds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(0.05)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(socket=f"glmchat-e2e-{uuid.uuid4().hex[:12]}", name="glmchat")
    try:
        yield term
    finally:
        # Kill the whole private tmux server: the app in it goes too.
        term.tmux("kill-server", check=False)


# The status line's "next turn: thinking on" (wording may vary a little).
NEXT_THINKING = re.compile(r"next[\w ]*:\s*thinking (on|off)")


def next_thinking(screen: str) -> str | None:
    """What the status line says thinking is for the next turn: "on", "off", or None if not shown."""
    match = NEXT_THINKING.search(screen)
    return match.group(1) if match else None


def requests_seen(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/_glm/requests", timeout=5) as response:
        return [r for r in json.load(response) if r["path"].endswith("/chat/completions")]


def turn_header(screen: str, text: str) -> str:
    """The "You · thinking on/off" line just above a user message on screen."""
    lines = [line.strip() for line in screen.splitlines()]
    index = next(i for i, line in enumerate(lines) if line.endswith(text))
    return lines[index - 1]


def test_two_turns_thinking_on_then_off(server_url: str, terminal: Terminal, glmchat_home: Path) -> None:
    env = {
        "GLMCHAT_HOME": str(glmchat_home),
        "ZAI_API_KEY": KEY,
        "TERM": "xterm-256color",
        "TEXTUAL_ANIMATIONS": "none",
        "PYTHONPATH": str(REPO),
    }
    # `python -m glmchat` is the glmchat command (the same cli.main), run from this tree.
    command = f"{sys.executable} -m glmchat --host zai --base-url {server_url}/zai"
    terminal.tmux(
        "new-session", "-d", "-s", terminal.name, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(REPO),
        *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
        command,
        ";", "set-option", "-t", terminal.name, "remain-on-exit", "on",
    )  # fmt: skip
    terminal.wait_for("the first frame", lambda s: next_thinking(s) == "on")

    # Turn 1, thinking on.
    terminal.type("hello from tmux")
    terminal.press("Enter")
    first = terminal.wait_for(
        "the first answer", lambda s: default_content("hello from tmux").strip() in s and "regenerate" in s
    )
    assert re.search(r"You\s+·\s+thinking on", turn_header(first, "hello from tmux"))
    assert re.search(r"Thought for [\d.]+ s", first), "the folded reasoning pane of turn 1"

    # Ctrl+T: thinking off for the next turn.
    terminal.press("C-t")
    terminal.wait_for("thinking off", lambda s: next_thinking(s) == "off")
    terminal.type("second message")
    terminal.press("Enter")
    second = terminal.wait_for(
        "the second answer",
        lambda s: default_content("second message").strip() in s and s.count("regenerate") == 2,  # every finished turn offers it (a new branch)
    )
    assert re.search(r"You\s+·\s+thinking off", turn_header(second, "second message"))
    assert re.search(r"You\s+·\s+thinking on", turn_header(second, "hello from tmux"))
    # Only turn 1 thought: one reasoning pane on screen.
    assert len(re.findall(r"Thought for", second)) == 1
    assert KEY not in first + second

    # What went over the wire: thinking on, then off with turn 1's reasoning sent back byte for byte.
    sent = requests_seen(server_url)
    assert [r["thinking"] for r in sent] == [True, False]
    first_body, second_body = (json.loads(r["body"]) for r in sent)
    assert first_body["thinking"] == {"type": "enabled", "clear_thinking": False}
    assert second_body["thinking"]["type"] == "disabled"
    replayed = [m for m in second_body["messages"] if m["role"] == "assistant"]
    assert [m.get("reasoning_content") for m in replayed] == [default_reasoning("hello from tmux")]
    assert all(r["headers"].get("authorization", r["headers"].get("Authorization")) == f"Bearer {KEY}" for r in sent)

    # Ctrl+Q quits cleanly, and both turns are in the store with their thinking flags.
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=15)
    from glmchat.store import Store

    store = Store.open(glmchat_home)
    try:
        [summary] = store.list_sessions()
        session = store.load_session(summary.id)
    finally:
        store.close()
    assert [(t.user_text, t.thinking, t.status) for t in session.turns] == [
        ("hello from tmux", True, "complete"),
        ("second message", False, "complete"),
    ]
    assert session.turns[0].reasoning == default_reasoning("hello from tmux")
