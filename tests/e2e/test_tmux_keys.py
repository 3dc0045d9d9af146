"""Keys, focus, small windows and signals in a real terminal: the installed glmchat in tmux.

Keys are sent with `tmux send-keys`, so they reach glmchat as the bytes a
terminal sends (M-d is ESC d, M-Enter is ESC CR); the screen is read with
`capture-pane` and polled, never after a fixed sleep. Every tmux server and
process a test starts is ended in its `finally`.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from glmchat.ui.widgets.composer import SEND_HINTS
from tests.e2e.terminal import GlmServerProcess, Terminal, app_env, glmchat_command
from tests.glm_server import default_content

pytestmark = [pytest.mark.slow, pytest.mark.tmux]


def start(terminal: Terminal, server: GlmServerProcess, home: Path, *args: str, cwd: Path | None = None,
          size: tuple[int, int] = (120, 40)) -> None:  # fmt: skip
    command = [*glmchat_command(), "--host", "zai", "--base-url", f"{server.url}/zai", *args]
    if cwd is not None:
        # Exports go to the current folder: run in the test's own.
        command = ["sh", "-c", f"cd '{cwd}' && exec " + " ".join(command)]
    terminal.start(command, app_env(home), size=size)
    terminal.wait_for("the first frame", lambda s: "Message GLM" in s or "You  ·" in s, timeout=30)


def composer_lines(screen: str) -> list[str]:
    """The text lines of the composer: between its top border and the thinking switch ([] when hidden)."""
    lines = screen.splitlines()
    bar = next((i for i, line in enumerate(lines) if "Thinking:" in line), None)
    top = max((i for i in range(bar or 0) if "▔▔▔" in lines[i]), default=None)
    if bar is None or top is None:
        return []
    return [line.split("▕")[-1].split("▌")[0].strip() for line in lines[top + 1 : bar]]


def status_and_footer_intact(screen: str) -> bool:
    lines = screen.splitlines()
    return "^p palette" in lines[-1] and any(re.search(r"next turn: thinking (on|off)", line) for line in lines[-3:-1])


def glmchat_pids(root: int) -> list[int]:
    """The processes under `root` (itself included) whose command line runs glmchat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "glmchat" in cmdline and "tmux" not in cmdline:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_glmchat(terminal: Terminal) -> None:
    """SIGKILL glmchat in the terminal (no chance to save anything on the way out)."""
    pids = glmchat_pids(terminal.pane_pid())
    assert pids, "glmchat is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    terminal.wait_for("glmchat to die", lambda s: terminal.dead(), timeout=15)


ESC_GAP = 0.3
"""Seconds between an Escape and the next key: the terminal sends Esc as a bare ESC byte, and a key
that follows it sooner than the app's ESCDELAY (0.1 s) is read with it as one Alt chord. A person's
pause; nothing here waits for the app."""


def press_escape(terminal: Terminal) -> None:
    terminal.press("Escape")
    time.sleep(ESC_GAP)


# -- Alt chords ----------------------------------------------------------------------------


def test_alt_keys_act_and_alt_enter_starts_a_line(server: GlmServerProcess, terminal: Terminal, tmp_path: Path) -> None:
    home, exports = tmp_path / "home", tmp_path / "exports"
    home.mkdir()
    exports.mkdir()
    start(terminal, server, home, "--new", cwd=exports)
    screen = terminal.wait_for("the welcome", lambda s: "glmchat · Z.ai · glm-4.7" in s)
    assert "Ctrl+T" in screen and "every action" in screen

    # Alt+Enter (ESC CR) starts a new line; it does not send.
    before = len(server.requests())
    terminal.type("first line")
    terminal.press("M-Enter")
    terminal.type("second line")
    terminal.wait_for("two lines in the composer", lambda s: composer_lines(s)[:2] == ["first line", "second line"])
    assert len(server.requests()) == before
    terminal.press("Enter")
    answer = default_content("first line\nsecond line").splitlines()[0]
    screen = terminal.wait_for("the answer", lambda s: answer in s and "regenerate" in s)
    assert "every action" not in screen, "the welcome went with the first turn"

    # Alt letters act, and none of their letters lands in the composer.
    terminal.type("draft")
    terminal.wait_for("the draft", lambda s: composer_lines(s)[:1] == ["draft"])
    terminal.press("M-m")
    screen = terminal.wait_for("the Markdown export", lambda s: "Exported to" in s and ".md" in s)
    assert status_and_footer_intact(screen), "the toast stands above the status line and the footer"
    terminal.press("M-j")
    terminal.wait_for("the JSON export", lambda s: ".json" in s)
    assert sorted(p.suffix for p in exports.iterdir()) == [".json", ".md"]
    terminal.press("M-c")
    terminal.wait_for("the copy", lambda s: "Copied the answer" in s)
    terminal.press("M-k")
    terminal.wait_for("no code to copy", lambda s: "has no code blocks" in s)
    terminal.press("M-d")
    terminal.wait_for("the delete question", lambda s: "and all its turns?" in s)
    terminal.press("Escape")
    screen = terminal.wait_for("the chat back", lambda s: "Thinking: on" in s and "Cancel" not in s)
    assert composer_lines(screen)[:1] == ["draft"], composer_lines(screen)

    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)


