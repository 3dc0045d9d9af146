"""Driving the installed glmchat in a real terminal (tmux), for the end-to-end tests and the benchmarks.

Each `Terminal` is a tmux session on a private tmux server (its own socket), so
nothing of the user's tmux is touched and `close()` (kill-server) ends every
process started in it. The loopback GLM server runs as its own process
(`GlmServerProcess`) and is driven over its control endpoints.

The screen is read with `capture-pane` and polled; nothing here sleeps for a
fixed time to let something happen.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KEY = "e2e-secret-key-0123456789abcdef"


def glmchat_command() -> list[str]:
    """The installed `glmchat` script of this Python (what a user runs), else `python -m glmchat`."""
    script = Path(sys.executable).with_name("glmchat")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "glmchat"]


class GlmServerProcess:
    """tests/glm_server.py as a child process, with its control endpoints."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "glm_server.py"), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # READY as soon as it listens
        match = re.match(r"READY (http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        self.url = match.group(1)

    def _post(self, path: str, payload: Any) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(payload).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def enqueue(self, *replies: dict[str, Any]) -> None:
        """Queue replies (Reply fields as a dict) for the next requests."""
        self._post("/_glm/enqueue", list(replies))

    def requests(self) -> list[dict[str, Any]]:
        """Every chat request so far, with the time each reply's chunks left the server."""
        with urllib.request.urlopen(f"{self.url}/_glm/requests", timeout=10) as response:
            return [r for r in json.load(response) if not r["path"].startswith("/_glm/")]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Terminal:
    """A tmux session on a private tmux server."""

    socket: str = field(default_factory=lambda: f"glmchat-e2e-{uuid.uuid4().hex[:12]}")
    name: str = "glmchat"

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=15)

    def start(self, command: list[str], env: dict[str, str], size: tuple[int, int] = (120, 40)) -> None:
        """Run `command` in a new window of `size`; the pane stays after the command exits."""
        self.tmux(
            "new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]), "-c", str(REPO),
            *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
            " ".join(_quote(part) for part in command),
            ";", "set-option", "-t", self.name, "remain-on-exit", "on",
        )  # fmt: skip

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.name, "#{pane_dead}").stdout.strip() == "1"

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").stdout.strip())

    def wait_for(self, what: str, predicate: Callable[[str], bool], timeout: float = 30.0, step: float = 0.02) -> str:
        """Poll the screen until `predicate(screen)`; fail showing the screen if it never holds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(step)

    def close(self) -> None:
        # Killing the private server ends every process started in it.
        self.tmux("kill-server", check=False)


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w./:=@%+-]+", part) else "'" + part.replace("'", "'\\''") + "'"


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment glmchat runs with in these tests: a private home, a key, a real terminal type."""
    env = {"GLMCHAT_HOME": str(home), "ZAI_API_KEY": KEY, "TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"}
    if not Path(sys.executable).with_name("glmchat").exists():
        env["PYTHONPATH"] = str(REPO)  # `python -m glmchat` from this tree
    env.update(extra)
    return env


def finished_turns(home: Path) -> int:
    """How many turns the store holds that are no longer streaming (0 before the database exists)."""
    path = home / "glmchat.db"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM turns WHERE status != 'streaming'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def wait_finished(home: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while finished_turns(home) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the store holds {finished_turns(home)} finished turns, not {count}, after {timeout} s")
        time.sleep(0.02)


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a process in MB (Linux), None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def have_tmux() -> bool:
    return shutil.which("tmux") is not None
