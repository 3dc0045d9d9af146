"""End to end: the installed glmchat in tmux gets SIGTERM / SIGHUP / a closed pane in the middle of a stream.

After it exits, the terminal must be as it was (main screen, no mouse reporting,
cursor shown), the exit code says which signal, and the store holds the turn
as stopped with exactly what arrived. The app runs under a small shell that
prints the exit code and stays, so the pane's state after glmchat can be read.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmchat.session import TurnStatus
from tests.e2e.test_tmux import KEY, REPO, Terminal, next_thinking, server_url  # noqa: F401 - server_url is a fixture

pytestmark = [pytest.mark.slow]

WIDTH, HEIGHT = 110, 32
# Pieces without spaces, so that no line wrap splits one on screen.
REASONING = [f"step-{i} " for i in range(3000)]
ANSWER = [f"part-{i} " for i in range(200)]
STEP = re.compile(r"\bstep-(\d+)\b")


def steps_on_screen(screen: str) -> int:
    """The furthest reasoning step shown."""
    return max((int(n) for n in STEP.findall(screen)), default=-1)


def glmchat_command() -> list[str]:
    """The installed `glmchat` next to this Python (the console script), or `python -m glmchat`."""
    script = Path(sys.executable).with_name("glmchat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "glmchat"]


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(socket=f"glmchat-sig-{uuid.uuid4().hex[:12]}", name="glmchat")
    pids: list[int] = []
    term.pids = pids  # type: ignore[attr-defined]
    try:
        yield term
    finally:
        term.tmux("kill-server", check=False)
        for pid in pids:  # a glmchat that outlived its pane must not outlive the test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def enqueue_long_stream(url: str) -> None:
    body = json.dumps({"reasoning": REASONING, "content": ANSWER, "chunk_tokens": 1, "pace": 150}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/_glm/enqueue", data=body), timeout=5).close()


def start(terminal: Terminal, url: str, home: Path, shell: str) -> None:
    """Run `shell` (with $GLMCHAT standing for the command line) in a new pane."""
    command = shlex.join([*glmchat_command(), "--host", "zai", "--base-url", f"{url}/zai"])
    env = {
        "GLMCHAT_HOME": str(home),
        "ZAI_API_KEY": KEY,
        "TERM": "xterm-256color",
        "TEXTUAL_ANIMATIONS": "none",
        "PYTHONPATH": str(REPO),
    }
    terminal.tmux(
        "new-session", "-d", "-s", terminal.name, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(REPO),
        *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")),
        shell.replace("$GLMCHAT", command),
    )  # fmt: skip


def glmchat_pid(terminal: Terminal, under_shell: bool) -> int:
    pane = int(terminal.tmux("display-message", "-p", "-t", terminal.name, "#{pane_pid}").stdout)
    if not under_shell:
        return pane
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pane}/task/{pane}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("glmchat did not start under the shell")


def stream_mid_way(terminal: Terminal, url: str) -> None:
    """Send a message and wait until the reasoning is streaming (well before it ends)."""
    terminal.wait_for("the first frame", lambda s: next_thinking(s) == "on")
    enqueue_long_stream(url)
    terminal.type("make a long plan")
    terminal.press("Enter")
    terminal.wait_for("the reasoning to stream", lambda s: steps_on_screen(s) >= 40)
    # Typed while the answer streams: a draft that must survive the signal.
    terminal.type("still typing")
    terminal.wait_for("the draft on screen", lambda s: "still typing" in s)


def pane_modes(terminal: Terminal) -> str:
    return terminal.tmux(
        "display-message", "-p", "-t", terminal.name, "#{alternate_on} #{mouse_any_flag} #{cursor_flag}"
    ).stdout.strip()


def stored_last_turn(home: Path):
    from glmchat.store import Store

    store = Store.open(home)
    try:
        [summary] = store.list_sessions()
        session = store.load_session(summary.id)
    finally:
        store.close()
    return session.id, session.turns[-1]


def assert_stopped_with_what_arrived(home: Path) -> None:
    session_id, turn = stored_last_turn(home)
    full = "".join(REASONING)
    assert turn.status == TurnStatus.STOPPED
    assert turn.user_text == "make a long plan"
    assert "step-40 " in turn.reasoning
    assert full.startswith(turn.reasoning) and turn.reasoning != full, "exactly the reasoning that arrived"
    assert turn.content == ""
    drafts = json.loads((home / "drafts.json").read_text(encoding="utf-8"))
    assert drafts == {session_id: "still typing"}


@pytest.mark.parametrize(
    ("signals", "code"),
    [((signal.SIGTERM,), 143), ((signal.SIGHUP,), 129), ((signal.SIGTERM, signal.SIGTERM), 143)],
    ids=["SIGTERM", "SIGHUP", "SIGTERM-twice"],
)
def test_a_signal_mid_stream_restores_the_terminal_and_keeps_the_turn(
    server_url: str, terminal: Terminal, glmchat_home: Path, signals: tuple[int, ...], code: int
) -> None:
    start(terminal, server_url, glmchat_home, "sh -c '$GLMCHAT; echo \"glmchat exited $?\"; exec sleep 600'")
    pid = glmchat_pid(terminal, under_shell=True)
    terminal.pids.append(pid)  # type: ignore[attr-defined]
    stream_mid_way(terminal, server_url)
    assert pane_modes(terminal).split()[:2] == ["1", "1"], "the app runs in the alternate screen with the mouse on"

    for signum in signals:
        os.kill(pid, signum)
    screen = terminal.wait_for("the exit code", lambda s: "glmchat exited" in s, timeout=20)
    assert re.search(r"glmchat exited (\d+)", screen).group(1) == str(code)
    assert "Traceback" not in screen and KEY not in screen
    # Main screen, no mouse reporting, cursor shown: the shell's prompt is usable again.
    assert pane_modes(terminal) == "0 0 1"
    assert not alive(pid)
    assert_stopped_with_what_arrived(glmchat_home)


@pytest.mark.parametrize("hup_reaches_glmchat", [True, False], ids=["session-leader", "behind-a-shell"])
def test_closing_the_pane_mid_stream_keeps_the_turn_and_ends_the_process(
    server_url: str, terminal: Terminal, glmchat_home: Path, tmp_path: Path, hup_reaches_glmchat: bool
) -> None:
    """The pane is killed: its tty hangs up. glmchat gets SIGHUP when it is the pane's own process;
    behind a shell that does not pass the signal on, it only finds the terminal gone."""
    code_file = tmp_path / "exit-code"
    if hup_reaches_glmchat:
        start(terminal, server_url, glmchat_home, "$GLMCHAT")
    else:
        # `trap : HUP` keeps the shell alive to record the code; it does not pass the signal on.
        start(terminal, server_url, glmchat_home, f"sh -c 'trap : HUP; $GLMCHAT; echo $? > {code_file}'")
    pid = glmchat_pid(terminal, under_shell=not hup_reaches_glmchat)
    terminal.pids.append(pid)  # type: ignore[attr-defined]
    stream_mid_way(terminal, server_url)

    terminal.tmux("kill-pane", "-t", terminal.name)
    deadline = time.monotonic() + 20
    while alive(pid):
        assert time.monotonic() < deadline, "glmchat kept running after its terminal was closed"
        time.sleep(0.05)
    if not hup_reaches_glmchat:
        deadline = time.monotonic() + 5
        while not code_file.exists() or not code_file.read_text().strip():
            assert time.monotonic() < deadline, "the shell did not record the exit code"
            time.sleep(0.05)
        assert code_file.read_text().strip() == "129"
    assert_stopped_with_what_arrived(glmchat_home)
