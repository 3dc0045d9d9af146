"""End to end: `glmchat --host demo` on a fresh machine (an empty home, no key, no server) in a real terminal:
a message streams the demo's reasoning and answer, the footer shows its figures, Ctrl+T cycles a model's
levels, and Ctrl+Q ends it with the turns stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.terminal import Terminal, app_env, finished_turns, glmchat_command, have_tmux, wait_finished

pytestmark = [pytest.mark.tmux, pytest.mark.slow, pytest.mark.skipif(not have_tmux(), reason="tmux is not installed")]


def test_demo_host_on_a_fresh_machine(terminal: Terminal, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = app_env(home)
    env.pop("ZAI_API_KEY")  # a fresh machine: no key anywhere
    terminal.start([*glmchat_command(), "--host", "demo", "--model", "glm-5.3"], env, size=(120, 40))
    terminal.wait_for("the composer", lambda s: "Thinking: max" in s and "Demo (offline)" in s)
    terminal.type("first try")
    terminal.press("Enter")
    screen = terminal.wait_for("the demo's answer", lambda s: "│ cache hit" in s and "regenerate" in s)
    assert "Demo (offline)" in screen and "max reasoning" not in screen
    wait_finished(home, 1, timeout=30)
    terminal.type("second try")
    terminal.press("Enter")
    terminal.wait_for("the second answer's cache figures", lambda s: "% hit)" in s and "second try" in s)
    wait_finished(home, 2, timeout=30)
    terminal.press("C-t")
    terminal.wait_for("the next level", lambda s: "Thinking: low" in s and "always on" in s)
    terminal.press("C-q")
    terminal.wait_for("the exit", lambda s: terminal.dead())
    assert finished_turns(home) == 2
