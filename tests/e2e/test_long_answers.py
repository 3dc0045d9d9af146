"""Every answer shows its last line, in a real terminal: the installed glmchat in tmux, long turns.

Each answer ends with a short marker paragraph. After the store says the turn
is over, the marker must appear on the screen, followed by the turn's status
line, without any scrolling, key or resize to help it. The cases are the
ones where finished answers used to be drawn short: fast hosts with long
reasoning, unthrottled answers, 20k- and 100k-token answers, a slow steady
pace, a resize while streaming, and a 60x15 window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.terminal import (
    GlmServerProcess,
    Terminal,
    app_env,
    glmchat_command,
    wait_finished,
)
from tests.glm_server import corpus

pytestmark = [pytest.mark.slow, pytest.mark.tmux]

VISIBLE_WITHIN = 15.0
"""Seconds the last line may take to show once the turn is stored as finished (generous for a loaded
machine: an answer drawn short never heals by itself, so any bound finds it)."""


@dataclass
class Turn:
    reasoning: int
    content: int
    pace: float | None
    """Tokens per second; None: as fast as the server can send."""


@dataclass
class Launch:
    """One start of glmchat (a new session) and the turns sent in it."""

    turns: list[Turn]
    size: tuple[int, int] = (120, 40)
    during: Callable[[Terminal, int], None] | None = None
    """Called right after each send (e.g. to resize while the answer streams)."""


def _resize_while_streaming(terminal: Terminal, index: int) -> None:
    terminal.wait_for("the reasoning to stream", lambda s: "Thinking…" in s, timeout=20)
    terminal.resize(90, 30)
    terminal.wait_for("the smaller window", lambda s: len(s.splitlines()) <= 30, timeout=10)
    terminal.resize(120, 40)


FAST = Turn(2000, 2000, 1000)
CASES: dict[str, list[Launch]] = {
    # 2k reasoning + 2k answer at 1,000 tokens/s: three launches, with follow-ups.
    "fast-host": [Launch([FAST, FAST]), Launch([FAST]), Launch([FAST])],
    # 2k answers unthrottled, and a session of 1k answers.
    "unthrottled": [Launch([Turn(0, 2000, None)]), Launch([Turn(0, 2000, None)]), Launch([Turn(300, 1000, None)] * 14)],
    "20k": [Launch([Turn(0, 20_000, None)])],
    "100k": [Launch([Turn(0, 100_000, None)])],
    # A steady, person-paced host: short reasoning, short answers.
    "300-per-second": [Launch([Turn(300, 200, 300)] * 5)],
    "resize-while-streaming": [Launch([FAST], during=_resize_while_streaming)],
    "60x15": [Launch([Turn(200, 600, 1000), Turn(0, 1500, None)], size=(60, 15))],
}


def _reply(turn: Turn, seed: int, marker: str) -> dict[str, object]:
    reply: dict[str, object] = {
        "reasoning": corpus(turn.reasoning, seed=seed + 1000) if turn.reasoning else None,
        "content": corpus(turn.content, seed=seed) + f"\n\n{marker}\n",
        "chunk_tokens": 3,
    }
    if turn.pace is None:
        reply["unthrottled"] = True
    else:
        reply["pace"] = turn.pace
    return reply


def _marker_shown(marker: str) -> Callable[[str], bool]:
    def shown(screen: str) -> bool:
        lines = screen.splitlines()
        at = next((i for i, line in enumerate(lines) if marker in line), None)
        # The status line ("✓ copy … regenerate") right under the answer's end.
        return at is not None and any("✓" in line for line in lines[at + 1 : at + 4])

    return shown


@pytest.mark.parametrize("case", list(CASES))
def test_every_answer_shows_its_last_line(case: str, server: GlmServerProcess, tmp_path: Path) -> None:
    shown: list[str] = []
    sent = 0
    for number, launch in enumerate(CASES[case]):
        home = tmp_path / f"home-{number}"
        home.mkdir()
        terminal = Terminal()
        try:
            terminal.start(
                [*glmchat_command(), "--new", "--host", "zai", "--base-url", f"{server.url}/zai"],
                app_env(home),
                size=launch.size,
            )
            terminal.wait_for("the first frame", lambda s: "Message GLM" in s, timeout=30)
            for index, turn in enumerate(launch.turns):
                marker = f"ZZ{number}x{index}"
                server.enqueue(_reply(turn, seed=number * 100 + index, marker=marker))
                terminal.type(f"question {index}")
                terminal.press("Enter")
                if launch.during is not None:
                    launch.during(terminal, index)
                sent += 1
                wait_finished(home, index + 1, timeout=180)
                terminal.wait_for(f"the last line of answer {marker}", _marker_shown(marker), timeout=VISIBLE_WITHIN)
                shown.append(marker)
            terminal.press("C-q")
            terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)
        finally:
            terminal.close()
    assert len(shown) == sent