# -- focus ---------------------------------------------------------------------------------


def test_typing_anywhere_goes_to_the_composer_and_ctrl_b_focuses_the_list(
    server: GlmServerProcess, terminal: Terminal, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    start(terminal, server, home, "--new")
    terminal.type("hello")
    terminal.press("Enter")
    terminal.wait_for("the answer", lambda s: "You said: hello" in s and "regenerate" in s)

    # Tab takes the focus off the composer (to the thinking switch); letters still land in the composer.
    terminal.press("Tab")
    terminal.type("abc")
    screen = terminal.wait_for("letters in the composer", lambda s: composer_lines(s)[:1] == ["abc"])
    assert "Thinking: on" in screen, "the switch did not take the keys"

    # Ctrl+B: hide the list; again: show it, focused, so its keys work (n = new session).
    assert "Filter · Enter searches all" in terminal.screen()
    terminal.press("C-b")
    terminal.wait_for("the list hidden", lambda s: "Filter · Enter searches all" not in s)
    terminal.press("C-b")
    terminal.wait_for("the list shown", lambda s: "Filter · Enter searches all" in s)
    terminal.press("n")
    # n was the list's key: a new session, its composer empty (no "n" in it, and the "abc" left
    # with the other session).
    terminal.wait_for(
        "a new session",
        lambda s: "glmchat · Z.ai" in s and "You said: hello" not in s and composer_lines(s)[:1] == ["Message GLM…"],
    )
    # Esc from the list goes back to the composer: "typed" lands there whole (were the list
    # still focused, its d would ask to delete the session).
    terminal.press("C-b")
    terminal.wait_for("the list hidden", lambda s: "Filter · Enter searches all" not in s)
    terminal.press("C-b")
    terminal.wait_for("the list shown", lambda s: "Filter · Enter searches all" in s)
    press_escape(terminal)
    terminal.type("typed")
    screen = terminal.wait_for("the composer has the keys", lambda s: composer_lines(s)[:1] == ["typed"])
    assert "and all its turns?" not in screen
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)


# -- a small window ------------------------------------------------------------------------

FOOTER_KEYS = ["esc Stop", "^t Thinking", "^b Sessions", "^n New", "^r Retry", "^o Fold all", "f1 Help", "f4 Settings"]
LIST_KEYS = ["n New", "r Rename", "d Delete", "/ Search"]
"""The session list's keys, shown first while it has the focus."""


def footer_drawn(screen: str) -> bool:
    """The footer is on the last line (it is blank for a moment while it is rebuilt)."""
    lines = screen.splitlines()
    return bool(lines) and lines[-1].rstrip().endswith("^p palette")


def footer_is_whole(line: str) -> bool:
    """The footer's keys, left of the palette key, are whole keys, in order from the first."""
    left = " ".join(line.split("▏")[0].split())
    for keys in (FOOTER_KEYS, LIST_KEYS + FOOTER_KEYS):
        prefixes = [" ".join(keys[:n]) for n in range(1, len(keys) + 1)]
        if left in prefixes:
            return line.rstrip().endswith("^p palette")
    return False


def test_a_60x15_window_hides_the_list_and_cuts_no_word(server: GlmServerProcess, terminal: Terminal, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    start(terminal, server, home, "--new", size=(60, 15))
    screen = terminal.wait_for("the switch and the footer", lambda s: "━● Thinking: on ^T" in s and footer_drawn(s))
    assert "Filter" not in screen, "no room for the list: it hides itself"
    lines = screen.splitlines()
    assert footer_is_whole(lines[-1]), lines[-1]
    bar = next(line for line in lines if "Thinking:" in line)
    assert any(bar.rstrip().endswith(hint) for hint in SEND_HINTS), bar
    assert "preserved" in screen and "think…" not in screen, "the status line says it in fewer words, not cut ones"

    terminal.press("C-t")
    terminal.wait_for("thinking off", lambda s: "○━ Thinking: off ^T" in s)

    # Ctrl+B shows the list over the log; Esc takes it away.
    terminal.press("C-b")
    terminal.wait_for("the list over the log", lambda s: "Filter" in s)
    terminal.press("Escape")
    terminal.wait_for("the list gone", lambda s: "Filter" not in s)

    # Wider: the list is back beside the chat and the hint says it all; narrower again: gone.
    terminal.resize(120, 40)
    screen = terminal.wait_for(
        "the wide layout", lambda s: "Filter · Enter searches all" in s and SEND_HINTS[0] in s and footer_drawn(s)
    )
    assert footer_is_whole(screen.splitlines()[-1])
    terminal.resize(60, 15)
    screen = terminal.wait_for(
        "the narrow layout", lambda s: "Filter" not in s and len(s.splitlines()) <= 15 and footer_drawn(s)
    )
    assert footer_is_whole(screen.splitlines()[-1]), screen.splitlines()[-1]
    # Narrowed with the list hidden, the keys are the composer's.
    terminal.type("x")
    terminal.wait_for("a letter in the composer", lambda s: composer_lines(s)[:1] == ["x"])
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)


# -- a killed process ----------------------------------------------------------------------


def test_after_sigkill_the_next_start_opens_the_session_that_was_open(
    server: GlmServerProcess, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    terminals: list[Terminal] = []

    def launch(*args: str) -> Terminal:
        term = Terminal()
        terminals.append(term)
        start(term, server, home, *args)
        return term

    try:
        # Two sessions; the second is the most recent.
        first = launch("--new")
        for text in ("older session", "newer session"):
            first.type(text)
            first.press("Enter")
            first.wait_for(f"the answer to {text}", lambda s, t=text: f"You said: {t}" in s and "regenerate" in s)
            first.press("C-n")
            first.wait_for("a new session", lambda s: "glmchat · Z.ai" in s)
        first.press("C-q")
        first.wait_for("glmchat to exit", lambda s: first.dead(), timeout=20)

        # Open the older one from the list, then kill glmchat.
        second = launch()
        second.wait_for("the most recent session", lambda s: "You said: newer session" in s)
        second.press("C-b")
        second.wait_for("the list hidden", lambda s: "Filter · Enter searches all" not in s)
        second.press("C-b")
        second.wait_for("the list shown (and focused)", lambda s: "Filter · Enter searches all" in s and "older session" in s)
        second.press("Down", "Enter")
        second.wait_for("the older session", lambda s: "You said: older session" in s and "You said: newer" not in s)
        kill_glmchat(second)

        third = launch()
        screen = third.wait_for("a session", lambda s: "You said:" in s)
        assert "You said: older session" in screen and "You said: newer session" not in screen

        # A new session is remembered with its first turn.
        third.press("C-n")
        third.wait_for("a new session", lambda s: "glmchat · Z.ai" in s)
        third.type("brand new")
        third.press("Enter")
        third.wait_for("its answer", lambda s: "You said: brand new" in s and "regenerate" in s)
        kill_glmchat(third)

        fourth = launch()
        screen = fourth.wait_for("a session", lambda s: "You said:" in s)
        assert "You said: brand new" in screen and "older session" not in screen.split("▕")[-1]
        fourth.press("C-q")
        fourth.wait_for("glmchat to exit", lambda s: fourth.dead(), timeout=20)
    finally:
        for term in terminals:
            term.close()


# -- search ----------------------------------------------------------------------------------


def test_a_search_hit_in_reasoning_is_shown_unfolded(server: GlmServerProcess, terminal: Terminal, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    steps = [f"Step {n}: weigh the options once more." for n in range(1, 100)]
    steps[79] = "Step 80: the pelican turns up here."
    server.enqueue({"reasoning": "\n".join(steps) + "\n", "content": "A short answer.", "chunk_tokens": 50})
    start(terminal, server, home, "--new")
    terminal.type("think long")
    terminal.press("Enter")
    terminal.wait_for("the answer", lambda s: "A short answer." in s and "regenerate" in s)
    for text in ("two", "three"):
        terminal.type(text)
        terminal.press("Enter")
        terminal.wait_for(f"answer {text}", lambda s, t=text: f"You said: {t}" in s and "regenerate" in s)
    assert "pelican" not in terminal.screen()
    terminal.press("C-f")
    terminal.wait_for("the search", lambda s: "Search all sessions" in s)
    terminal.type("pelican")
    terminal.wait_for("the hit", lambda s: "1 match" in s and "[reasoning]" in s)
    terminal.press("Enter")
    screen = terminal.wait_for("the line with the hit", lambda s: "the pelican turns up here" in s and "1 match" not in s)
    assert "▼ Thought for" not in screen or "Step 1:" not in screen
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=20)
